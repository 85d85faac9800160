"""Message framing rules: bodiless responses, 100-continue, HTTP/1.0 clients."""

import hashlib

import pytest

from harness import BytesReader, HttpConnection, build_request, pattern_bytes, pattern_sha256


@pytest.mark.parametrize("framing", ["cl", "chunked"])
def test_head_response_has_no_body_and_connection_stays_usable(proxy, framing):
    with HttpConnection(proxy.port) as c:
        r = c.request("HEAD", "/download?bytes=5000&framing=%s" % framing)
        assert r.status == 200, r
        if framing == "cl":
            assert r.header("Content-Length") == "5000", r
        # Had the proxy sent (or waited for) a body, this response would be garbage or
        # would never come.
        r = c.request("GET", "/next")
        assert r.status == 200 and r.body == b"backend-1 /next\n", r


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_status_has_no_body_and_connection_stays_usable(proxy, code):
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/status?code=%d" % code)
        assert r.status == code, r
        assert "chunked" not in r.tokens("transfer-encoding"), r
        r = c.request("GET", "/next")
        assert r.status == 200 and r.body == b"backend-1 /next\n", r


def test_expect_100_continue_gets_interim_response_before_body(proxy, backend):
    body = bytes(pattern_bytes(0, 1000))
    with HttpConnection(proxy.port) as c:
        c.send(build_request("POST", "/upload", [("Expect", "100-continue"),
                                                 ("Content-Length", "1000")]))
        interim = c.read_response(skip_interim=False, timeout=5)
        assert interim.raw_head.startswith(b"HTTP/1.1 100"), interim.raw_head
        assert interim.body == b""
        c.send(body)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json() == {"backend": "backend-1", "len": 1000,
                            "sha256": hashlib.sha256(body).hexdigest()}
        r = c.request("GET", "/after")
        assert r.body == b"backend-1 /after\n", r


def test_http10_request_without_keep_alive_gets_response_then_close(proxy):
    with HttpConnection(proxy.port) as c:
        c.send(b"GET /old HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"backend-1 /old\n"
        assert c.wait_closed(5), "proxy kept an HTTP/1.0 connection open without keep-alive"


def test_http10_request_with_keep_alive_keeps_connection_open(proxy, backend):
    with HttpConnection(proxy.port) as c:
        for i in range(3):
            c.send(b"GET /old/%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            r = c.read_response()
            assert r.status == 200, r
            assert r.body == b"backend-1 /old/%d\n" % i
            # An HTTP/1.0 client only keeps the connection if the response says so, and
            # needs a Content-Length to find the end of the body.
            assert "keep-alive" in r.tokens("connection"), r
            assert r.header("Content-Length") == str(len(r.body)), r
    assert len(backend.wait_for_requests(3)) == 3


def test_http10_client_gets_chunked_backend_response_unchunked_then_close(proxy):
    size = 100_003
    with HttpConnection(proxy.port) as c:
        c.send(b"GET /download?bytes=%d&chunked=1 HTTP/1.0\r\n\r\n" % size)
        raw = c.read_until_close(10)
    r = BytesReader(raw).read_response()
    assert r.status == 200, r
    assert "chunked" not in r.tokens("transfer-encoding"), \
        "HTTP/1.0 client got a chunked response: %r" % r.headers
    assert len(r.body) == size
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(size)
