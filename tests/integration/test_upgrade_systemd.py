"""Zero-downtime upgrade under systemd (README "Upgrade under systemd"): SIGUSR2 makes the
running proxy start its own binary path again with its own arguments; the new process takes
the listeners over (--upgrade-socket), tells systemd `MAINPID=<itself>` with `READY=1`
before the old one may go, and the old one drains and exits 0 without a word to systemd.

The test plays systemd: it binds NOTIFY_SOCKET with SO_PASSCRED (so it knows which process
sent each message, as systemd does) and is a child subreaper (as systemd, PID 1, adopts
orphans), so the new process becomes its child and its exit code can be read."""

import ctypes
import os
import shutil
import signal
import subprocess

import pytest

from harness import (LOOPBACK, REPO_ROOT, ManagedProcess, free_port, get, port_accepts,
                     wait_until)
from upgradelib import Load, NotifySocket, stop_and_check_sanitizer_reports

PR_SET_CHILD_SUBREAPER = 36
# systemd's watchdog period for these tests: pings every 50-100 ms.
WATCHDOG_USEC = "200000"


@pytest.fixture
def service_manager(tmp_path):
    """The test as systemd: NOTIFY_SOCKET, and the subreaper that adopts re-parented processes.
    Every adopted pid it was told about is stopped and reaped at the end, and the log the
    processes share (the new ones write to the first one's output, as to the unit's journal)
    must hold no sanitizer report."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, ctypes.get_errno()
    notify = NotifySocket(tmp_path / "notify")
    notify.adopted = []
    notify.started = []
    yield notify
    for pid in notify.adopted:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    notify.close()
    stop_and_check_sanitizer_reports(notify.started)


def wait_exit(pid, timeout):
    """Exit code of an adopted child (this process is its subreaper), polled with a deadline."""
    def exited():
        done, status = os.waitpid(pid, os.WNOHANG)
        return (status,) if done == pid else None
    status = wait_until(exited, timeout, "pid %d to exit" % pid)[0]
    return os.waitstatus_to_exitcode(status)


def parent_of(pid):
    with open("/proc/%d/stat" % pid, encoding="ascii") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def cmdline_of(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")[:-1]


@pytest.fixture
def binary_copy(ringmaster_bin, tmp_path):
    """The binary at a path of the test's own, as a package installs /usr/bin/ringmaster:
    replacing it (a rename over the path, as dpkg does) is what an upgrade ships."""
    path = tmp_path / "bin" / "ringmaster"
    path.parent.mkdir()
    shutil.copy2(ringmaster_bin, path)
    return path


def install_over(path, source):
    """dpkg's way: write beside, rename over (the running process keeps the old inode)."""
    staged = path.with_name(path.name + ".dpkg-new")
    shutil.copy2(source, staged)
    os.rename(staged, path)


def start_main(binary, backend, tmp_path, notify, upgrade_socket=True):
    """The unit's ExecStart, with WATCHDOG_PID naming the main process as systemd sets it;
    returns once it sent READY=1. Returns (process, its argv as /proc shows it, port). With an
    admin listener, as the package's config has: the new process binds it beside the old one."""
    port = free_port()
    flags = ["proxy", "--listen", "%s:%d" % (LOOPBACK, port), "--target", backend.addr,
             "--threads", "2", "--shutdown-timeout-ms", "5000", "--cache-bytes", "0",
             "--admin", "%s:%d" % (LOOPBACK, free_port())]
    if upgrade_socket:
        flags += ["--upgrade-socket", str(tmp_path / "upgrade.sock")]
    argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", str(binary)] + flags
    p = ManagedProcess(argv, tmp_path / "main.log", name="proxy-main",
                       env=notify.env(WATCHDOG_USEC=WATCHDOG_USEC))
    notify.started.append(p)
    wait_until(lambda: port_accepts(port) or not p.alive(), 20, "the first proxy")
    assert p.alive(), p.output_tail()
    notify.wait_for("READY=1")
    return p, [str(binary).encode()] + [f.encode() for f in flags], port


