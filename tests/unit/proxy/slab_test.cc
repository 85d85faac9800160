#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "proxy/slab.h"

namespace ringmaster::proxy {
namespace {

struct Tracked {
  explicit Tracked(int v, int* alive_count) : value(v), alive(alive_count) { ++*alive; }
  ~Tracked() { --*alive; }
  int value;
  int* alive;
  std::string text = std::string(100, 'x');  // owns heap memory: destructors must run
  char pad[300];
};

TEST(Slab, ObjectsAreConstructedDestroyedAndDistinct) {
  Slab<Tracked> slab;
  int alive = 0;
  std::vector<Tracked*> objects;
  for (int i = 0; i < 1000; ++i) objects.push_back(slab.make(i, &alive));
  EXPECT_EQ(alive, 1000);
  EXPECT_EQ(slab.live(), 1000u);
  std::set<Tracked*> distinct(objects.begin(), objects.end());
  EXPECT_EQ(distinct.size(), objects.size());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(objects[static_cast<size_t>(i)]->value, i);
  for (Tracked* t : objects) slab.destroy(t);
  EXPECT_EQ(alive, 0);
  EXPECT_EQ(slab.live(), 0u);
}

#ifndef RINGMASTER_SLAB_USES_HEAP
TEST(Slab, EmptyChunksGoBackToTheKernelButOne) {
  Slab<Tracked> slab;
  int alive = 0;
  const size_t per_chunk = Slab<Tracked>::slots_per_chunk();
  std::vector<Tracked*> objects;
  for (size_t i = 0; i < 10 * per_chunk; ++i) objects.push_back(slab.make(static_cast<int>(i), &alive));
  EXPECT_EQ(slab.chunks(), 10u);
  // Freed in random order (clients leave whenever they like): every chunk empties in the end.
  std::mt19937 rng(7);
  std::shuffle(objects.begin(), objects.end(), rng);
  for (Tracked* t : objects) slab.destroy(t);
  EXPECT_EQ(slab.chunks(), 1u);  // one kept for the next object
  slab.release_empty();
  EXPECT_EQ(slab.chunks(), 0u);
}

TEST(Slab, FreedSlotsAreReusedBeforeANewChunkIsMapped) {
  Slab<Tracked> slab;
  int alive = 0;
  const size_t per_chunk = Slab<Tracked>::slots_per_chunk();
  std::vector<Tracked*> objects;
  for (size_t i = 0; i < 2 * per_chunk; ++i) objects.push_back(slab.make(0, &alive));
  EXPECT_EQ(slab.chunks(), 2u);
  // Churn: one object out, one in, many times over: no chunk is mapped.
  for (int round = 0; round < 10000; ++round) {
    size_t i = static_cast<size_t>(round * 7919) % objects.size();
    slab.destroy(objects[i]);
    objects[i] = slab.make(round, &alive);
  }
  EXPECT_EQ(slab.chunks(), 2u);
  for (Tracked* t : objects) slab.destroy(t);
}

TEST(Slab, ObjectsAreAlignedAndInsideTheirChunk) {
  struct alignas(64) Wide {
    char bytes[200];
  };
  Slab<Wide> slab;
  std::vector<Wide*> objects;
  for (int i = 0; i < 500; ++i) objects.push_back(slab.make());
  for (Wide* w : objects) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(w) % 64, 0u);
    uintptr_t offset = reinterpret_cast<uintptr_t>(w) % Slab<Wide>::kChunkBytes;
    EXPECT_LE(offset + sizeof(Wide), Slab<Wide>::kChunkBytes);
    EXPECT_GT(offset, 0u);  // the chunk header comes first
  }
  for (Wide* w : objects) slab.destroy(w);
}
#endif

}  // namespace
}  // namespace ringmaster::proxy

namespace ringmaster::proxy {
namespace {

TEST(BufferSlab, ChurnReusesFreeBuffersWithoutMappingMore) {
  BufferSlab slab(64 * 1024, 8);
  std::vector<char*> busy;
  for (int i = 0; i < 20; ++i) busy.push_back(slab.take());
  EXPECT_EQ(slab.maps(), 3u);  // 8 per region
  std::set<char*> distinct(busy.begin(), busy.end());
  EXPECT_EQ(distinct.size(), busy.size());
  busy.front()[0] = 'x';
  busy.front()[64 * 1024 - 1] = 'y';  // the whole buffer is usable
  // A connection closes and a new one opens, 10,000 times: no new mapping.
  for (int round = 0; round < 10000; ++round) {
    size_t i = static_cast<size_t>(round * 7) % busy.size();
    slab.give(busy[i]);
    busy[i] = slab.take();
  }
  EXPECT_EQ(slab.maps(), 3u);
  EXPECT_EQ(slab.in_use(), 20u);
  for (char* b : busy) slab.give(b);
  EXPECT_EQ(slab.in_use(), 0u);
}

TEST(BufferSlab, TrimKeepsTheWarmBuffersAndUnmapsEmptyRegions) {
  BufferSlab slab(4096, 4);
  std::vector<char*> busy;
  for (int i = 0; i < 12; ++i) busy.push_back(slab.take());
  EXPECT_EQ(slab.regions(), 3u);
  for (size_t i = 4; i < 12; ++i) slab.give(busy[i]);  // the last two regions are free
  EXPECT_EQ(slab.warm_free(), 8u);
  EXPECT_EQ(slab.trim(4), 4u * 4096);  // one empty region unmapped, four warm buffers kept
  EXPECT_EQ(slab.regions(), 2u);
  EXPECT_EQ(slab.warm_free(), 4u);
  for (size_t i = 0; i < 4; ++i) slab.give(busy[i]);
  slab.trim(0);
  EXPECT_EQ(slab.regions(), 0u);
  EXPECT_EQ(slab.warm_free(), 0u);
  char* again = slab.take();  // maps afresh after a full trim
  EXPECT_NE(again, nullptr);
  slab.give(again);
}

}  // namespace
}  // namespace ringmaster::proxy
