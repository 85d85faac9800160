// Zero-downtime binary upgrade: the running proxy hands its listening sockets to a new
// process over a Unix socket (--upgrade-socket PATH), then drains and exits. The sockets
// never close, so no connection is refused; the old process finishes what it accepted.
//
//   new process                          old process (UpgradeListener thread)
//   connect(PATH)               ──────►  accept
//                               ◄──────  "RMLS" + count, SCM_RIGHTS: one listener per reactor
//   start reactors on them, admin
//   "R" (ready)                 ──────►  on_handed_over(): drain as on SIGTERM, minus shutdown()
//   unlink(PATH), bind(PATH): the next upgrade comes to the new process
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace ringmaster::proxy {

// New side. A connection to the running proxy's upgrade socket, or -1 when nothing listens
// at PATH (no file, or a stale one: a first start). Throws std::runtime_error on other errors.
int upgrade_connect(const std::string& path);
// The listeners the running proxy sends (one per reactor, CLOEXEC); throws std::runtime_error.
std::vector<int> upgrade_receive(int conn);
// Tells the old process we serve; it starts draining. Closes `conn`.
void upgrade_confirm(int conn);

// Old side: listens at PATH (replacing whatever file is there) and hands `listen_fds` to the
// first process that asks and confirms; then calls on_handed_over once and stops listening.
class UpgradeListener {
 public:
  UpgradeListener(std::string path, std::vector<int> listen_fds, std::function<void()> on_handed_over);
  ~UpgradeListener();
  UpgradeListener(const UpgradeListener&) = delete;
  UpgradeListener& operator=(const UpgradeListener&) = delete;

  void start();

 private:
  void run();
  bool serve(int conn);  // true once handed over

  std::string path_;
  std::vector<int> listen_fds_;
  std::function<void()> on_handed_over_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the thread to end
  std::thread thread_;
};

}  // namespace ringmaster::proxy
