"""Backends that answer wrongly (issue 6, items 2 and 4): what reaches the client, whether the
upstream connection is reused afterwards, and whether anything of it is cached.

evil_backend.py answers /r/<name> with exactly the canned bytes RESPONSES[<name>] and any
other path with a correct, uncacheable `ok <target>`; it logs every connection and request,
so a test sees on which upstream connection each request arrived. Every case runs against a
fresh proxy with the cache ON, --threads 1 (one upstream pool, so a connection that should
have been dropped would be the one reused) and --upstream-timeout-ms 1500, and checks:

  * the first response as the case expects: a 502 made by the proxy; or the client
    connection closed without a complete response (a body cut short); or a correct
    bodiless response (HEAD/204/304 whose backend sent a body anyway); or the response
    without what followed it (a second response appended);
  * the next request on the same client connection (when the proxy kept it open) and on a
    second client connection each get their own correct response: the stray bytes (always
    a complete response carrying X-Poison) are never read as a response;
  * after a bad response the upstream connection is never reused (the next request arrives
    on another connection); the controls show that a good one is;
  * the same request again reaches the backend: nothing of a bad response was cached;
  * no byte of a rejected header value (CR, LF, NUL) reaches a client.
"""

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness
from harness import ConnectionClosed, HttpConnection, ProtocolError, wait_until

EVIL_PY = Path(__file__).resolve().parent / "evil_backend.py"


