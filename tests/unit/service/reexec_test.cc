#include "ringmaster/service/reexec.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace ringmaster::service {
namespace {

TEST(ReexecTest, ProgramIsThePathStartedAsMadeAbsolute) {
  EXPECT_EQ(Reexec("/usr/bin/ringmaster", {}).program(), "/usr/bin/ringmaster");
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_EQ(Reexec("build/src/ringmaster", {}).program(), std::string(cwd) + "/build/src/ringmaster");
  // A bare name was found on PATH: the running file's path stands in.
  std::string self = Reexec("unit_service", {}).program();
  EXPECT_EQ(self.front(), '/');
  EXPECT_NE(self.find("unit_service"), std::string::npos);
}

TEST(ReexecTest, EnvironmentLosesOnlyWatchdogPid) {
  char a[] = "NOTIFY_SOCKET=/run/systemd/notify", b[] = "WATCHDOG_PID=42", c[] = "WATCHDOG_USEC=20000000";
  char* env[] = {a, b, c, nullptr};
  EXPECT_EQ(Reexec::child_environment(env),
            (std::vector<std::string>{"NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=20000000"}));
}

// The new process is adopted by the service manager (here: this test, a subreaper like
// systemd) before it runs, gets the arguments and the environment less WATCHDOG_PID, and
// inherits no descriptor beyond stdin/out/err.
TEST(ReexecTest, SpawnedProcessIsAdoptedWithTheArgumentsAndEnvironment) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  std::string out = testing::TempDir() + "reexec_test.out";
  ::unlink(out.c_str());
  setenv("WATCHDOG_PID", "42", 1);
  setenv("REEXEC_TEST_MARK", "kept", 1);
  int leaked[2];
  ASSERT_EQ(pipe(leaked), 0);  // no O_CLOEXEC: only the close in the child keeps it out
  std::string script = "echo \"$PPID ${WATCHDOG_PID:-none} $REEXEC_TEST_MARK $1 $(ls /proc/self/fd | wc -l)\" > " + out;
  Reexec r("/bin/sh", {"-c", script, "sh", "arg1"});
  std::string error;
  pid_t pid = r.spawn(&error);
  ASSERT_GT(pid, 0) << error;
  int status = -1;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::ifstream in(out);
  std::string ppid, watchdog_pid, mark, arg;
  int fds = 0;
  in >> ppid >> watchdog_pid >> mark >> arg >> fds;
  EXPECT_EQ(ppid, std::to_string(getpid()));
  EXPECT_EQ(watchdog_pid, "none");
  EXPECT_EQ(mark, "kept");
  EXPECT_EQ(arg, "arg1");
  EXPECT_LE(fds, 4);  // 0, 1, 2 and ls's own directory descriptor
  ::close(leaked[0]);
  ::close(leaked[1]);
  unsetenv("WATCHDOG_PID");
  unsetenv("REEXEC_TEST_MARK");
  prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

TEST(ReexecTest, AMissingBinaryIsTheNewProcessExiting127) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  Reexec r("/nonexistent/ringmaster", {"proxy"});
  std::string error;
  pid_t pid = r.spawn(&error);
  ASSERT_GT(pid, 0) << error;
  int status = -1;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 127);
  prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

}  // namespace
}  // namespace ringmaster::service
