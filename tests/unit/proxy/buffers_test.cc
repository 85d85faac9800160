#include <gtest/gtest.h>

#include <string>

#include "proxy/worker.h"

namespace ringmaster::proxy {
namespace {

TEST(TimerList, ExpiresInDeadlineOrderAndRearmingMovesToTheBack) {
  TimerList list(100);
  TimerNode a, b, c;
  list.arm(&a, 0);
  list.arm(&b, 10);
  list.arm(&c, 20);
  list.arm(&a, 30);  // activity on a: its deadline moves to 130
  EXPECT_EQ(list.pop_expired(109), nullptr);
  EXPECT_EQ(list.pop_expired(110), &b);
  EXPECT_EQ(list.pop_expired(119), nullptr);
  EXPECT_EQ(list.pop_expired(120), &c);
  EXPECT_EQ(list.pop_expired(129), nullptr);
  EXPECT_EQ(list.pop_expired(130), &a);
  EXPECT_EQ(list.pop_expired(1000), nullptr);
}

TEST(TimerList, DisarmedNodesNeverExpireAndMayMoveBetweenLists) {
  TimerList shorter(10), longer(1000);
  TimerNode a, b;
  shorter.arm(&a, 0);
  shorter.arm(&b, 0);
  TimerList::disarm(&a);
  TimerList::disarm(&a);  // twice is harmless
  longer.arm(&b, 0);      // arming elsewhere unlinks from the first list
  EXPECT_EQ(shorter.pop_expired(100), nullptr);
  EXPECT_EQ(longer.pop_expired(1000), &b);
}

TEST(OutQueue, BytesAppendedDuringASendAreSentAfterItInOrder) {
  OutQueue q;
  q.pending().append("hello ");
  const char* data;
  size_t len;
  ASSERT_TRUE(q.next_send(&data, &len));
  EXPECT_EQ(std::string(data, len), "hello ");
  const char* inflight = data;
  EXPECT_FALSE(q.next_send(&data, &len));  // one send at a time
  // Appends while the kernel reads `inflight` must not move it.
  for (int i = 0; i < 1000; ++i) q.pending().append("world ");
  EXPECT_EQ(std::string(inflight, 6), "hello ");
  q.on_sent(2);  // partial send
  ASSERT_TRUE(q.next_send(&data, &len));
  EXPECT_EQ(std::string(data, len), "llo ");
  q.on_sent(len);
  ASSERT_TRUE(q.next_send(&data, &len));
  EXPECT_EQ(len, 6000u);
  EXPECT_EQ(q.size(), 6000u);
  q.on_sent(len);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.next_send(&data, &len));
}

}  // namespace
}  // namespace ringmaster::proxy
