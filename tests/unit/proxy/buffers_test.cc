#include <gtest/gtest.h>

#include <string>
#include <vector>

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

TEST(TimerListSet, ServicesWithOneDurationShareAListAndAnUnusedListGoesOnceEmpty) {
  TimerListSet set;
  TimerList* a = set.acquire(300);
  TimerList* b = set.acquire(20000);
  EXPECT_EQ(set.acquire(300), a);  // a second service with the same timeout
  EXPECT_NE(a, b);
  TimerNode quick, patient;
  a->arm(&quick, 0);
  b->arm(&patient, 0);
  std::vector<TimerNode*> expired;
  set.expire(299, [&](TimerNode* n) { expired.push_back(n); });
  EXPECT_TRUE(expired.empty());
  set.expire(300, [&](TimerNode* n) { expired.push_back(n); });
  EXPECT_EQ(expired, std::vector<TimerNode*>{&quick});
  // A reload changed the services' timeout: the list is unused, but a request routed before
  // still waits in it, so it stays until that node is gone.
  a->arm(&quick, 1000);
  set.release(a);
  set.release(a);
  set.expire(1299, [&](TimerNode* n) { expired.push_back(n); });
  EXPECT_EQ(expired.size(), 1u);
  set.expire(1300, [&](TimerNode* n) { expired.push_back(n); });
  EXPECT_EQ(expired.back(), &quick);
  // Freed now: the next service with that timeout gets a fresh list, still O(1) to arm.
  TimerList* again = set.acquire(300);
  EXPECT_EQ(again->duration_ms(), 300);
  EXPECT_TRUE(again->empty());
  set.expire(INT64_MAX, [&](TimerNode* n) { expired.push_back(n); });  // drains every list
  EXPECT_EQ(expired.back(), &patient);
}

std::string gather(const msghdr* msg) {
  std::string out;
  for (size_t i = 0; i < msg->msg_iovlen; ++i) {
    out.append(static_cast<const char*>(msg->msg_iov[i].iov_base), msg->msg_iov[i].iov_len);
  }
  return out;
}

TEST(OutQueue, BytesAppendedDuringASendAreSentAfterItInOrder) {
  OutQueue q;
  q.pending().append("hello ");
  const msghdr* msg = q.next_send();
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(gather(msg), "hello ");
  const char* inflight = static_cast<const char*>(msg->msg_iov[0].iov_base);
  EXPECT_EQ(q.next_send(), nullptr);  // one send at a time
  // Appends while the kernel reads `inflight` must not move it.
  for (int i = 0; i < 1000; ++i) q.pending().append("world ");
  EXPECT_EQ(std::string(inflight, 6), "hello ");
  q.on_sent(2);  // partial send
  msg = q.next_send();
  ASSERT_NE(msg, nullptr);
  std::string next = gather(msg);
  EXPECT_EQ(next.substr(0, 4), "llo ");
  EXPECT_EQ(next.size(), 4u + 6000u);
  q.on_sent(next.size());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.next_send(), nullptr);
}

TEST(OutQueue, SharedSegmentsAreSentFromTheirOwnerWithoutCopyAndKeptAliveUntilSent) {
  auto* entry = new cache::Entry();
  entry->body = "0123456789";
  OutQueue q;
  q.pending().append("head\r\n");
  q.append_shared(cache::EntryRef(entry), entry->body.data(), entry->body.size());
  q.pending().append("tail");
  EXPECT_EQ(q.size(), 6u + 10u + 4u);
  const msghdr* msg = q.next_send();
  ASSERT_NE(msg, nullptr);
  ASSERT_EQ(msg->msg_iovlen, 3u);
  EXPECT_EQ(msg->msg_iov[1].iov_base, entry->body.data());  // the entry's own bytes
  EXPECT_EQ(gather(msg), "head\r\n0123456789tail");
  EXPECT_EQ(entry->refs.load(), 1u);  // the queue holds the only reference
  q.on_sent(6 + 3);
  msg = q.next_send();
  EXPECT_EQ(gather(msg), "3456789tail");
  q.on_sent(11);
  EXPECT_TRUE(q.empty());  // the reference was dropped (ASan would flag a leak otherwise)
}

