#pragma once

#include <cstdint>
#include <ctime>

namespace ringmaster::base {

// Monotonic milliseconds; the unit of every deadline in the data plane.
inline int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Monotonic microseconds, precise (not the coarse clock): request latencies.
inline int64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace ringmaster::base
