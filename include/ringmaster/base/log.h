#pragma once

#include <cstdarg>

namespace ringmaster::base {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
// One line to stderr, prefixed with time, level and thread name. Not for the per-request path.
void log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void set_thread_name(const char* name);

}  // namespace ringmaster::base

#define RM_LOG_INFO(...) ::ringmaster::base::log(::ringmaster::base::LogLevel::info, __VA_ARGS__)
#define RM_LOG_WARN(...) ::ringmaster::base::log(::ringmaster::base::LogLevel::warn, __VA_ARGS__)
#define RM_LOG_ERROR(...) ::ringmaster::base::log(::ringmaster::base::LogLevel::error, __VA_ARGS__)
#define RM_LOG_DEBUG(...)                                                     \
  do {                                                                        \
    if (::ringmaster::base::log_enabled(::ringmaster::base::LogLevel::debug)) \
      ::ringmaster::base::log(::ringmaster::base::LogLevel::debug, __VA_ARGS__); \
  } while (0)
