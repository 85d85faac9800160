"""Requests the proxy must refuse: the client gets the status, the connection is closed,
and the backend receives nothing (no request smuggling past the proxy)."""

import itertools

import pytest

from harness import HttpConnection, build_request, get, send_raw

_sentinels = itertools.count()


def assert_nothing_forwarded(proxy, backend, allowed_targets=()):
    """Sends a sentinel request on a fresh connection and, once the backend has logged it,
    checks that the backend received nothing but allowed targets and sentinels."""
    sentinel = "/sentinel-%d" % next(_sentinels)
    r = get(proxy.port, sentinel)
    assert r.status == 200 and r.body == b"backend-1 %s\n" % sentinel.encode(), \
        "proxy no longer serves valid requests: %r" % r
    requests = backend.wait_for_requests(1)
    assert any(e["target"] == sentinel for e in requests)
    smuggled = [e for e in requests
                if e["target"] not in allowed_targets
                and not (e["target"] or "").startswith("/sentinel-")]
    assert not smuggled, "backend received a rejected request: %r" % smuggled


def assert_rejected(proxy, backend, raw, statuses):
    result = send_raw(proxy.port, raw)
    assert result.status in statuses, "expected %s, got %r" % (sorted(statuses), result)
    assert result.closed, "proxy left the connection open after %s" % result.status
    assert_nothing_forwarded(proxy, backend)


def req(head, body=b""):
    return head.encode("latin-1") + body


HOST = "Host: example.test\r\n"
MALFORMED = [
    ("content_length_with_transfer_encoding",
     req("POST /x HTTP/1.1\r\n" + HOST + "Content-Length: 5\r\nTransfer-Encoding: chunked"
         "\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"), {400}),
    ("two_different_content_lengths",
     req("POST /x HTTP/1.1\r\n" + HOST + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
         b"hello!"), {400}),
    ("two_equal_content_length_headers",
     req("POST /x HTTP/1.1\r\n" + HOST + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
         b"hello"), {400}),
    ("content_length_list",
     req("POST /x HTTP/1.1\r\n" + HOST + "Content-Length: 1,1\r\n\r\n", b"x"), {400}),
    ("content_length_plus_sign",
     req("POST /x HTTP/1.1\r\n" + HOST + "Content-Length: +5\r\n\r\n", b"hello"), {400}),
    ("content_length_trailing_garbage",
     req("POST /x HTTP/1.1\r\n" + HOST + "Content-Length:  5 x\r\n\r\n", b"hello"), {400}),
    ("transfer_encoding_gzip_then_chunked",
     req("POST /x HTTP/1.1\r\n" + HOST + "Transfer-Encoding: gzip, chunked\r\n\r\n",
         b"5\r\nhello\r\n0\r\n\r\n"), {400, 501}),
    ("transfer_encoding_chunked_twice",
     req("POST /x HTTP/1.1\r\n" + HOST + "Transfer-Encoding: chunked, chunked\r\n\r\n",
         b"5\r\nhello\r\n0\r\n\r\n"), {400, 501}),
    ("transfer_encoding_xchunked",
     req("POST /x HTTP/1.1\r\n" + HOST + "Transfer-Encoding: xchunked\r\n\r\n",
         b"5\r\nhello\r\n0\r\n\r\n"), {400, 501}),
    ("obs_fold_header",
     req("GET /x HTTP/1.1\r\n" + HOST + "X-Folded: a\r\n  b\r\n\r\n"), {400}),
    ("bare_lf_line_ending",
     req("GET /x HTTP/1.1\r\nHost: example.test\nX-After-Lf: 1\r\n\r\n"), {400}),
    ("bare_cr_in_header",
     req("GET /x HTTP/1.1\r\n" + HOST + "X-A: a\rb\r\n\r\n"), {400}),
    ("nul_in_header_value",
     req("GET /x HTTP/1.1\r\n" + HOST + "X-A: a\x00b\r\n\r\n"), {400}),
    ("control_char_in_header_value",
     req("GET /x HTTP/1.1\r\n" + HOST + "X-A: a\x01b\r\n\r\n"), {400}),
    ("space_before_colon",
     req("GET /x HTTP/1.1\r\n" + HOST + "X-A : b\r\n\r\n"), {400}),
    ("missing_host_in_http11",
     req("GET /x HTTP/1.1\r\nX-A: b\r\n\r\n"), {400}),
    ("duplicate_host",
     req("GET /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"), {400}),
    ("http_2_0_version",
     req("GET /x HTTP/2.0\r\n" + HOST + "\r\n"), {505}),
    ("connect_method",
     req("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"), {501}),
]


