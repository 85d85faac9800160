"""What the upgrade tests share (README "Zero-downtime upgrade", "Upgrade under systemd"):
load that must never fail across a takeover, systemd's notify socket played by the test,
and the end-of-test sanitizer check of every process involved.

    Load(port)                 clients in threads, a new connection per request, until stop()
    NotifySocket(path)         the NOTIFY_SOCKET datagram socket with the senders' pids
    stop_and_check_sanitizer_reports(processes)
"""

import os
import socket
import struct
import threading
import time

import pytest

from harness import HttpConnection, wait_until

LOAD_THREADS = 4


class Load:
    """Clients in threads, each request on a new connection (Connection: close), until
    stopped: counts answers, refused connects and any other failure."""

    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.slow_ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(LOAD_THREADS)]

    def one(self, path):
        with HttpConnection(self.port) as c:
            r = c.request("GET", path, [("Connection", "close")])
        if r.status != 200:
            raise AssertionError("answer %r" % r)

    def run(self, i):
        # One thread keeps a slow request in flight at all times: some are in the old
        # process when it is told to go, and must still be answered.
        path = "/slow?ms=150" if i == 0 else "/"
        while not self.stopping.is_set():
            try:
                self.one(path)
                with self.lock:
                    if i == 0:
                        self.slow_ok += 1
                    else:
                        self.ok += 1
            except Exception as e:  # noqa: BLE001  (every failure is reported)
                with self.lock:
                    self.failures.append(repr(e))

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)


def stop_and_check_sanitizer_reports(processes):
    """Stops what still runs; fails the test on a sanitizer report in any of their logs."""
    reports = []
    for p in processes:
        if p.alive():
            p.stop()
        report = p.sanitizer_report()
        if report:
            reports.append("%s: sanitizer report:\n%s" % (p.name, report))
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)


class NotifySocket:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # As systemd does: the kernel attaches the sender's pid to every datagram.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.messages = []  # every datagram so far, split into "KEY=value" lines
        self.senders = []   # the sending pid of each message
        self.times = []     # time.monotonic() when each message was read

    def env(self, **extra):
        return dict(os.environ, NOTIFY_SOCKET=self.path, **extra)

    def drain(self):
        """Reads whatever has arrived without waiting."""
        self.sock.setblocking(False)
        ucred = struct.calcsize("3i")
        try:
            while True:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(ucred))
                pid = None
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                        pid = struct.unpack("3i", payload[:ucred])[0]
                self.messages.append(data.decode())
                self.senders.append(pid)
                self.times.append(time.monotonic())
        except BlockingIOError:
            pass
        return self.messages

    def lines_from(self, pid, start=0):
        """Every line pid sent, from message index `start` on, in order."""
        self.drain()
        return [line for m, sender in zip(self.messages[start:], self.senders[start:])
                if sender == pid for line in m.split("\n")]

    def wait_for(self, line, timeout=10.0, count=1):
        def seen():
            return sum(line in m.split("\n") for m in self.drain()) >= count
        wait_until(seen, timeout, "%d x %r on NOTIFY_SOCKET (got %r)"
                   % (count, line, self.messages))

    def close(self):
        self.sock.close()
