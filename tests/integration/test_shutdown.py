"""SIGTERM: stop accepting, finish what is in flight, exit 0 within the deadline."""

import signal
import socket
import threading
import time

import pytest

from harness import LOOPBACK, HttpConnection, build_request, connect_refused, wait_until

SHUTDOWN_TIMEOUT_MS = 5000


def listener_closed(port, probes=8):
    """True if several connects in a row are refused: with one SO_REUSEPORT listener per
    reactor, a single refusal only says that one listener closed."""
    return all(connect_refused(port) for _ in range(probes))


def test_sigterm_finishes_in_flight_request_then_exits_zero(start_proxy, backend):
    proxy = start_proxy([backend], shutdown_timeout_ms=SHUTDOWN_TIMEOUT_MS)
    with HttpConnection(proxy.port) as c:
        # The backend holds the request 3 s: the listener must close long before that.
        c.send(build_request("GET", "/slow?ms=3000"))
        backend.wait_for_requests(1)  # the request is now in flight at the backend
        signalled = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)

        wait_until(lambda: listener_closed(proxy.port) or not proxy.alive(), 2.5,
                   "the listener to close after SIGTERM")
        assert proxy.alive(), "proxy exited before finishing the in-flight request " \
            "(exit code %s)" % proxy.process.returncode
        refused_after = time.monotonic() - signalled
        assert refused_after < 2.5, "listener still accepting %.2f s after SIGTERM" % (
            refused_after)

        r = c.read_response(timeout=10)
        assert r.status == 200, r
        assert r.body == b"backend-1 /slow?ms=3000\n"
        assert time.monotonic() - signalled >= 2.5

    code = proxy.process.wait(SHUTDOWN_TIMEOUT_MS / 1000 + 3)
    exited_after = time.monotonic() - signalled
    assert code is not None, "proxy still running %.1f s after SIGTERM" % exited_after
    assert code == 0, "proxy exited with %s after SIGTERM" % code
    assert exited_after <= SHUTDOWN_TIMEOUT_MS / 1000 + 1.0


def test_sigterm_with_no_traffic_exits_zero_promptly(start_proxy, backend):
    proxy = start_proxy([backend], shutdown_timeout_ms=SHUTDOWN_TIMEOUT_MS)
    signalled = time.monotonic()
    code = proxy.terminate(timeout=SHUTDOWN_TIMEOUT_MS / 1000 + 3)
    assert code == 0, "exit code %s after SIGTERM" % code
    assert time.monotonic() - signalled < 2.0, "idle proxy took %.1f s to exit" % (
        time.monotonic() - signalled)


def test_sighup_is_logged_and_the_proxy_keeps_serving(start_proxy, backend):
    # `systemctl reload` sends SIGHUP; without a configuration file there is nothing to
    # re-read, and the proxy must neither die nor drop connections.
    proxy = start_proxy([backend], shutdown_timeout_ms=SHUTDOWN_TIMEOUT_MS)
    with HttpConnection(proxy.port) as c:
        assert c.request("GET", "/before").status == 200
        for n in (1, 2):
            proxy.process.send_signal(signal.SIGHUP)
            wait_until(lambda: proxy.stderr().count("SIGHUP") >= n or not proxy.alive(), 5,
                       "SIGHUP number %d to be logged" % n)
            assert proxy.alive(), "SIGHUP killed the proxy: exit code %s" % (
                proxy.process.returncode)
        r = c.request("GET", "/after")  # the same keep-alive connection
        assert r.status == 200 and r.body == b"backend-1 /after\n", r
    with HttpConnection(proxy.port) as c:
        assert c.request("GET", "/new").body == b"backend-1 /new\n"
    assert [line for line in proxy.stderr().splitlines() if "SIGHUP" in line][0].endswith(
        "SIGHUP: no configuration file, nothing to reload; still running")
    assert proxy.terminate(timeout=SHUTDOWN_TIMEOUT_MS / 1000 + 3) == 0


def test_sigterm_closes_idle_keep_alive_connections(start_proxy, backend):
    proxy = start_proxy([backend], shutdown_timeout_ms=SHUTDOWN_TIMEOUT_MS)
    with HttpConnection(proxy.port) as c:
        assert c.request("GET", "/before").status == 200
        signalled = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        assert c.wait_closed(SHUTDOWN_TIMEOUT_MS / 1000 + 2), \
            "idle keep-alive connection still open after SIGTERM"
    code = proxy.process.wait(SHUTDOWN_TIMEOUT_MS / 1000 + 3)
    assert code == 0, "exit code %s after SIGTERM" % code
    assert time.monotonic() - signalled < 2.0, \
        "an idle keep-alive connection held shutdown for %.1f s" % (
            time.monotonic() - signalled)


CONNECT_STORM_ROUNDS = 12


@pytest.mark.slow
def test_listener_refuses_after_sigterm_even_while_clients_keep_connecting(start_proxy, backend):
    """A connect storm across the SIGTERM: each reactor's listener must leave the port at once.
    (A listener whose multishot accept was being woken as it was cancelled once stayed
    open, queueing connections nobody accepted, for the whole drain.)"""
    for round_ in range(CONNECT_STORM_ROUNDS):
        proxy = start_proxy([backend], shutdown_timeout_ms=SHUTDOWN_TIMEOUT_MS)
        stop = threading.Event()
        connected = [0]

        def storm():
            while not stop.is_set():
                try:
                    with socket.create_connection((LOOPBACK, proxy.port), timeout=0.5):
                        connected[0] += 1
                except OSError:
                    pass

        # A client held open keeps the proxy draining (not exited) while we probe.
        with HttpConnection(proxy.port) as held:
            held.send(build_request("GET", "/slow?ms=1500"))
            backend.wait_for_requests(round_ + 1)
            stormers = [threading.Thread(target=storm) for _ in range(3)]
            for t in stormers:
                t.start()
            try:
                wait_until(lambda: connected[0] >= 50, 5, "the connect storm to get going")
                proxy.process.send_signal(signal.SIGTERM)
                wait_until(lambda: listener_closed(proxy.port) or not proxy.alive(), 1.2,
                           "round %d: the listener to close after SIGTERM during a connect "
                           "storm" % round_)
                assert proxy.alive(), "proxy exited before its in-flight request finished"
            finally:
                stop.set()
                for t in stormers:
                    t.join()
        assert proxy.process.wait(SHUTDOWN_TIMEOUT_MS / 1000 + 3) == 0
