#include "ringmaster/service/reexec.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace ringmaster::service {
namespace {

// How long the new process waits to be re-parented after the intermediate child exits (it
// exits right after its fork, so this is microseconds; the bound only keeps the loop finite).
constexpr int kReparentWaitMaxMs = 1000;

std::string absolute_program(const char* argv0) {
  std::string name = argv0 != nullptr ? argv0 : "";
  if (name.find('/') != std::string::npos) {
    if (name[0] == '/') return name;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) != nullptr) return std::string(cwd) + "/" + name;
    return name;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return name;
  return std::string(exe, static_cast<size_t>(n));
}

}  // namespace

Reexec::Reexec(const char* argv0, std::vector<std::string> args) : program_(absolute_program(argv0)) {
  argv_.reserve(args.size() + 1);
  argv_.push_back(program_);
  for (std::string& a : args) argv_.push_back(std::move(a));
}

std::vector<std::string> Reexec::child_environment(char** env) {
  std::vector<std::string> out;
  for (char** e = env; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "WATCHDOG_PID=", 13) == 0) continue;
    out.emplace_back(*e);
  }
  return out;
}

pid_t Reexec::spawn(std::string* error) const {
  // Everything the children need is built here: between fork and exec only
  // async-signal-safe calls run (other threads may hold the allocator's locks).
  std::vector<std::string> env_strings = child_environment(environ);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = argv_;
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  const char* path = program_.c_str();

  // The intermediate child reports the new process's pid (or 0) through this pipe.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return -1;
  }
  pid_t middle = fork();
  if (middle < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(report[0]);
    ::close(report[1]);
    return -1;
  }
  if (middle == 0) {
    const pid_t self = getpid();
    pid_t child = fork();
    if (child == 0) {
      // Wait to be adopted by the service manager, so that `MAINPID=` names a process whose
      // parent is systemd (systemd 252 warns it "will most likely not notice when it exits"
      // for a main process that is not its child).
      const timespec one_ms{0, 1000000};
      for (int i = 0; i < kReparentWaitMaxMs && getppid() == self; ++i) nanosleep(&one_ms, nullptr);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGPIPE, SIG_DFL);
      // Only stdin/out/err go across: every other descriptor (listeners included; the new
      // process receives those over the upgrade socket) stays behind.
      syscall(SYS_close_range, 3U, ~0U, 0U);
      execve(path, argv.data(), envp.data());
      static constexpr char kExecFailed[] = "ringmaster: upgrade: could not execute the binary\n";
      ssize_t ignored = write(2, kExecFailed, sizeof kExecFailed - 1);
      (void)ignored;
      _exit(127);
    }
    pid_t sent = child > 0 ? child : 0;
    ssize_t w = write(report[1], &sent, sizeof sent);
    _exit(w == static_cast<ssize_t>(sizeof sent) && child > 0 ? 0 : 1);
  }
  ::close(report[1]);
  pid_t child = 0;
  ssize_t n;
  do {
    n = read(report[0], &child, sizeof child);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  int status = 0;
  while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof child) || child <= 0) {
    *error = "fork: could not start the new process";
    return -1;
  }
  return child;
}

}  // namespace ringmaster::service
