// service: starting this very command line again, for an in-place binary upgrade (SIGUSR2,
// README "Upgrade under systemd"). The new process is the running one's grandchild: the
// intermediate child exits at once, so the new one is re-parented to the service manager
// (systemd is PID 1 or a subreaper) before it tells systemd `MAINPID=`, and systemd then
// supervises it as its own child. It inherits the running process's cgroup, user,
// capabilities, sandbox, limits and environment (NOTIFY_SOCKET included), which is what
// makes it part of the same unit; WATCHDOG_PID is left out, since it names the old process.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace ringmaster::service {

class Reexec {
 public:
  // argv0: how this process was started (a path with a '/' is kept, made absolute against the
  // current directory; a bare name found on PATH is resolved through /proc/self/exe). The
  // path, not the file: after a package upgrade it names the new binary.
  // args: everything after argv[0].
  Reexec(const char* argv0, std::vector<std::string> args);

  // Starts the new process. Returns its pid, or -1 with `error` set (one line).
  pid_t spawn(std::string* error) const;

  const std::string& program() const { return program_; }

  // The environment passed on: `env` less WATCHDOG_PID (exposed for the unit test).
  static std::vector<std::string> child_environment(char** env);

 private:
  std::string program_;
  std::vector<std::string> argv_;  // program_, then args
};

}  // namespace ringmaster::service
