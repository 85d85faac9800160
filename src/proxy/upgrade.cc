#include "ringmaster/proxy/upgrade.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "ringmaster/base/log.h"

namespace ringmaster::proxy {
namespace {

constexpr char kMagic[4] = {'R', 'M', 'L', 'S'};
constexpr size_t kFdsMax = 253;  // SCM_MAX_FD: one message carries them all
// How long the old process waits for the new one to say it serves.
constexpr int kConfirmTimeoutMs = 30000;

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) throw std::runtime_error("--upgrade-socket: path too long: " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

}  // namespace

int upgrade_connect(const std::string& path) {
  sockaddr_un a = unix_address(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("--upgrade-socket: socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  int err = errno;
  ::close(fd);
  if (err == ENOENT || err == ECONNREFUSED) return -1;
  errno = err;
  fail("--upgrade-socket: connect " + path);
}

std::vector<int> upgrade_receive(int conn) {
  char header[8];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kFdsMax)];
  iovec iov{header, sizeof header};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  if (n < 0) fail("--upgrade-socket: receiving the listeners");
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  uint32_t count = 0;
  if (n == sizeof header) std::memcpy(&count, header + 4, sizeof count);
  if (n != sizeof header || std::memcmp(header, kMagic, 4) != 0 || count != fds.size() || fds.empty() ||
      (msg.msg_flags & MSG_CTRUNC)) {
    for (int fd : fds) ::close(fd);
    throw std::runtime_error("--upgrade-socket: the running proxy sent no usable listeners");
  }
  return fds;
}

void upgrade_confirm(int conn) {
  char ready = 'R';
  if (send(conn, &ready, 1, MSG_NOSIGNAL) != 1) RM_LOG_WARN("upgrade: could not confirm to the old process");
  ::close(conn);
}

UpgradeListener::UpgradeListener(std::string path, std::vector<int> listen_fds, std::function<void()> on_handed_over)
    : path_(std::move(path)), listen_fds_(std::move(listen_fds)), on_handed_over_(std::move(on_handed_over)) {
  if (listen_fds_.size() > kFdsMax) throw std::runtime_error("--upgrade-socket: at most 253 reactors can be handed over");
  sockaddr_un a = unix_address(path_);
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("--upgrade-socket: socket");
  // The file belongs to the process we took over from (it no longer listens there) or is
  // stale; the next upgrade must find us.
  ::unlink(path_.c_str());
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(listen_fd_, 4) < 0) {
    int err = errno;
    ::close(listen_fd_);
    errno = err;
    fail("--upgrade-socket: listen on " + path_);
  }
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
}

UpgradeListener::~UpgradeListener() {
  uint64_t one = 1;
  if (stop_fd_ >= 0 && write(stop_fd_, &one, sizeof one) < 0) {
  }
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  // The path is left alone: after a handover it is the next process's.
}

void UpgradeListener::start() {
  thread_ = std::thread([this] {
    base::set_thread_name("upgrade");
    run();
  });
}

void UpgradeListener::run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    bool handed_over = serve(conn);
    ::close(conn);
    if (handed_over) {
      on_handed_over_();
      return;
    }
  }
}

bool UpgradeListener::serve(int conn) {
  char header[8];
  std::memcpy(header, kMagic, 4);
  uint32_t count = static_cast<uint32_t>(listen_fds_.size());
  std::memcpy(header + 4, &count, sizeof count);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kFdsMax)] = {};
  iovec iov{header, sizeof header};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * listen_fds_.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * listen_fds_.size());
  std::memcpy(CMSG_DATA(c), listen_fds_.data(), sizeof(int) * listen_fds_.size());
  if (sendmsg(conn, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof header)) {
    RM_LOG_WARN("upgrade: sending the listeners failed: %s", std::strerror(errno));
    return false;
  }
  RM_LOG_INFO("upgrade: listeners sent to a new process; waiting for it to serve");
  // The new process may fail to start: then it closes without confirming and we go on.
  pollfd p[2] = {{conn, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  if (poll(p, 2, kConfirmTimeoutMs) <= 0 || p[1].revents) return false;
  char ready = 0;
  if (recv(conn, &ready, 1, 0) != 1 || ready != 'R') {
    RM_LOG_WARN("upgrade: the new process went away before serving; still serving here");
    return false;
  }
  RM_LOG_INFO("upgrade: the new process serves; draining");
  return true;
}

}  // namespace ringmaster::proxy
