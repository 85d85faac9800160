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
