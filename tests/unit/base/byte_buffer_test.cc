// ByteBuffer: a FIFO that slides before it grows and keeps its capacity across reuse.
#include "ringmaster/base/byte_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

namespace ringmaster::base {
namespace {

TEST(ByteBuffer, StartsEmptyWithoutMemory) {
  ByteBuffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.view(), "");
}

TEST(ByteBuffer, AppendsInOrder) {
  ByteBuffer b;
  b.append("hello");
  b.append_char(' ');
  b.append("world!", 5);
  EXPECT_EQ(b.view(), "hello world");
  EXPECT_EQ(b.size(), 11u);
  EXPECT_FALSE(b.empty());
}

TEST(ByteBuffer, EmptyAppendAllocatesNothing) {
  ByteBuffer b;
  b.append("", 0);
  b.append(std::string_view{});
  EXPECT_EQ(b.capacity(), 0u);
}

TEST(ByteBuffer, ConsumeDropsFromTheFront) {
  ByteBuffer b;
  b.append("abcdef");
  b.consume(2);
  EXPECT_EQ(b.view(), "cdef");
  b.consume(4);
  EXPECT_TRUE(b.empty());
  // Fully drained: the next append starts at the front again, no growth.
  size_t cap = b.capacity();
  b.append(std::string(cap, 'x'));
  EXPECT_EQ(b.capacity(), cap);
}

TEST(ByteBuffer, SlidesLiveBytesInsteadOfGrowing) {
  ByteBuffer b;
  b.append(std::string(4096, 'a'));
  ASSERT_EQ(b.capacity(), 4096u);
  b.consume(4000);  // 96 live bytes at the back
  b.append(std::string(3000, 'b'));
  EXPECT_EQ(b.capacity(), 4096u);
  EXPECT_EQ(b.size(), 3096u);
  EXPECT_EQ(b.view().substr(0, 96), std::string(96, 'a'));
  EXPECT_EQ(b.view().substr(96), std::string(3000, 'b'));
}

TEST(ByteBuffer, GrowsByDoublingAndKeepsContents) {
  ByteBuffer b;
  b.append("x");
  EXPECT_EQ(b.capacity(), 4096u);
  b.append(std::string(5000, 'y'));
  EXPECT_EQ(b.capacity(), 8192u);
  b.append(std::string(30000, 'z'));
  EXPECT_EQ(b.capacity(), 65536u);  // doubled until it fits
  EXPECT_EQ(b.size(), 35001u);
  EXPECT_EQ(b.view()[0], 'x');
  EXPECT_EQ(b.view()[1], 'y');
  EXPECT_EQ(b.view()[5001], 'z');
}

TEST(ByteBuffer, GrowthAfterConsumeKeepsOnlyLiveBytes) {
  ByteBuffer b;
  b.append(std::string(4096, 'a'));
  b.consume(10);
  b.append(std::string(100, 'b'));  // 4086 + 100 > 4096: must grow
  EXPECT_EQ(b.capacity(), 8192u);
  EXPECT_EQ(b.size(), 4186u);
  EXPECT_EQ(b.view().substr(4086), std::string(100, 'b'));
}

TEST(ByteBuffer, ReserveBackAndCommit) {
  ByteBuffer b;
  b.append("ab");
  char* w = b.reserve_back(3);
  EXPECT_GE(b.tail_room(), 3u);
  w[0] = 'c';
  w[1] = 'd';
  b.commit(2);  // only part of the reservation is used
  EXPECT_EQ(b.view(), "abcd");
  EXPECT_EQ(b.tail_room(), b.capacity() - 4);
}

TEST(ByteBuffer, AppendsDecimal) {
  ByteBuffer b;
  for (uint64_t v : {uint64_t{0}, uint64_t{7}, uint64_t{10}, uint64_t{1234567890}, UINT64_MAX}) {
    b.clear();
    b.append_decimal(v);
    EXPECT_EQ(b.view(), std::to_string(v));
  }
}

TEST(ByteBuffer, AppendsLowercaseHex) {
  ByteBuffer b;
  struct {
    uint64_t v;
    const char* hex;
  } cases[] = {{0, "0"}, {9, "9"}, {10, "a"}, {255, "ff"}, {4096, "1000"}, {UINT64_MAX, "ffffffffffffffff"}};
  for (const auto& c : cases) {
    b.clear();
    b.append_hex(c.v);
    EXPECT_EQ(b.view(), c.hex);
  }
}

TEST(ByteBuffer, ClearKeepsCapacity) {
  ByteBuffer b;
  b.append(std::string(10000, 'q'));
  size_t cap = b.capacity();
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), cap);
}

TEST(ByteBuffer, ReleaseGivesMemoryBack) {
  ByteBuffer b;
  b.append("data");
  b.release();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), 0u);
  b.append("again");
  EXPECT_EQ(b.view(), "again");
}

TEST(ByteBuffer, MovesOwnership) {
  ByteBuffer a;
  a.append("payload");
  a.consume(3);
  ByteBuffer b(std::move(a));
  EXPECT_EQ(b.view(), "load");
  EXPECT_EQ(a.capacity(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  ByteBuffer c;
  c.append("other");
  c = std::move(b);
  EXPECT_EQ(c.view(), "load");
}

TEST(ByteBufferDeathTest, ConsumingMoreThanHeldIsABug) {
  ByteBuffer b;
  b.append("abc");
  EXPECT_DEATH(b.consume(4), "check failed");
}

}  // namespace
}  // namespace ringmaster::base