@pytest.mark.parametrize("raw, statuses", [pytest.param(r, s, id=i) for i, r, s in MALFORMED])
def test_malformed_request_is_rejected_closed_and_not_forwarded(proxy, backend, raw,
                                                                 statuses):
    assert_rejected(proxy, backend, raw, statuses)


# --- limits, each at its edge --------------------------------------------------------------

def _target_of_line_length(line_bytes):
    """A target such that 'GET <target> HTTP/1.1' is line_bytes long (without CRLF)."""
    return "/" + "a" * (line_bytes - len("GET / HTTP/1.1"))


def test_request_line_over_limit_gets_414(start_proxy, backend):
    proxy = start_proxy([backend], request_line_bytes_max=1024)
    assert_rejected(proxy, backend, build_request("GET", _target_of_line_length(1025)),
                    {414})
    # At the limit (the line plus its CRLF fits in 1024 bytes) it goes through.
    target = _target_of_line_length(1022)
    r = get(proxy.port, target)
    assert r.status == 200 and r.body == b"backend-1 %s\n" % target.encode(), r


def test_request_line_over_default_limit_gets_414(proxy, backend):
    assert_rejected(proxy, backend, build_request("GET", _target_of_line_length(9000)),
                    {414})


def _filler_headers(total_bytes, name_prefix="X-Fill"):
    """Headers whose lines (with CRLF) add up to about total_bytes."""
    out = []
    remaining = total_bytes
    i = 0
    while remaining > 0:
        name = "%s-%d" % (name_prefix, i)
        value_len = max(1, min(1000, remaining - len(name) - 4))
        out.append((name, "v" * value_len))
        remaining -= len(name) + 4 + value_len
        i += 1
    return out


def test_headers_over_byte_limit_get_431(start_proxy, backend):
    proxy = start_proxy([backend], header_bytes_max=4096)
    assert_rejected(proxy, backend, build_request("GET", "/big", _filler_headers(5000)),
                    {431})
    r = get(proxy.port, "/small", headers=_filler_headers(3000))
    assert r.status == 200, r


def test_headers_over_default_byte_limit_get_431(proxy, backend):
    assert_rejected(proxy, backend, build_request("GET", "/big", _filler_headers(17000)),
                    {431})


def _headers_totalling(count):
    """`count` header fields in all, Host included."""
    return [("X-N-%d" % i, "v") for i in range(count - 1)]


def test_too_many_headers_get_431(start_proxy, backend):
    proxy = start_proxy([backend], header_count_max=20)
    assert_rejected(proxy, backend, build_request("GET", "/many", _headers_totalling(21)),
                    {431})
    r = get(proxy.port, "/twenty", headers=_headers_totalling(20))
    assert r.status == 200, r


def test_too_many_headers_over_default_limit_get_431(proxy, backend):
    assert_rejected(proxy, backend, build_request("GET", "/many", _headers_totalling(101)),
                    {431})


def test_content_length_over_body_limit_gets_413(start_proxy, backend):
    proxy = start_proxy([backend], body_bytes_max="4K")
    # The head alone must be enough to refuse: the body is never sent.
    assert_rejected(proxy, backend,
                    build_request("POST", "/upload", [("Content-Length", "4097")]), {413})
    with HttpConnection(proxy.port) as c:
        r = c.request("POST", "/upload", body=b"b" * 4096)
        assert r.status == 200 and r.json()["len"] == 4096, r


def test_chunked_body_over_body_limit_is_refused(start_proxy, backend):
    proxy = start_proxy([backend], body_bytes_max="4K")
    body = b"1000\r\n" + b"c" * 4096 + b"\r\n" + b"10\r\n" + b"c" * 16 + b"\r\n0\r\n\r\n"
    result = send_raw(proxy.port, build_request("POST", "/upload",
                                                [("Transfer-Encoding", "chunked")], body))
    # The proxy may already have streamed part of the body upstream when it notices; then
    # it can only cut both connections. Either way no complete request reaches the backend.
    assert result.status in (413, None), result
    assert result.closed, result
    assert_nothing_forwarded(proxy, backend)
