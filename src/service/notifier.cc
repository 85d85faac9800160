#include "ringmaster/service/notifier.h"

#include <systemd/sd-daemon.h>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "ringmaster/base/log.h"

namespace ringmaster::service {
namespace {

// How often readiness is polled before READY=1 (the first ZooKeeper snapshot can take a while).
constexpr auto kReadyPoll = std::chrono::milliseconds(20);
// Watchdog checks happen four times per period, but not more often than this: reactors wake
// at least every 50 ms, so a shorter check would mostly see idle reactors as stuck.
constexpr auto kWatchdogCheckMin = std::chrono::milliseconds(10);

}  // namespace

Notifier::Notifier(NotifierHooks hooks) : hooks_(std::move(hooks)) {}

Notifier::~Notifier() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Notifier::watchdog_usec() {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

bool Notifier::all_advanced(const std::vector<uint64_t>& last, const std::vector<uint64_t>& now) {
  if (last.size() != now.size()) return false;
  for (size_t i = 0; i < now.size(); ++i) {
    if (now[i] == last[i]) return false;
  }
  return true;
}

void Notifier::start() {
  thread_ = std::thread([this] {
    base::set_thread_name("sd-notify");
    run();
  });
}

void Notifier::reloading() {
  if (!ready_sent_.load()) return;
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  std::string message = "RELOADING=1\nMONOTONIC_USEC=" +
                        std::to_string(static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000);
  sd_notify(0, message.c_str());
}

void Notifier::reloaded() {
  if (ready_sent_.load()) sd_notify(0, "READY=1");
}

void Notifier::stopping() {
  sd_notify(0, "STOPPING=1");
  stop_thread();
}

void Notifier::handed_over() { stop_thread(); }

void Notifier::stop_thread() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string Notifier::ready_message() const {
  std::string message = "READY=1";
  if (!hooks_.ready_status.empty()) message += "\nSTATUS=" + hooks_.ready_status;
  return message;
}

void Notifier::became_main() {
  std::string message = "MAINPID=" + std::to_string(getpid());
  if (hooks_.ready()) {
    message += '\n';
    message += ready_message();  // appended, not "\n" + ...: GCC 12 -O3 warns (-Wrestrict) on that
    ready_sent_.store(true);
  }
  sd_notify(0, message.c_str());
}

void Notifier::run() {
  const uint64_t watchdog = watchdog_usec();
  const auto check = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::microseconds(watchdog / 4)),
                              std::chrono::milliseconds(kWatchdogCheckMin));
  bool ready = ready_sent_.load();  // became_main() may have sent it
  std::vector<uint64_t> last = hooks_.reactor_turns();
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    if (!ready && hooks_.ready()) {
      ready = true;
      sd_notify(0, ready_message().c_str());
      ready_sent_.store(true);
    }
    if (watchdog != 0) {
      std::vector<uint64_t> now = hooks_.reactor_turns();
      if (all_advanced(last, now)) {
        sd_notify(0, "WATCHDOG=1");
        last = std::move(now);
      }
    }
    lock.lock();
    if (ready && watchdog == 0) {
      cv_.wait(lock, [this] { return stop_; });
    } else {
      cv_.wait_for(lock, ready ? check : std::min(check, kReadyPoll), [this] { return stop_; });
    }
  }
}

}  // namespace ringmaster::service
