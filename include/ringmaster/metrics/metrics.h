// metrics: counters the data plane bumps and the admin listener reads, plus the Prometheus
// text format. A Counter has exactly one writing thread (its reactor or the coordinator):
// it is bumped with a relaxed load + store, never a locked read-modify-write, and read
// from any thread with a relaxed load.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmaster::metrics {

class Counter {
 public:
  void add(uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A gauge written by one thread, read by any.
class Gauge {
 public:
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  int64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Builds Prometheus text exposition (version 0.0.4).
class TextWriter {
 public:
  // Writes "# HELP" and "# TYPE" once per family; call before its samples.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample: name{labels} value. `labels` is preformatted ("target=\"a:1\"") or empty.
  void sample(std::string_view name, std::string_view labels, uint64_t value);
  void sample(std::string_view name, std::string_view labels, int64_t value);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// Escapes a label value (backslash, double quote, newline).
std::string label_value(std::string_view raw);

}  // namespace ringmaster::metrics
