"""systemd's notify protocol: READY=1 once serving, WATCHDOG=1 while the reactors turn,
STOPPING=1 on drain. The test plays systemd: it binds the unix datagram socket that
NOTIFY_SOCKET names and reads what the proxy sends there."""

import os
import signal
import socket

import pytest

from harness import get, port_accepts, wait_until
from zk import start_zk_server  # noqa: F401  (fixture used by name)


class NotifySocket:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # every datagram so far, split into "KEY=value" lines

    def env(self, **extra):
        return dict(os.environ, NOTIFY_SOCKET=self.path, **extra)

    def drain(self):
        """Reads whatever has arrived without waiting."""
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return self.messages

    def wait_for(self, line, timeout=10.0, count=1):
        def seen():
            return sum(line in m.split("\n") for m in self.drain()) >= count
        wait_until(seen, timeout, "%d x %r on NOTIFY_SOCKET (got %r)"
                   % (count, line, self.messages))

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    s = NotifySocket(tmp_path / "notify")
    yield s
    s.close()


def test_ready_watchdog_and_stopping_reach_notify_socket(start_proxy, backend, notify):
    proxy = start_proxy([backend], env=notify.env(WATCHDOG_USEC="200000"))
    notify.wait_for("READY=1")
    assert port_accepts(proxy.port)
    assert get(proxy.port).status == 200
    status = [m for m in notify.messages if "READY=1" in m][0]
    assert "STATUS=listening on %s" % proxy.addr in status.split("\n")
    # With a 200 ms watchdog the pings come every 50-100 ms while the reactors turn.
    notify.wait_for("WATCHDOG=1", count=5, timeout=10)
    assert "STOPPING=1" not in notify.drain()
    assert proxy.terminate() == 0
    notify.wait_for("STOPPING=1", timeout=1)
    assert sum("READY=1" in m.split("\n") for m in notify.messages) == 1


def test_zk_mode_is_ready_only_once_the_first_snapshot_is_in(start_proxy, start_zk_server,
                                                              notify):
    server = start_zk_server(start=False)
    proxy = start_proxy([], zk=server.connect_string(), session_timeout_ms=1000,
                        env=notify.env())
    # Listening (answering 503 without targets) but not ready: ZooKeeper is not up yet.
    assert get(proxy.port).status == 503
    assert not any("READY=1" in m for m in notify.drain()), notify.messages
    server.start()
    notify.wait_for("READY=1", timeout=30)


def test_sighup_is_a_reload_between_reloading_and_ready(start_proxy, backend, notify,
                                                         tmp_path):
    log = tmp_path / "access.log"
    proxy = start_proxy([backend], env=notify.env(), access_log=log)
    notify.wait_for("READY=1")
    assert get(proxy.port).status == 200
    wait_until(lambda: log.exists() and log.read_text().count("\n") == 1, 10, "a log line")
    os.rename(log, str(log) + ".1")
    proxy.process.send_signal(signal.SIGHUP)
    notify.wait_for("READY=1", count=2)
    reloading = [m for m in notify.messages if "RELOADING=1" in m.split("\n")]
    assert len(reloading) == 1
    assert any(line.startswith("MONOTONIC_USEC=") for line in reloading[0].split("\n"))
    assert notify.messages.index(reloading[0]) < len(notify.messages) - 1  # READY after it
    # Still serving, and the log was opened again at its path.
    assert get(proxy.port).status == 200
    wait_until(lambda: log.exists() and log.read_text().count("\n") == 1, 10,
               "a line in the reopened log")
    assert proxy.alive()
