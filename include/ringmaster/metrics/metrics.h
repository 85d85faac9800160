// metrics: counters the data plane bumps and the admin listener reads. Their Prometheus text
// is written by the registry (registry.h), the one renderer. A Counter has exactly one writing thread (its reactor or the coordinator):
// it is bumped with a relaxed load + store, never a locked read-modify-write, and read
// from any thread with a relaxed load.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
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

// A latency histogram with one writing thread (its reactor): observe() bumps one bucket and
// the sum, relaxed, no lock; readers sum the reactors' histograms at scrape time.
class Histogram {
 public:
  // Upper bounds in microseconds (Prometheus "le", written in seconds): 100 µs .. 10 s.
  static constexpr std::array<uint64_t, 16> kBoundsUs = {100,    250,    500,     1000,    2500,    5000,
                                                         10000,  25000,  50000,   100000,  250000,  500000,
                                                         1000000, 2500000, 5000000, 10000000};
  void observe_us(uint64_t us) {
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    buckets_[i].add();
    sum_us_.add(us);
  }
  // Observations in bucket i alone (not cumulative); i == kBoundsUs.size() is above the last.
  uint64_t bucket(size_t i) const { return buckets_[i].get(); }
  uint64_t sum_us() const { return sum_us_.get(); }

 private:
  std::array<Counter, kBoundsUs.size() + 1> buckets_;
  Counter sum_us_;
};

// Escapes a label value (backslash, double quote, newline).
std::string label_value(std::string_view raw);

}  // namespace ringmaster::metrics
