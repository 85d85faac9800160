#include "ringmaster/service/notifier.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <string>

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

// A fake systemd: the datagram socket NOTIFY_SOCKET names.
class NotifySink {
 public:
  NotifySink() : path_(testing::TempDir() + "notifier_test.sock." + std::to_string(getpid())) {
    ::unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~NotifySink() {
    unsetenv("NOTIFY_SOCKET");
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  // The next message, or "" after a second.
  std::string next() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1) return "";
    char buffer[4096];
    ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }
  bool empty() {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, 0) == 0;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(NotifierTest, BecameMainSendsMainPidWithReadyInOneMessageAndReadyOnlyOnce) {
  NotifySink systemd;
  Notifier n({[] { return true; }, [] { return std::vector<uint64_t>{1}; }, "listening on x"});
  n.became_main();
  EXPECT_EQ(systemd.next(), "MAINPID=" + std::to_string(getpid()) + "\nREADY=1\nSTATUS=listening on x");
  n.start();
  n.stopping();
  EXPECT_EQ(systemd.next(), "STOPPING=1");  // no second READY=1 from the thread
  EXPECT_TRUE(systemd.empty());
}

TEST(NotifierTest, BecameMainBeforeReadySendsReadyLater) {
  NotifySink systemd;
  std::atomic<bool> ready{false};
  Notifier n({[&ready] { return ready.load(); }, [] { return std::vector<uint64_t>{1}; }, ""});
  n.became_main();
  EXPECT_EQ(systemd.next(), "MAINPID=" + std::to_string(getpid()));
  n.start();
  ready = true;
  EXPECT_EQ(systemd.next(), "READY=1");
  n.stopping();
  EXPECT_EQ(systemd.next(), "STOPPING=1");
}

TEST(NotifierTest, HandedOverSendsNothing) {
  NotifySink systemd;
  Notifier n({[] { return true; }, [] { return std::vector<uint64_t>{1}; }, ""});
  n.start();
  EXPECT_EQ(systemd.next(), "READY=1");
  n.handed_over();  // the new process is systemd's main process now
  EXPECT_TRUE(systemd.empty());
}

}  // namespace
}  // namespace ringmaster::service
