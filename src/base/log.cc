#include "ringmaster/base/log.h"

#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace ringmaster::base {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
thread_local char t_name[16] = "main";
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "?";
}
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void set_thread_name(const char* name) {
  std::snprintf(t_name, sizeof t_name, "%s", name);
  pthread_setname_np(pthread_self(), t_name);
}

void log(LogLevel level, const char* fmt, ...) {
  if (!log_enabled(level)) return;
  char line[1024];
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tm_utc;
  gmtime_r(&ts.tv_sec, &tm_utc);
  int n = std::snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %s [%s] ", tm_utc.tm_hour, tm_utc.tm_min,
                        tm_utc.tm_sec, ts.tv_nsec / 1000000, level_name(level), t_name);
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : std::min<size_t>(m, sizeof line - n - 2));
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
}

}  // namespace ringmaster::base
