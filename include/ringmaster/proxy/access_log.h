// The access log: one JSON line per request, written by one thread from bounded per-reactor
// queues. A reactor never waits: when its queue is full (the disk or a pipe is slower than
// the traffic) the line is dropped and counted, never the request.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ringmaster/metrics/metrics.h"
#include "ringmaster/metrics/registry.h"

namespace ringmaster::proxy {

// One reactor's queue: a single-producer single-consumer byte ring of whole lines.
class AccessLogQueue {
 public:
  explicit AccessLogQueue(size_t bytes);  // rounded up to a power of two

  // Reactor: queues the whole line, or drops it (false, counted) when there is no room.
  bool push(std::string_view line);
  // Writer: the queued bytes as up to two pieces (the ring may wrap); returns how many.
  int peek(iovec iov[2]) const;
  // Writer: `bytes` of what peek() returned were written.
  void consume(size_t bytes);

  uint64_t lines() const { return lines_.get(); }
  uint64_t dropped() const { return dropped_.get(); }

 private:
  std::unique_ptr<char[]> data_;
  uint64_t size_;
  alignas(64) std::atomic<uint64_t> head_{0};  // bytes ever queued (the reactor writes it)
  alignas(64) std::atomic<uint64_t> tail_{0};  // bytes ever taken (the writer writes it)
  metrics::Counter lines_;                     // reactor-written
  metrics::Counter dropped_;                   // reactor-written
};

class AccessLog {
 public:
  // Opens `path` for appending (created 0640); throws std::runtime_error with the reason.
  AccessLog(std::string path, unsigned reactors, size_t queue_bytes);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  AccessLogQueue& queue(unsigned reactor) { return *queues_[reactor]; }
  void start();
  // Any thread: the writer opens the path again before its next write (SIGUSR1, after
  // logrotate moved the file away).
  void reopen();
  // Writes what is queued (as far as the file takes it without waiting) and ends the thread.
  void stop();
  // Registers the ringmaster_access_log_* counters (read from any thread).
  void register_metrics(metrics::Registry& registry) const;

 private:
  void run();
  void write_queued();
  void reopen_now();

  std::string path_;
  int fd_ = -1;
  std::vector<std::unique_ptr<AccessLogQueue>> queues_;
  int partial_ = -1;  // a queue whose last line was written in part: it goes first next time
  std::atomic<bool> reopen_requested_{false};
  metrics::Counter write_errors_;  // writer-written
  metrics::Counter reopens_;       // writer-written
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ringmaster::proxy
