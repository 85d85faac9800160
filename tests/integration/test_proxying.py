"""Basic proxying, header rewriting, keep-alive reuse and pipelining."""

import re

from harness import HttpConnection, build_request, get, request_header

# Request headers that only concern the client-proxy hop.
HOP_BY_HOP_REQUEST = [
    ("Connection", "keep-alive, X-Hop-A, x-hop-b"),
    ("X-Hop-A", "1"),
    ("X-Hop-B", "2"),
    ("Keep-Alive", "timeout=5, max=100"),
    ("Proxy-Connection", "keep-alive"),
    ("TE", "trailers"),
    ("Trailer", "X-Checksum"),
    ("Upgrade", "websocket"),
]
# The proxy may say "keep-alive" or "close" about its own hop, nothing else.
OWN_CONNECTION_TOKENS = {"keep-alive", "close"}


def test_get_returns_backend_status_body_and_headers(proxy, backend):
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/hello/world?x=1")
        assert r.status == 200, r
        assert r.body == b"backend-1 /hello/world?x=1\n"
        assert r.header("X-Backend") == "backend-1"
        assert r.header("Content-Type") == "text/plain"

        r = c.request("GET", "/status?code=404")
        assert r.status == 404, r
        assert r.body == b"status 404\n"
        assert r.header("X-Backend") == "backend-1"

    [first, second] = backend.wait_for_requests(2)
    assert (first["method"], first["target"], first["version"]) == \
        ("GET", "/hello/world?x=1", "HTTP/1.1")
    assert second["target"] == "/status?code=404"


def test_backend_sees_host_via_and_forwarded_headers(proxy, backend):
    r = get(proxy.port, "/echo", headers=[("X-End-To-End", "kept")])
    assert r.status == 200, r
    r = get(proxy.port, "/echo", headers=[("X-Forwarded-For", "10.1.2.3")])
    assert r.status == 200, r

    [plain, forwarded] = backend.wait_for_requests(2)
    assert request_header(plain, "Host") == ["example.test"]
    assert request_header(plain, "X-End-To-End") == ["kept"]
    assert request_header(plain, "X-Forwarded-For") == ["127.0.0.1"]
    assert request_header(plain, "X-Forwarded-Proto") == ["http"]
    via = request_header(plain, "Via")
    assert len(via) == 1 and re.fullmatch(r"1\.1 \S+.*", via[0]), \
        "expected one 'Via: 1.1 <proxy>' header, backend saw %r" % via

    # The client address is appended to an existing X-Forwarded-For chain.
    xff = ", ".join(request_header(forwarded, "X-Forwarded-For"))
    assert re.sub(r"\s*,\s*", ", ", xff) == "10.1.2.3, 127.0.0.1"
    assert request_header(forwarded, "X-Forwarded-Proto") == ["http"]


def test_hop_by_hop_request_headers_do_not_reach_backend(proxy, backend):
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/echo", headers=HOP_BY_HOP_REQUEST + [("X-End-To-End", "kept")])
        assert r.status == 200, r
        # The client's Connection header was about its own hop: the connection stays open.
        r = c.request("GET", "/after")
        assert r.status == 200, r

    entry = backend.wait_for_requests(2)[0]
    seen = {k.lower(): v for k, v in entry["headers"]}
    for name in ("x-hop-a", "x-hop-b", "keep-alive", "proxy-connection", "te", "trailer",
                 "upgrade"):
        assert name not in seen, "backend received hop-by-hop header %s: %r" % (
            name, entry["headers"])
    connection_tokens = {t.strip().lower()
                         for v in request_header(entry, "Connection") for t in v.split(",")}
    assert connection_tokens <= OWN_CONNECTION_TOKENS, \
        "backend received the client's Connection header: %r" % entry["headers"]
    assert request_header(entry, "X-End-To-End") == ["kept"]


