"""Client-side timeouts: whole-head deadline (slowloris), keep-alive idle, stalled bodies."""

import time

from harness import BytesReader, HttpConnection, build_request

DRIBBLE_INTERVAL_S = 0.2
DRIBBLE_MAX_S = 8.0


def dribble_until_cut_off(conn, byte=b"a"):
    """Sends one byte every DRIBBLE_INTERVAL_S (the deliberate delay under test) until the
    proxy answers or closes, at most DRIBBLE_MAX_S. Returns seconds until cut off, or None."""
    started = time.monotonic()
    while time.monotonic() - started < DRIBBLE_MAX_S:
        if not conn.sent_nothing_and_open(DRIBBLE_INTERVAL_S):
            return time.monotonic() - started
        try:
            conn.send(byte, timeout=1)
        except OSError:
            return time.monotonic() - started
    return None


def assert_cut_off_cleanly(conn):
    """After a timeout the proxy may answer 408, and then closes."""
    conn.wait_closed(3)
    if conn.buf:
        r = BytesReader(bytes(conn.buf)).read_response()
        assert r.status == 408, r
    assert conn.eof, "proxy answered but did not close the connection"


def test_slowloris_head_is_cut_off_by_whole_head_deadline(start_proxy, backend):
    proxy = start_proxy([backend], header_timeout_ms=1000)
    with HttpConnection(proxy.port) as c:
        c.send(b"GET /slow-head HTTP/1.1\r\nHost: example.test\r\nX-Slow: ")
        elapsed = dribble_until_cut_off(c)
        assert elapsed is not None, \
            "a client sending one header byte every 200 ms was still connected after " \
            "%.0f s with --header-timeout-ms 1000 (an idle timer instead of a deadline?)" \
            % DRIBBLE_MAX_S
        assert 0.7 <= elapsed <= 3.0, "cut off after %.2f s, expected about 1 s" % elapsed
        assert_cut_off_cleanly(c)
    assert backend.requests() == []


def test_idle_keep_alive_connection_is_closed_after_idle_timeout(start_proxy, backend):
    proxy = start_proxy([backend], idle_timeout_ms=500)
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/before-idle")
        assert r.status == 200, r
        idle_since = time.monotonic()
        assert c.wait_closed(5), "idle keep-alive connection still open after 5 s " \
            "with --idle-timeout-ms 500"
        elapsed = time.monotonic() - idle_since
        assert 0.35 <= elapsed <= 3.0, "closed after %.2f s idle, expected about 0.5 s" % (
            elapsed)


def test_active_keep_alive_connection_outlives_idle_timeout(start_proxy, backend):
    proxy = start_proxy([backend], idle_timeout_ms=500)
    started = time.monotonic()
    with HttpConnection(proxy.port) as c:
        i = 0
        # Requests 100 ms apart (the deliberate pacing) for 1.5 s: never idle for 500 ms.
        while time.monotonic() - started < 1.5:
            r = c.request("GET", "/busy/%d" % i)
            assert r.status == 200, (i, r)
            i += 1
            assert c.sent_nothing_and_open(0.1)
    assert i >= 5


def test_client_stalling_mid_body_is_cut_off_after_client_timeout(start_proxy, backend):
    proxy = start_proxy([backend], client_timeout_ms=500)
    with HttpConnection(proxy.port) as c:
        c.send(build_request("POST", "/upload", [("Content-Length", "100")]) + b"x" * 10)
        started = time.monotonic()
        closed = c.wait_closed(5)
        elapsed = time.monotonic() - started
        assert closed, "client stalled mid-body still connected after 5 s " \
            "with --client-timeout-ms 500"
        assert 0.35 <= elapsed <= 3.0, "cut off after %.2f s, expected about 0.5 s" % elapsed
        if c.buf:
            r = BytesReader(bytes(c.buf)).read_response()
            assert r.status in (408, 400, 502, 504), r
    # The backend never got a complete request.
    assert all(e["target"] != "/upload" for e in backend.requests())
