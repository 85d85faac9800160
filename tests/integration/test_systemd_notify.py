"""systemd's notify protocol: READY=1 once serving, WATCHDOG=1 while the reactors turn,
STOPPING=1 on drain. The test plays systemd: it binds the unix datagram socket that
NOTIFY_SOCKET names and reads what the proxy sends there."""

import os
import signal
import time

import pytest

from harness import get, port_accepts, wait_until
from upgradelib import NotifySocket
from zk import start_zk_server  # noqa: F401  (fixture used by name)


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


def test_zk_mode_with_zookeeper_down_is_ready_after_one_session_timeout(start_proxy, start_zk_server,
                                                                        notify):
    # Ready waits for every source's first read; a source that cannot be read (here every one:
    # ZooKeeper is not up) holds it back for one session timeout, then a warning and READY=1,
    # and its services answer 503 until it is read.
    server = start_zk_server(start=False)
    started = time.monotonic()
    proxy = start_proxy([], zk=server.connect_string(), session_timeout_ms=1000,
                        env=notify.env())
    notify.wait_for("READY=1", timeout=30)
    assert time.monotonic() - started >= 1.0
    assert "ready without a first read of /targets after 1000 ms" in proxy.stderr()
    assert get(proxy.port).status == 503


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


def watchdog_pings(notify):
    notify.drain()
    return [t for m, t in zip(notify.messages, notify.times) if "WATCHDOG=1" in m.split("\n")]


def test_watchdog_stops_while_one_reactor_is_stuck_and_resumes_after(start_proxy, backend,
                                                                      notify, tmp_path):
    # RINGMASTER_TEST_STALL_FILE (src/proxy/stall_hook.h): reactor 0 sleeps while the file
    # exists, its loop counter stands still, as in a reactor wedged in a loop or a syscall.
    stall = tmp_path / "stall-reactor-0"
    proxy = start_proxy([backend], threads=2,
                        env=notify.env(WATCHDOG_USEC="200000",
                                       RINGMASTER_TEST_STALL_FILE=str(stall)))
    notify.wait_for("READY=1")
    # Healthy: a ping every 50-100 ms (checks every WATCHDOG_USEC / 4).
    notify.wait_for("WATCHDOG=1", count=5, timeout=10)
    assert get(proxy.port).status == 200
    try:
        stall.touch()
        # At most a ping already under way gets out; then none for 5 whole watchdog periods
        # (systemd would have killed the service after one).
        quiet_s = 1.0
        wait_until(lambda: watchdog_pings(notify)
                   and time.monotonic() - watchdog_pings(notify)[-1] >= quiet_s, 10,
                   "the watchdog pings to stop while reactor 0 is stuck (pings: %d)"
                   % len(watchdog_pings(notify)))
        stalled_at = len(watchdog_pings(notify))
        assert proxy.alive()
        # Still stuck, still silent: the other reactor turning is not enough.
        wait_until(lambda: time.monotonic() - watchdog_pings(notify)[-1] >= 2 * quiet_s, 10,
                   "a second quiet second")
        assert len(watchdog_pings(notify)) == stalled_at
    finally:
        stall.unlink(missing_ok=True)
    # Unstuck: pings resume.
    wait_until(lambda: len(watchdog_pings(notify)) >= stalled_at + 5, 10,
               "the watchdog pings to resume once reactor 0 turns again")
    assert get(proxy.port).status == 200
    assert "STOPPING=1" not in "\n".join(notify.drain())
    assert proxy.terminate() == 0

