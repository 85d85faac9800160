#include "ringmaster/proxy/access_log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace ringmaster::proxy {
namespace {

std::string take_all(AccessLogQueue& q) {
  iovec iov[2];
  int n = q.peek(iov);
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  q.consume(out.size());
  return out;
}

TEST(AccessLogQueueTest, LinesComeOutWholeAcrossTheWrap) {
  AccessLogQueue q(256);
  std::string line(100, 'a');
  line.back() = '\n';
  EXPECT_TRUE(q.push(line));
  EXPECT_TRUE(q.push(line));
  EXPECT_EQ(take_all(q), line + line);
  // The ring now wraps inside the next lines; they still come out in order, whole.
  std::string other(100, 'b');
  other.back() = '\n';
  EXPECT_TRUE(q.push(other));
  EXPECT_TRUE(q.push(line));
  iovec iov[2];
  EXPECT_EQ(q.peek(iov), 2);
  EXPECT_EQ(take_all(q), other + line);
  EXPECT_EQ(q.lines(), 4u);
  EXPECT_EQ(q.dropped(), 0u);
}

TEST(AccessLogQueueTest, FullQueueDropsAndCountsWholeLines) {
  AccessLogQueue q(256);
  std::string line(100, 'x');
  EXPECT_TRUE(q.push(line));
  EXPECT_TRUE(q.push(line));
  EXPECT_FALSE(q.push(line));  // 56 bytes left: never half a line
  EXPECT_EQ(q.dropped(), 1u);
  EXPECT_EQ(take_all(q).size(), 200u);
  EXPECT_TRUE(q.push(line));
}

TEST(AccessLogQueueTest, OneProducerOneConsumerLoseNothingThatWasQueued) {
  AccessLogQueue q(4096);
  constexpr int kLines = 20000;
  std::string received;
  std::thread consumer([&] {
    while (received.size() < static_cast<size_t>(kLines) * 8) {
      received += take_all(q);
    }
  });
  int queued = 0;
  for (int i = 0; i < kLines; ++i) {
    char line[16];
    std::snprintf(line, sizeof line, "%07d\n", i);
    while (!q.push(line)) {
    }
    ++queued;
  }
  consumer.join();
  ASSERT_EQ(received.size(), static_cast<size_t>(kLines) * 8);
  for (int i = 0; i < kLines; ++i) {
    char line[16];
    std::snprintf(line, sizeof line, "%07d\n", i);
    ASSERT_EQ(received.compare(static_cast<size_t>(i) * 8, 8, line), 0) << i;
  }
  EXPECT_EQ(queued, kLines);
}

}  // namespace
}  // namespace ringmaster::proxy
