"""Backend failures as the client sees them: 502, 504, cut responses, failover."""

import threading
import time

import pytest

from harness import HttpConnection, build_request, get


def test_target_with_nothing_listening_gets_502(start_proxy, dead_port):
    proxy = start_proxy([dead_port.addr], connect_timeout_ms=1000)
    started = time.monotonic()
    r = get(proxy.port, "/nobody-home", timeout=10)
    elapsed = time.monotonic() - started
    assert r.status == 502, r
    assert elapsed < 5, "502 took %.1fs" % elapsed
    # The proxy is still serving afterwards.
    assert get(proxy.port, "/again", timeout=10).status == 502


def test_backend_that_never_answers_gets_504_after_upstream_timeout(start_proxy, backend):
    proxy = start_proxy([backend], upstream_timeout_ms=500)
    started = time.monotonic()
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/hang", timeout=10)
    elapsed = time.monotonic() - started
    assert r.status == 504, r
    assert 0.4 <= elapsed < 5, "504 after %.2fs with --upstream-timeout-ms 500" % elapsed
    assert backend.wait_for_requests(1)[0]["target"] == "/hang"


@pytest.mark.parametrize("client_ms,upstream_ms", [(800, 800), (400, 800), (1600, 800)])
def test_silent_backend_gets_504_whichever_timeout_is_shorter(start_proxy, backend, client_ms,
                                                              upstream_ms):
    """Once the whole request is in, the client owes nothing: only the upstream timeout may
    end the wait, and it blames the backend (504), never the client (408)."""
    proxy = start_proxy([backend], client_timeout_ms=client_ms, upstream_timeout_ms=upstream_ms)
    started = time.monotonic()
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/hang", timeout=10)
    elapsed = time.monotonic() - started
    assert r.status == 504, (client_ms, upstream_ms, r)
    assert upstream_ms / 1000.0 * 0.8 <= elapsed < 5, elapsed


def test_client_stalling_mid_body_still_gets_408_with_a_long_upstream_timeout(start_proxy, backend):
    proxy = start_proxy([backend], client_timeout_ms=400, upstream_timeout_ms=5000)
    with HttpConnection(proxy.port) as c:
        c.send(build_request("POST", "/upload", [("Content-Length", "100")]) + b"x" * 10)
        r = c.read_response(timeout=5)
    assert r.status == 408, r


def test_backend_not_reading_an_upload_gets_504_not_408(start_proxy, backend):
    """A backend that stops reading a request body stalls the client through us: we stop
    receiving once our held input is full, so the client makes no progress, through no fault
    of its own. The backend is to blame (504 after --upstream-timeout-ms), never the client
    (408 after the shorter --client-timeout-ms)."""
    proxy = start_proxy([backend], client_timeout_ms=400, upstream_timeout_ms=1500)
    body_bytes = 256 << 20  # far beyond the socket buffers and our held input
    sent = []

    def upload(c):
        piece = b"u" * (1 << 20)
        try:
            while sum(sent) < body_bytes:
                c.send(piece, timeout=10)
                sent.append(len(piece))
        except OSError:
            pass  # the proxy answered and closed: the rest of the body has nowhere to go

    with HttpConnection(proxy.port) as c:
        started = time.monotonic()
        c.send(build_request("POST", "/upload?read_pause_ms=30000",
                             [("Content-Length", str(body_bytes))]))
        sender = threading.Thread(target=upload, args=(c,), daemon=True)
        sender.start()
        r = c.read_response(timeout=10)
        elapsed = time.monotonic() - started
    sender.join(15)
    assert r.status == 504, (r, "after %.2fs, %d bytes of the body sent" % (elapsed, sum(sent)))
    assert 1.5 * 0.8 <= elapsed < 8, elapsed
    assert sum(sent) < body_bytes  # the client was held back, as the test means


def test_backend_closing_mid_response_cuts_client_connection(proxy, backend):
    with HttpConnection(proxy.port) as c:
        c.send(build_request("GET", "/truncate"))
        try:
            r = c.read_response(timeout=10)
        except TimeoutError:
            pytest.fail("backend closed after 100 of 1000 bytes; the proxy neither finished "
                        "the response nor closed the client connection within 10 s")
        # Whatever the proxy did, it must not pass the cut response off as complete.
        assert not (r.status == 200 and r.complete), \
            "client received a complete response although the backend sent 100 of 1000 " \
            "bytes: %r" % r
        if r.status == 200:
            assert r.body_len < 1000
        else:
            assert r.status == 502, r
        assert c.wait_closed(5), "client connection left open after a cut response"
    assert backend.wait_for_requests(1)[0]["target"] == "/truncate"


def test_requests_fail_over_to_the_live_target(start_proxy, backend, dead_port):
    proxy = start_proxy([dead_port.addr, backend], connect_timeout_ms=1000)
    for i in range(20):  # new client connections: the proxy picks a target each time
        r = get(proxy.port, "/fresh/%d" % i, timeout=10)
        assert r.status == 200 and r.body == b"backend-1 /fresh/%d\n" % i, (i, r)
    with HttpConnection(proxy.port) as c:
        for i in range(20):
            r = c.request("GET", "/kept/%d" % i, timeout=10)
            assert r.status == 200 and r.body == b"backend-1 /kept/%d\n" % i, (i, r)
    assert len(backend.wait_for_requests(40)) == 40