class EvilBackend:
    """evil_backend.py as a separate process, with its JSON log."""

    def __init__(self, tmp_dir, name="evil"):
        self.dir = Path(tmp_dir) / ("evil-" + name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "log.jsonl"
        self.log_path.touch()
        ready = self.dir / "ready"
        self.process = harness.ManagedProcess(
            [harness.PYTHON, EVIL_PY, "--port", 0, "--name", name, "--log", self.log_path,
             "--ready-file", ready], self.dir / "output.log", name="evil backend " + name)
        wait_until(lambda: ready.exists() or not self.process.alive(), 15,
                   "evil backend to listen")
        assert self.process.alive(), self.process.output_tail()
        self.port = int(ready.read_text().strip())
        self.addr = "%s:%d" % (harness.LOOPBACK, self.port)

    def events(self, kind=None):
        out = []
        with open(self.log_path, "r", encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    e = json.loads(line)
                    if kind is None or e["event"] == kind:
                        out.append(e)
        return out

    def requests(self):
        return self.events("request")

    def wait_request(self, target, count=1, timeout=5.0):
        """The `count`-th request for `target` (polls the log)."""
        def found():
            hits = [e for e in self.requests() if e["target"] == target]
            return hits[count - 1] if len(hits) >= count else None
        return wait_until(found, timeout, "evil backend to log request %d for %s"
                          % (count, target))

    def wait_sent(self, conn, seq, timeout=5.0):
        return wait_until(lambda: next((e for e in self.events("sent")
                                        if e["conn"] == conn and e["seq"] == seq), None),
                          timeout, "evil backend to finish its response")

    def stop(self):
        return self.process.stop(signal.SIGKILL, timeout=5)


@pytest.fixture
def evil(tmp_path, request):
    e = EvilBackend(tmp_path)
    harness.track(request, e.process)
    yield e
    e.stop()


@pytest.fixture
def evil_proxy(start_proxy, evil):
    # The canned responses state no freshness: --cache-ttl (the opt-in lifetime for those)
    # makes every one storable, so "not cached" below shows the proxy refused it.
    return start_proxy([evil], threads=1, cache_bytes="16M", upstream_timeout_ms=1500,
                       cache_ttl=120)


# ---------------------------------------------------------------------------------------
# The table

@dataclass
class Case:
    name: str                 # the canned response (evil_backend.RESPONSES)
    kind: str                 # "502" | "cut" | "bodiless" | "clean" | "either"
    method: str = "GET"
    status: int = 200         # bodiless/clean: the status the client must get
    body: bytes = b""         # clean/either: the body the client must get
    check: object = None      # either: extra check on a non-502 response
    reuse_ok: bool = False    # the response was valid: reusing its connection is fine
    cacheable_ok: bool = False  # the response was valid: storing it is fine


def _no_header_line_starts_with_space(resp):
    return not any(line[:1] in (b" ", b"\t") for line in resp.raw_head.split(b"\r\n"))


CASES = [
    # Ambiguous or invalid framing: 502, never reused, never cached.
    Case("cl_te", "502"),
    Case("te_cl", "502"),
    Case("two_cl", "502"),
    Case("cl_list", "502"),
    Case("cl_plus", "502"),
    Case("cl_negative", "502"),
    Case("cl_hex", "502"),
    Case("te_chunked_then_x", "502"),
    # RFC 9112 6.3: a response whose final coding is not chunked is close-delimited; a proxy
    # may relay it (the client must still learn the coding) or refuse it.
    Case("te_gzip", "either", body=b"\x1f\x8b\x08\x00not-really-gzip",
         check=lambda r: "gzip" in r.tokens("transfer-encoding") + r.tokens("content-encoding")),
    # Status lines.
    Case("status_2000", "502"),
    Case("status_abc", "502"),
    Case("status_icy", "502"),
    Case("status_http2", "502"),
    Case("status_lowercase", "502"),
    Case("status_http09", "502"),
    Case("status_no_reason", "either", body=b"ok", reuse_ok=True, cacheable_ok=True),
    Case("status_empty_reason", "clean", body=b"ok", reuse_ok=True, cacheable_ok=True),
    # Header fields (item 4: CR/LF/NUL in a value never passed through).
    Case("value_cr", "502"),
    Case("value_lf", "502"),
    Case("value_nul", "502"),
    # RFC 9112 5.2: a proxy either answers 502 or replaces the obs-fold with SP.
    Case("obs_fold", "either", body=b"ok",
         check=lambda r: r.header("X-A") in ("a folded", "a  folded")
         and _no_header_line_starts_with_space(r)),
    # RFC 9112 5.1: a proxy must remove whitespace before the colon (or refuse); either way
    # Content-Length: 5 frames the body and the appended response is never served.
    Case("space_before_colon", "either", body=b"hello",
         check=lambda r: b" :" not in r.raw_head),
    Case("bare_lf_head", "either", body=b"ok"),
    # Bodies cut short or broken mid-stream: the client connection is closed and never
    # sees a complete response.
    Case("cut_close", "cut"),
    Case("cut_hang", "cut"),
    Case("chunked_cut_close", "cut"),
    Case("chunk_bad_size", "cut"),
    Case("chunk_size_overflow", "cut"),
    Case("chunk_missing_crlf", "cut"),
    # Bodies where there can be none: a correct bodiless response, no desync after it.
    Case("head_with_body", "bodiless", method="HEAD", status=200),
    Case("204_with_body", "bodiless", status=204),
    Case("204_with_cl_body", "bodiless", status=204),
    Case("304_with_body", "bodiless", status=304),
    # More bytes after a complete response: served without them, connection dropped.
    Case("extra_response", "clean", body=b"hello", cacheable_ok=True),
    Case("late_extra_response", "clean", body=b"hello", cacheable_ok=True),
    Case("extra_garbage", "clean", body=b"hello", cacheable_ok=True),
    # A protocol switch nobody asked for.
    Case("switching", "502"),
]

CONTROLS = [Case("good", "clean", body=b"hello", reuse_ok=True, cacheable_ok=True),
            Case("good_chunked", "clean", body=b"hello", reuse_ok=True, cacheable_ok=True)]


def _assert_clean_bytes(case, data):
    for marker in (b"X-Poison", b"poisoned", b"injected"):
        assert marker not in data, "%s: a client received %r from the backend's bad " \
            "response: %r" % (case.name, marker, data[:600])


def _read_first(case, conn):
    """The first response (None when the proxy closed without one)."""
    try:
        return conn.read_response(case.method, timeout=8)
    except ConnectionClosed:
        return None
    except TimeoutError:
        pytest.fail("%s: the proxy neither answered nor closed within 8 s" % case.name)


def _check_first(case, conn, resp):
    """Checks the first response; returns True when the client connection must be closed."""
    if case.kind == "502":
        assert resp is not None and resp.status == 502, \
            "%s: expected the proxy's 502, got %r" % (case.name, resp)
        return "close" in resp.tokens("connection")
    if case.kind == "cut":
        if resp is not None and resp.status != 502:
            assert not resp.complete, \
                "%s: the client got a complete response although the backend's body was " \
                "cut or broken: %r body=%r" % (case.name, resp, resp.body)
            assert resp.body_len < 100, (case.name, resp)
        assert conn.wait_closed(5), \
            "%s: client connection left open after a cut response" % case.name
        return True
    if case.kind == "bodiless":
        assert resp is not None and resp.status == case.status, (case.name, resp)
        assert resp.body == b"" and "chunked" not in resp.tokens("transfer-encoding"), \
            (case.name, resp)
        return False
    if case.kind == "either" and resp is not None and resp.status == 502:
        return "close" in resp.tokens("connection")
    assert resp is not None and resp.status == case.status and resp.complete, \
        "%s: expected %d %r, got %r" % (case.name, case.status, case.body, resp)
    assert resp.body == case.body, "%s: body %r, expected %r" % (case.name, resp.body,
                                                                 case.body)
    if case.check is not None:
        assert case.check(resp), "%s: response relayed wrongly: %r" % (case.name, resp)
    return False


def _run_case(case, proxy, evil):
    target = "/r/" + case.name
    received = bytearray()
    with HttpConnection(proxy.port, timeout=8) as c:
        c.send(harness.build_request(case.method, target))
        resp = _read_first(case, c)
        if resp is not None:
            received += resp.raw_head + resp.body
        bad = evil.wait_request(target)
        evil.wait_sent(bad["conn"], bad["seq"])  # the stray bytes are all out
        must_close = _check_first(case, c, resp)
        if must_close:
            c.wait_closed(5)
            received += bytes(c.buf)
        else:
            # The next request on the same client connection gets its own response.
            try:
                nxt = c.request("GET", "/next-same", timeout=8)
            except (ConnectionClosed, ProtocolError, TimeoutError) as e:
                pytest.fail("%s: the next request on the same client connection failed: %s"
                            % (case.name, e))
            received += nxt.raw_head + nxt.body
            _assert_clean_bytes(case, bytes(received))
            assert nxt.status == 200 and nxt.body == b"ok /next-same\n", \
                "%s: the next request on the same connection got %r (desync)" % (
                    case.name, nxt)
    _assert_clean_bytes(case, bytes(received))

    # A second client gets its own response too.
    with HttpConnection(proxy.port, timeout=8) as c:
        nxt = c.request("GET", "/next-other", timeout=8)
        _assert_clean_bytes(case, nxt.raw_head + nxt.body)
        assert nxt.status == 200 and nxt.body == b"ok /next-other\n", \
            "%s: a second client got %r (desync)" % (case.name, nxt)

    # Reuse: every later request arrived on another upstream connection.
    later = [e for e in evil.requests() if e["target"] in ("/next-same", "/next-other")]
    reused = [e for e in later if e["conn"] == bad["conn"]]
    if not case.reuse_ok:
        assert not reused, "%s: the proxy reused upstream connection %d after its bad " \
            "response: %r" % (case.name, bad["conn"], reused)
    return bad, later


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_bad_backend_response(case, evil_proxy, evil):
    _run_case(case, evil_proxy, evil)
    if case.cacheable_ok:
        return
    # Nothing of it was stored: the same request reaches the backend again.
    target = "/r/" + case.name
    with HttpConnection(evil_proxy.port, timeout=8) as c:
        c.send(harness.build_request(case.method, target))
        try:
            again = c.read_response(case.method, timeout=8)
            _assert_clean_bytes(case, again.raw_head + again.body)
        except (ConnectionClosed, ProtocolError):
            again = None
    try:
        evil.wait_request(target, count=2, timeout=5)
    except AssertionError:
        pytest.fail("%s: the repeated request was answered without reaching the backend "
                    "(%r): the bad response was cached" % (case.name, again))


def test_early_hints_reach_http11_clients_and_are_never_stored(evil_proxy, evil):
    """RFC 8297 / RFC 9110 15.2: a 103 goes ahead of the response to an HTTP/1.1 client (a
    100 from the backend does not: the proxy answers Expect itself), never to HTTP/1.0, and
    is no part of what the cache stores (the proxy runs with --cache-ttl here)."""
    with HttpConnection(evil_proxy.port, timeout=8) as c:
        r = c.request("GET", "/r/early_hints", timeout=8)
    assert r.status == 200 and r.body == b"hello", r
    assert [i.status for i in r.interim] == [103], r.interim
    assert r.interim[0].header("Link") == "</style.css>; rel=preload", r.interim[0]
    # The 200 was stored: the hit carries no 103.
    with HttpConnection(evil_proxy.port, timeout=8) as c:
        hit = c.request("GET", "/r/early_hints", timeout=8)
    assert hit.status == 200 and hit.body == b"hello" and hit.header("Age") is not None, hit
    assert hit.interim == [], hit.interim
    # HTTP/1.0: no interim response at all (Cache-Control: no-cache skips the stored one).
    with HttpConnection(evil_proxy.port, timeout=8) as c:
        c.send(harness.build_request("GET", "/r/early_hints", [("Cache-Control", "no-cache")],
                                     version="HTTP/1.0"))
        r10 = c.read_response(timeout=8)
    assert r10.status == 200 and r10.body == b"hello" and r10.interim == [], r10
    assert len([e for e in evil.requests() if e["target"] == "/r/early_hints"]) == 2


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CONTROLS])
def test_good_response_connection_is_reused(case, evil_proxy, evil):
    """The controls: the detection above works because a good connection IS reused."""
    bad, later = _run_case(case, evil_proxy, evil)
    assert any(e["conn"] == bad["conn"] for e in later), \
        "%s: a good keep-alive upstream connection was not reused: %r" % (case.name, later)


def test_stray_body_after_head_never_answers_a_get_on_the_same_upstream(evil_proxy, evil):
    """HEAD then GET on one client connection, twice over, then GETs from new clients:
    each response belongs to its own request."""
    with HttpConnection(evil_proxy.port, timeout=8) as c:
        for i in range(3):
            r = c.request("HEAD", "/r/head_with_body", timeout=8)
            assert r.status == 200 and r.body == b"", r
            r = c.request("GET", "/after-head-%d" % i, timeout=8)
            assert r.status == 200 and r.body == b"ok /after-head-%d\n" % i, \
                "GET after a HEAD whose response carried a body got %r (desync)" % r
    for i in range(3):
        r = harness.get(evil_proxy.port, "/fresh-%d" % i, timeout=8)
        assert r.status == 200 and r.body == b"ok /fresh-%d\n" % i, r
        assert r.header("X-Poison") is None, r
