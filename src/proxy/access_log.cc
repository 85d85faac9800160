#include "ringmaster/proxy/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "ringmaster/base/log.h"

namespace ringmaster::proxy {
namespace {

// How often the writer takes what the reactors queued.
constexpr auto kWriteInterval = std::chrono::milliseconds(10);

// Non-blocking: a stalled pipe or FIFO reader makes writes fail with EAGAIN instead of
// stopping the writer thread (or the shutdown); the queues then fill and lines are dropped.
int open_log(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
}

}  // namespace

AccessLogQueue::AccessLogQueue(size_t bytes) : size_(std::bit_ceil(std::max<size_t>(bytes, 256))) {
  data_ = std::make_unique<char[]>(size_);
}

bool AccessLogQueue::push(std::string_view line) {
  uint64_t head = head_.load(std::memory_order_relaxed);
  uint64_t tail = tail_.load(std::memory_order_acquire);
  if (size_ - (head - tail) < line.size()) {
    dropped_.add();
    return false;
  }
  size_t at = head & (size_ - 1);
  size_t first = std::min<size_t>(line.size(), size_ - at);
  std::memcpy(data_.get() + at, line.data(), first);
  std::memcpy(data_.get(), line.data() + first, line.size() - first);
  head_.store(head + line.size(), std::memory_order_release);
  lines_.add();
  return true;
}

int AccessLogQueue::peek(iovec iov[2]) const {
  uint64_t head = head_.load(std::memory_order_acquire);
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (head == tail) return 0;
  size_t at = tail & (size_ - 1);
  size_t len = head - tail;
  size_t first = std::min<size_t>(len, size_ - at);
  iov[0] = {data_.get() + at, first};
  if (first == len) return 1;
  iov[1] = {data_.get(), len - first};
  return 2;
}

void AccessLogQueue::consume(size_t bytes) {
  tail_.store(tail_.load(std::memory_order_relaxed) + bytes, std::memory_order_release);
}

AccessLog::AccessLog(std::string path, unsigned reactors, size_t queue_bytes) : path_(std::move(path)) {
  fd_ = open_log(path_);
  if (fd_ < 0) throw std::runtime_error("--access-log: cannot open " + path_ + ": " + std::strerror(errno));
  for (unsigned i = 0; i < reactors; ++i) queues_.push_back(std::make_unique<AccessLogQueue>(queue_bytes));
}

AccessLog::~AccessLog() {
  stop();
  if (fd_ >= 0) ::close(fd_);
}

void AccessLog::start() {
  thread_ = std::thread([this] {
    base::set_thread_name("access-log");
    run();
  });
}

void AccessLog::reopen() {
  reopen_requested_.store(true, std::memory_order_relaxed);
  cv_.notify_all();
}

void AccessLog::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AccessLog::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    bool stopping = stop_;
    lock.unlock();
    if (reopen_requested_.exchange(false, std::memory_order_relaxed)) reopen_now();
    write_queued();
    lock.lock();
    if (stopping) return;
    cv_.wait_for(lock, kWriteInterval, [this] { return stop_ || reopen_requested_.load(std::memory_order_relaxed); });
  }
}

void AccessLog::reopen_now() {
  int fd = open_log(path_);
  if (fd < 0) {
    write_errors_.add();
    RM_LOG_WARN("access log: cannot reopen %s: %s (still writing to the old file)", path_.c_str(), std::strerror(errno));
    return;
  }
  ::close(fd_);
  fd_ = fd;
  reopens_.add();
}

void AccessLog::write_queued() {
  // Lines from different reactors must not interleave: after a partial write, only that
  // queue is written until its line is complete.
  size_t n = queues_.size();
  size_t first = partial_ >= 0 ? static_cast<size_t>(partial_) : 0;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (first + k) % n;
    AccessLogQueue& q = *queues_[i];
    iovec iov[2];
    int pieces = q.peek(iov);
    if (pieces == 0) continue;
    size_t want = iov[0].iov_len + (pieces == 2 ? iov[1].iov_len : 0);
    ssize_t wrote = ::writev(fd_, iov, pieces);
    if (wrote < 0) {
      if (errno != EAGAIN && errno != EINTR) write_errors_.add();
      return;  // the queue keeps its bytes; if this lasts, reactors drop lines
    }
    q.consume(static_cast<size_t>(wrote));
    if (static_cast<size_t>(wrote) < want) {
      partial_ = static_cast<int>(i);
      return;
    }
    partial_ = -1;
  }
}

void AccessLog::register_metrics(metrics::Registry& registry) const {
  registry.counter("ringmaster_access_log_lines_total", "Access log lines queued for writing.", [this] {
    uint64_t lines = 0;
    for (const auto& q : queues_) lines += q->lines();
    return lines;
  });
  registry.counter("ringmaster_access_log_dropped_total",
                   "Access log lines dropped because the writer was behind (the requests were served).", [this] {
                     uint64_t dropped = 0;
                     for (const auto& q : queues_) dropped += q->dropped();
                     return dropped;
                   });
  registry.counter("ringmaster_access_log_write_errors_total", "Failed writes and reopens of the access log.",
                   [this] { return write_errors_.get(); });
  registry.counter("ringmaster_access_log_reopens_total", "Access log reopens (SIGUSR1).",
                   [this] { return reopens_.get(); });
}

}  // namespace ringmaster::proxy
