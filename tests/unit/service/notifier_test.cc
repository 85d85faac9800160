#include "ringmaster/service/notifier.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <thread>

namespace ringmaster::service {
namespace {

TEST(NotifierTest, WatchdogNeedsEveryReactorToAdvance) {
  EXPECT_TRUE(Notifier::all_advanced({1, 5}, {2, 9}));
  EXPECT_FALSE(Notifier::all_advanced({1, 5}, {2, 5}));  // the second reactor is stuck
  EXPECT_FALSE(Notifier::all_advanced({1}, {2, 3}));     // a mismatch is never "turning"
}

TEST(NotifierTest, WatchdogPeriodComesFromTheEnvironment) {
  unsetenv("WATCHDOG_USEC");
  EXPECT_EQ(Notifier::watchdog_usec(), 0u);
  setenv("WATCHDOG_USEC", "250000", 1);
  EXPECT_EQ(Notifier::watchdog_usec(), 250000u);
  setenv("WATCHDOG_PID", "1", 1);  // meant for another process
  EXPECT_EQ(Notifier::watchdog_usec(), 0u);
  unsetenv("WATCHDOG_PID");
  unsetenv("WATCHDOG_USEC");
}

TEST(NotifierTest, WithoutNotifySocketEverythingIsANoOp) {
  unsetenv("NOTIFY_SOCKET");
  std::atomic<int> polls{0};
  Notifier n({[&polls] { return ++polls > 1; }, [] { return std::vector<uint64_t>{1}; }, "status"});
  n.start();
  while (polls.load() < 2) std::this_thread::yield();  // READY=1 "sent" to nobody
  n.stopping();  // returns: the thread ended
  EXPECT_GE(polls.load(), 2);
}

}  // namespace
}  // namespace ringmaster::service
