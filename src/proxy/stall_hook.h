// Test hook: wedge reactor 0 on purpose, so a test can watch the systemd watchdog stop
// (tests/integration/test_systemd_notify.py; README "Installing from the package").
//
// RINGMASTER_TEST_STALL_FILE=PATH, read once when the reactor starts, turns it on. While PATH
// exists, reactor 0 sleeps at the top of its loop and its loop counter stands still, exactly
// like a reactor stuck in a system call or a loop; removing PATH lets it go on.
//
// Why this is safe to ship: without the variable (the default, and nothing the package sets)
// the reactor reads one null pointer per turn and nothing else. The variable is read only at
// start, from the process's own environment, so it cannot be switched on from outside a
// running proxy; whoever can set a service's environment can already stop the service. The
// file is only tested for existence, never read.
#pragma once

#include <time.h>
#include <unistd.h>

#include <cstdlib>

namespace ringmaster::proxy {

// The path for reactor `index`, or nullptr (the hook is off, or not this reactor's).
inline const char* stall_hook_path(int index) {
  if (index != 0) return nullptr;
  const char* path = std::getenv("RINGMASTER_TEST_STALL_FILE");
  return path != nullptr && path[0] != '\0' ? path : nullptr;
}

// Blocks while `path` exists, sleeping 10 ms at a time.
inline void stall_hook_hold(const char* path) {
  const timespec ten_ms{0, 10 * 1000 * 1000};
  while (access(path, F_OK) == 0) nanosleep(&ten_ms, nullptr);
}

}  // namespace ringmaster::proxy