def test_sigusr2_takes_over_three_times_under_load_and_systemd_follows(
        service_manager, binary_copy, ringmaster_bin, backend, tmp_path):
    notify = service_manager
    first, argv, port = start_main(binary_copy, backend, tmp_path, notify)
    assert notify.lines_from(first.pid)[0] == "READY=1"
    notify.wait_for("WATCHDOG=1", count=3)
    load = Load(port)
    load.start()
    try:
        main = first.pid
        for round_ in range(1, 4):
            # What a package upgrade does: a new file at the binary's path, then SIGUSR2.
            install_over(binary_copy, ringmaster_bin)
            mark = len(notify.drain())
            served_before = load.ok
            os.kill(main, signal.SIGUSR2)

            def mainpid_message():
                notify.drain()
                for i in range(mark, len(notify.messages)):
                    if any(line.startswith("MAINPID=") for line in notify.messages[i].split("\n")):
                        return i
                return None
            i = wait_until(mainpid_message, 30, "MAINPID= after SIGUSR2 (round %d)" % round_)
            lines = notify.messages[i].split("\n")
            new = int(lines[0].split("=", 1)[1])
            notify.adopted.append(new)
            # Sent by the new process itself, naming itself, READY=1 in the same message, and
            # nothing from it before that.
            assert new != main and notify.senders[i] == new, (new, main, notify.senders[i])
            assert lines[:2] == ["MAINPID=%d" % new, "READY=1"], lines
            assert "STATUS=listening on %s:%d" % (LOOPBACK, port) in lines
            assert notify.lines_from(new, mark)[:len(lines)] == lines
            # Same binary path, same arguments; adopted by the service manager at once.
            assert cmdline_of(new) == argv
            assert os.readlink("/proc/%d/exe" % new) == str(binary_copy), \
                "the new process runs the file now at the path, not the old one"
            assert parent_of(new) == os.getpid()
            # The old process drains and exits 0, and says nothing to systemd after the
            # takeover that could confuse it (STOPPING=1 would stop the unit).
            code = first.wait(20) if main == first.pid else wait_exit(main, 20)
            assert code == 0, "old process %d: exit %s\n%s" % (main, code, first.output_tail())
            after = notify.lines_from(main, i)
            assert set(after) <= {"WATCHDOG=1"}, after
            # The new main process pings the watchdog (WATCHDOG_PID, the old pid, is not
            # passed on) and serves.
            wait_until(lambda: notify.lines_from(new, i).count("WATCHDOG=1") >= 3, 10,
                       "WATCHDOG=1 from the new process")
            wait_until(lambda: load.ok >= served_before + 50, 20,
                       "requests after round %d" % round_)
            main = new
    finally:
        load.stop()
    assert load.failures == [], "%d failures, first: %s" % (len(load.failures),
                                                           load.failures[:5])
    assert load.ok > 150 and load.slow_ok > 3
    assert get(port).status == 200
    admin_port = int(argv[argv.index(b"--admin") + 1].decode().rsplit(":", 1)[1])
    assert "ringmaster_build_info" in get(admin_port, "/metrics").body.decode()
    # The last one stops as the unit would: STOPPING=1 from the main process, exit 0.
    mark = len(notify.drain())
    os.kill(main, signal.SIGTERM)
    assert wait_exit(main, 20) == 0
    assert "STOPPING=1" in notify.lines_from(main, mark)
    out = first.output()
    assert out.count("handed the listener over") == 6, out[-3000:]  # 2 reactors x 3 rounds


def test_a_new_binary_that_fails_leaves_the_old_one_serving_and_systemd_undisturbed(
        service_manager, binary_copy, backend, tmp_path):
    notify = service_manager
    main, _, port = start_main(binary_copy, backend, tmp_path, notify)
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'new binary: cannot start' >&2\nexit 1\n")
    broken.chmod(0o755)
    install_over(binary_copy, broken)
    mark = len(notify.drain())
    main.send_signal(signal.SIGUSR2)
    wait_until(lambda: "new binary: cannot start" in main.output(), 20, "the new binary's try")
    assert get(port).status == 200
    assert main.alive()
    # Nothing but watchdog pings from the old process; nothing from anyone else.
    lines = [line for m in notify.drain()[mark:] for line in m.split("\n")]
    assert set(lines) <= {"WATCHDOG=1"}, lines
    assert set(notify.senders[mark:]) <= {main.pid}


