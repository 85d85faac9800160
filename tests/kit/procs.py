"""Ports, polling and child processes: the ground every other kit module stands on.

    free_port(), ReservedPort        ports from the kernel (port 0), never fixed numbers, so
                                     tests run side by side on pytest-xdist workers
    wait_until(predicate, timeout)   polling with a deadline (never a sleep as synchronisation)
    port_accepts(), connect_refused()
    socket_inodes(pid)               a process's open sockets (to match with /proc/net/tcp)
    ManagedProcess                   a child with its output in a file, killed at the latest
                                     when this process exits or dies (PR_SET_PDEATHSIG): it
                                     only ever signals its own children, never by name
"""

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
LOOPBACK = "127.0.0.1"

# ---------------------------------------------------------------------------------------
# Ports and polling

def free_port():
    """A port that was free a moment ago (bind to port 0, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class ReservedPort:
    """A port bound but never listening: connecting to it is refused, and no other process
    can take it while this object is open. Use it as a target with nothing listening."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self.port = self._sock.getsockname()[1]
        self.addr = "%s:%d" % (LOOPBACK, self.port)

    def close(self):
        self._sock.close()



def wait_until(predicate, timeout, message=None, interval_max=0.05):
    """Polls predicate() until it returns a truthy value (returned) or `timeout` seconds
    pass (AssertionError naming `message`)."""
    deadline = time.monotonic() + timeout
    interval = 0.002
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, message or getattr(predicate, "__name__", "?")))
        time.sleep(min(interval, deadline - now))
        interval = min(interval * 2, interval_max)


def wait_steady(sample, timeout_s=30.0, samples=7, interval_s=1.0, spread=0.01):
    """(value, seconds waited) once `samples` readings of sample(), `interval_s` apart, lie
    within `spread` of each other (RSS after a burst: ringmaster gives freed memory back
    within a second of freeing much, or 5 s after freeing a little, so the default window is
    6 s); the last reading if `timeout_s` passes. Readings must be spaced in time to call a
    value steady, so the pause between them is a sampling interval, not a synchronisation."""
    started = time.monotonic()
    window = []
    while True:
        window = (window + [sample()])[-samples:]
        low, high = min(window), max(window)
        waited = time.monotonic() - started
        if (len(window) == samples and high - low <= low * spread) or waited >= timeout_s:
            return window[-1], waited
        time.sleep(interval_s)


def port_accepts(port, host=LOOPBACK):
    """True when a TCP connect to host:port succeeds (the connection is closed at once)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def connect_refused(port, host=LOOPBACK):
    """True when a TCP connect to host:port is actively refused (nobody listening)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def socket_inodes(pid):
    """The inode numbers of a process's open sockets, as strings (the inode column of
    /proc/net/tcp). OSError when the process is gone."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


# ---------------------------------------------------------------------------------------
# Processes

_live_processes = []


def _die_with_parent():
    # The kernel kills the child when the test runner dies, even by SIGKILL or a
    # faulthandler timeout, so no backend or proxy outlives a crashed test run.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@atexit.register
def _kill_leftovers():
    for p in list(_live_processes):
        p.kill()


SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
    "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer",
)


class ManagedProcess:
    """A child process whose stdout+stderr go to a file; killed at the latest at exit."""

    def __init__(self, argv, output_path, env=None, name=None, new_session=False):
        """new_session: the child leads a process group of its own (perf/ stops groups)."""
        self.argv = [str(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self.output_path = Path(output_path)
        self._output = open(self.output_path, "wb")
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                      stdout=self._output, stderr=subprocess.STDOUT,
                                      env=env, preexec_fn=_die_with_parent,
                                      start_new_session=new_session)
        self.signalled_by_us = None
        _live_processes.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def output(self):
        try:
            return self.output_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def output_tail(self, lines=80):
        text = self.output().splitlines()
        return "\n".join(text[-lines:])

    def send_signal(self, sig):
        if self.alive():
            self.signalled_by_us = sig
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signals, waits up to `timeout`, then SIGKILLs. Returns the exit code."""
        if self.alive():
            self.send_signal(sig)
            if self.wait(timeout) is None:
                self.kill()
        self._release()
        return self.popen.returncode

    def kill(self):
        if self.alive():
            self.signalled_by_us = signal.SIGKILL
            self.popen.kill()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._release()

    def _release(self):
        if self in _live_processes and not self.alive():
            _live_processes.remove(self)
            self._output.close()

    def sanitizer_report(self):
        text = self.output()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                start = text.rfind("\n", 0, max(0, i - 200)) + 1
                return text[start:start + 6000]
        return None


def _describe_exit(code):
    if code < 0:
        try:
            return "signal %s" % signal.Signals(-code).name
        except ValueError:
            return "signal %d" % -code
    return "exit code %d" % code