def test_hop_by_hop_response_headers_do_not_reach_client(proxy, backend):
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/headers")
        assert r.status == 200, r
        assert r.body == b"headers\n"
        names = {k.lower() for k, _ in r.headers}
        for name in ("x-custom", "keep-alive", "upgrade", "proxy-connection"):
            assert name not in names, "client received hop-by-hop header %s: %r" % (
                name, r.headers)
        assert set(r.tokens("connection")) <= OWN_CONNECTION_TOKENS, r.headers
        assert r.header("X-Normal") == "yes"
        # The backend's "Connection: X-Custom" did not end the client's connection.
        r = c.request("GET", "/after")
        assert r.status == 200 and r.body == b"backend-1 /after\n", r


def test_hundred_requests_on_one_client_connection_use_one_backend_connection(
        start_proxy, backend):
    proxy = start_proxy([backend], threads=1)
    with HttpConnection(proxy.port) as c:
        for i in range(100):
            r = c.request("GET", "/ka/%d" % i)
            assert r.status == 200, (i, r)
            assert r.body == b"backend-1 /ka/%d\n" % i
            assert "close" not in r.tokens("connection"), (i, r)
        assert not c.eof

    requests = backend.wait_for_requests(100)
    assert [e["target"] for e in requests] == ["/ka/%d" % i for i in range(100)]
    assert len(backend.connections()) == 1, \
        "backend saw %d TCP connections for 100 sequential requests" % len(
            backend.connections())
    assert {e["conn"] for e in requests} == {backend.connections()[0]["conn"]}


def test_backend_connection_is_reused_across_client_connections(start_proxy, backend):
    proxy = start_proxy([backend], threads=1)
    for i in range(10):
        with HttpConnection(proxy.port) as c:
            for j in range(10):
                r = c.request("GET", "/client/%d/%d" % (i, j))
                assert r.status == 200, (i, j, r)
                assert r.body == b"backend-1 /client/%d/%d\n" % (i, j)

    requests = backend.wait_for_requests(100)
    assert len(requests) == 100
    assert len(backend.connections()) == 1, \
        "backend saw %d TCP connections for 10 client connections one after another" % len(
            backend.connections())


def test_pipelined_requests_are_answered_in_order(proxy, backend):
    with HttpConnection(proxy.port) as c:
        c.send(b"".join(build_request("GET", "/pipe/%d" % i) for i in range(20)))
        for i in range(20):
            r = c.read_response()
            assert r.status == 200, (i, r)
            assert r.body == b"backend-1 /pipe/%d\n" % i, "response %d out of order" % i
        r = c.request("GET", "/after-pipeline")
        assert r.body == b"backend-1 /after-pipeline\n"
    assert [e["target"] for e in backend.wait_for_requests(21)][:20] == \
        ["/pipe/%d" % i for i in range(20)]


def test_pipelined_mixed_requests_keep_their_framing(proxy, backend):
    body = b"0123456789" * 300
    batch = [
        build_request("POST", "/echo", body=body),
        build_request("HEAD", "/download?bytes=777"),
        build_request("GET", "/status?code=204"),
        build_request("POST", "/upload", [("Transfer-Encoding", "chunked")],
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        build_request("GET", "/status?code=304"),
        build_request("GET", "/download?bytes=3000&chunked=1"),
        build_request("GET", "/last"),
    ]
    with HttpConnection(proxy.port) as c:
        c.send(b"".join(batch))
        r = c.read_response()
        assert r.status == 200 and r.json()["body"] == body.decode(), r
        r = c.read_response("HEAD")
        assert r.status == 200 and r.header("Content-Length") == "777" and r.body == b"", r
        r = c.read_response()
        assert r.status == 204 and r.body == b"", r
        r = c.read_response()
        assert r.status == 200 and r.json()["len"] == 11, r
        r = c.read_response()
        assert r.status == 304 and r.body == b"", r
        r = c.read_response()
        assert r.status == 200 and len(r.body) == 3000, r
        r = c.read_response()
        assert r.status == 200 and r.body == b"backend-1 /last\n", r