def test_sigusr2_without_an_upgrade_socket_changes_nothing(service_manager, binary_copy,
                                                           backend, tmp_path):
    notify = service_manager
    main, _, port = start_main(binary_copy, backend, tmp_path, notify, upgrade_socket=False)
    main.send_signal(signal.SIGUSR2)
    wait_until(lambda: "no --upgrade-socket" in main.output(), 10, "the log line")
    assert main.alive() and get(port).status == 200
    assert set(notify.senders) == {main.pid}


FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl as packaging/takeover uses it, for one unit whose main pid is in $FAKE_SYSTEMD/mainpid.
state="$FAKE_SYSTEMD"
echo "$*" >> "$state/calls"
case "$1" in
  show) cat "$state/mainpid" ;;
  kill) kill -USR2 "$(cat "$state/mainpid")" ;;
  is-active) kill -0 "$(cat "$state/mainpid")" 2>/dev/null ;;
  restart) exit 0 ;;
  *) exit 1 ;;
esac
"""


def run_takeover(notify, tmp_path, main_pid, socket_path):
    """packaging/takeover against a fake systemctl, while the test plays systemd: a MAINPID=
    on the notify socket becomes the unit's main pid. Returns (exit code, systemctl calls)."""
    state = tmp_path / "fake-systemd"
    state.mkdir(exist_ok=True)
    (state / "mainpid").write_text("%d\n" % main_pid)
    (state / "calls").write_text("")
    bindir = tmp_path / "fake-bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bindir / "systemctl").chmod(0o755)
    env = dict(os.environ, FAKE_SYSTEMD=str(state),
               PATH="%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin")))
    mark = len(notify.drain())
    script = subprocess.Popen(["/bin/sh", str(REPO_ROOT / "packaging" / "takeover"),
                               "ringmaster.service", str(socket_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def done():
        notify.drain()
        for m in notify.messages[mark:]:
            for line in m.split("\n"):
                if line.startswith("MAINPID="):
                    pid = int(line.split("=", 1)[1])
                    if pid not in notify.adopted:
                        notify.adopted.append(pid)
                    (state / "mainpid").write_text("%d\n" % pid)
        return script.poll() is not None
    wait_until(done, 60, "packaging/takeover to finish")
    output = script.stdout.read().decode()
    return script.returncode, (state / "calls").read_text().splitlines(), output


def test_package_takeover_script_upgrades_under_load_without_a_restart(
        service_manager, binary_copy, ringmaster_bin, backend, tmp_path):
    notify = service_manager
    main, _, port = start_main(binary_copy, backend, tmp_path, notify)
    load = Load(port)
    load.start()
    try:
        install_over(binary_copy, ringmaster_bin)
        served_before = load.ok
        code, calls, output = run_takeover(notify, tmp_path, main.pid,
                                           tmp_path / "upgrade.sock")
        assert code == 0, output
        assert not any(c.startswith("restart") for c in calls), calls
        assert main.wait(20) == 0
        new = notify.adopted[-1]
        assert "is now pid %d (was %d)" % (new, main.pid) in output
        wait_until(lambda: load.ok >= served_before + 50, 20, "requests after the takeover")
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]


def test_package_takeover_script_restarts_a_proxy_without_upgrade_socket(
        service_manager, binary_copy, backend, tmp_path):
    notify = service_manager
    main, _, _ = start_main(binary_copy, backend, tmp_path, notify, upgrade_socket=False)
    code, calls, output = run_takeover(notify, tmp_path, main.pid, tmp_path / "upgrade.sock")
    assert code == 1, output
    assert calls == ["restart ringmaster.service"], calls
    assert "no upgrade socket" in output
    assert main.alive()  # no SIGUSR2 was sent: a proxy without the socket is not signalled
