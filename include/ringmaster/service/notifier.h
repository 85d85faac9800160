// service: systemd's notification protocol for `Type=notify` units (libsystemd's sd_notify).
// Without NOTIFY_SOCKET in the environment every message is a no-op, so the same binary
// runs unchanged outside systemd.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ringmaster::service {

struct NotifierHooks {
  // Polled by the notifier thread until it returns true; READY=1 is then sent once.
  std::function<bool()> ready;
  // One loop counter per reactor. WATCHDOG=1 is sent only after every counter moved since
  // the previous ping, so a stuck reactor lets systemd's watchdog fire.
  std::function<std::vector<uint64_t>()> reactor_turns;
  // STATUS= text sent with READY=1 ("" for none).
  std::string ready_status;
};

class Notifier {
 public:
  explicit Notifier(NotifierHooks hooks);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Starts the thread that sends READY=1 and the watchdog pings (WATCHDOG_USEC).
  void start();
  // RELOADING=1 (with MONOTONIC_USEC, as systemd asks) before a reload, READY=1 after it;
  // neither before the first READY=1 (a reload during start-up is just done).
  void reloading();
  void reloaded();
  // STOPPING=1, then the thread ends (the drain is governed by systemd's stop timeout).
  void stopping();
  // After handing the listeners to a new process (README "Upgrade under systemd"): the thread
  // ends and nothing is sent. The new process is the service's main process now; a STOPPING=1
  // from this one would make systemd stop the whole unit.
  void handed_over();
  // A new process that took the listeners over, before it tells the old one to go:
  // MAINPID=<this pid>, with READY=1 (and STATUS=) when ready() already holds, in one message.
  // Call before start(). Sent before the old process can exit, so systemd (which handles
  // notifications ahead of SIGCHLD) follows the main process instead of seeing it exit.
  void became_main();

  // The watchdog period systemd asked for (0: none), from WATCHDOG_USEC/WATCHDOG_PID.
  static uint64_t watchdog_usec();
  // True when every element of `now` differs from `last` (and the sizes agree).
  static bool all_advanced(const std::vector<uint64_t>& last, const std::vector<uint64_t>& now);

 private:
  void run();
  void stop_thread();
  std::string ready_message() const;

  NotifierHooks hooks_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> ready_sent_{false};
  std::thread thread_;
};

}  // namespace ringmaster::service