TEST(OutQueue, AnEmptyOpenChunkBeforeASharedOneDoesNotStallTheQueue) {
  auto* entry = new cache::Entry();
  entry->body = "body";
  OutQueue q;
  q.pending();  // opened, nothing written (a cache hit writes its head into the entry's bytes)
  q.append_shared(cache::EntryRef(entry), entry->body.data(), entry->body.size());
  const msghdr* msg = q.next_send();
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(gather(msg), "body");
  q.pending().append("next");  // appended while the send is outstanding
  q.on_sent(4);
  msg = q.next_send();
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(gather(msg), "next");
  q.on_sent(4);
  EXPECT_TRUE(q.empty());
}

TEST(OutQueue, BackedUpByBytesOrByManySmallSharedAnswers) {
  OutQueue q;
  EXPECT_FALSE(q.backed_up(100));
  q.pending().append(std::string(99, 'x'));
  EXPECT_FALSE(q.backed_up(100));
  q.pending().append("y");
  EXPECT_TRUE(q.backed_up(100));
  OutQueue answers;
  auto* entry = new cache::Entry();
  entry->body = "b";
  cache::EntryRef ref(entry);
  // One-byte answers: never many bytes, but a queue of them is backed up all the same.
  int appended = 0;
  while (!answers.backed_up(1 << 20) && appended < 1000) {
    answers.append_shared(ref.share(), entry->body.data(), entry->body.size());
    ++appended;
  }
  EXPECT_TRUE(answers.backed_up(1 << 20));
  EXPECT_LE(appended, 8 * OutQueue::kIovMax + 1);
  // Sending drains it below the mark again.
  for (;;) {
    const msghdr* msg = answers.next_send();
    if (msg == nullptr) break;
    answers.on_sent(gather(msg).size());
  }
  EXPECT_FALSE(answers.backed_up(1 << 20));
}

TEST(OutQueue, SentBuffersGoBackToThePoolAndReleaseLeavesNothingBehind) {
  BufferPool pool;
  OutQueue q(&pool);
  q.pending().append("first answer");
  const msghdr* msg = q.next_send();
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(gather(msg), "first answer");
  q.on_sent(12);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(pool.spare(), 1u);  // the emptied buffer, for the next connection that writes
  q.pending().append("second");
  EXPECT_EQ(pool.spare(), 0u);  // taken again, not allocated
  q.release();
  EXPECT_EQ(pool.spare(), 1u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.next_send(), nullptr);
}

TEST(OutQueue, AReleasedQueuesChunkListIsReusedAndAOneBufferSendIsAPlainSend) {
  BufferPool pool;
  OutQueue a(&pool);
  OutQueue b(&pool);
  a.pending().append("answer");
  const msghdr* msg = a.next_send();
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(msg->msg_iovlen, 1u);  // prep_send makes it IORING_OP_SEND
  EXPECT_EQ(gather(msg), "answer");
  a.on_sent(6);
  a.release();
  EXPECT_EQ(pool.spare_chunk_lists(), 1u);  // kept for the next answer, not freed
  b.pending().append("next");
  EXPECT_EQ(pool.spare_chunk_lists(), 0u);  // taken, not allocated
  // Two buffers: a sendmsg whose message is the queue's own (read at submission).
  auto entry = std::make_unique<cache::Entry>();
  entry->body = "shared";
  cache::EntryRef ref(entry.release());
  b.append_shared(ref.share(), ref->body.data(), ref->body.size());
  msg = b.next_send();
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(msg->msg_iovlen, 2u);
  a.pending().append("other");
  const msghdr* other = a.next_send();  // another queue's one-buffer send meanwhile
  EXPECT_EQ(gather(other), "other");
  EXPECT_EQ(gather(msg), "nextshared");
}

TEST(BufferPool, KeepsABoundedNumberOfOrdinarySizedBuffers) {
  BufferPool pool;
  for (size_t i = 0; i < BufferPool::kSpareMax + 5; ++i) {
    base::ByteBuffer b;
    b.append("x");
    pool.give(std::move(b));
  }
  EXPECT_EQ(pool.spare(), BufferPool::kSpareMax);
  base::ByteBuffer big;
  big.reserve_back(BufferPool::kKeptBytesMax + 1);
  pool.clear();
  pool.give(std::move(big));
  EXPECT_EQ(pool.spare(), 0u);  // grown for a large answer: freed, not kept
  pool.give(base::ByteBuffer());
  EXPECT_EQ(pool.spare(), 0u);  // nothing allocated: nothing to keep
}

}  // namespace
}  // namespace ringmaster::proxy
