"""Per-service timeouts and upstream limits (issue 14): each [[service]] has its own
connect-timeout-ms, upstream-timeout-ms, upstream-max-conns, upstream-queue-max,
upstream-queue-timeout-ms and body-bytes-max (defaults: the flags), applied per service's
targets, and a reload changes them for the requests routed after it."""

import select
import socket
import time

import pytest

from burst import Burst, CountingBackend
from harness import LOOPBACK, HttpConnection, build_request, request_header, wait_until
from servicelib import _write, start_config_proxy  # noqa: F401  (a fixture, used by name)


def _service(name, targets, prefix=None, **limits):
    """A static service reached by Host: NAME (the backends see the path as sent), or by a
    path prefix."""
    match = 'path-prefix = "%s"' % prefix if prefix else 'hosts = ["%s"]' % name
    lines = ["[[service]]", 'name = "%s"' % name, match,
             "target = [%s]" % ", ".join('"%s"' % t.addr for t in targets)]
    lines += ["%s = %s" % (key.replace("_", "-"), value) for key, value in limits.items()]
    return "\n".join(lines) + "\n"


def _answered(conn):
    """Whether any response byte reached `conn` (without reading it)."""
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)


def test_each_service_times_out_upstream_at_its_own_deadline(start_backend, start_config_proxy):
    silent = start_backend("silent")
    admin, _ = start_config_proxy(
        _service("quick", [silent], upstream_timeout_ms=300)
        + _service("patient", [silent], upstream_timeout_ms=20000))
    port = admin.proxy.port
    with HttpConnection(port, timeout=30) as quick, HttpConnection(port, timeout=30) as patient:
        # The backend is silent for 4 s on both; only "quick" gives up, at its own deadline.
        patient.send(build_request("GET", "/slow?ms=4000", [("Host", "patient")]))
        silent.wait_for_requests(1)
        started = time.monotonic()
        r = quick.request("GET", "/slow?ms=4000", [("Host", "quick")], timeout=10)
        waited = time.monotonic() - started
        assert r.status == 504, r
        assert 0.3 <= waited < 3.0, waited
        assert not _answered(patient), "the patient service gave up with the quick one"
        r = patient.read_response(timeout=20)
        assert r.status == 200, r


class _Blackhole:
    """A target that never completes a connect: a listener whose accept queue is full, so
    the kernel drops further SYNs (as a host behind a dropping firewall would)."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(0)
        self.addr = "%s:%d" % self.listener.getsockname()
        self.fillers = []
        for _ in range(4):  # more than the backlog holds; the rest stay in SYN-SENT
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(self.listener.getsockname())
            self.fillers.append(s)

    def close(self):
        for s in self.fillers + [self.listener]:
            s.close()


def test_each_service_gives_up_connecting_at_its_own_connect_timeout(start_config_proxy):
    hole = _Blackhole()
    try:
        admin, _ = start_config_proxy(
            _service("eager", [hole], connect_timeout_ms=200)
            + _service("lenient", [hole], connect_timeout_ms=2500))
        waited = {}
        for name in ("eager", "lenient"):
            started = time.monotonic()
            r = HttpConnection(admin.proxy.port, timeout=30).request("GET", "/", [("Host", name)], timeout=20)
            waited[name] = (r.status, time.monotonic() - started)
        # The only target never answered the connect: 502 after each service's own timeout.
        assert waited["eager"][0] == 502 and 0.2 <= waited["eager"][1] < 1.5, waited
        assert waited["lenient"][0] == 502 and 2.4 <= waited["lenient"][1] < 6.0, waited
    finally:
        hole.close()


def test_each_service_holds_its_own_connection_limit_counted_at_the_backend(tmp_path, start_config_proxy):
    narrow = CountingBackend(tmp_path, delay_ms=100, name="narrow")
    wide = CountingBackend(tmp_path, delay_ms=100, name="wide")
    try:
        admin, _ = start_config_proxy(
            # The queue timeout is far above the 48 x 100 ms the narrow service needs one
            # connection at a time (2.4 s at best, more under ASan on a loaded machine): this
            # test is about the connection limit, the queue timeout has its own test below.
            _service("narrow", [narrow], prefix="/narrow/", upstream_max_conns=2,
                     upstream_queue_timeout_ms=30000)
            + _service("wide", [wide], prefix="/wide/", upstream_max_conns=12,
                       upstream_queue_timeout_ms=30000),
            threads=2)
        clients = 48
        bursts = [Burst(admin.proxy.port, clients, procs=2, path="/narrow/x", deadline_s=60),
                  Burst(admin.proxy.port, clients, procs=2, path="/wide/x", deadline_s=60)]
        for b in bursts:
            statuses = b.results()
            b.release()
            assert statuses.get(200) == clients, statuses
        n = narrow.wait_requests(clients)
        w = wide.wait_requests(clients)
        # What each backend saw: never more connections than its own service allows.
        assert n["max_open"] <= 2 and n["accepted"] <= 2, n
        assert w["max_open"] <= 12, w
        # ... and the wide one was not held to the narrow one's limit.
        assert w["max_open"] > 2, w
    finally:
        narrow.stop()
        wide.stop()


def test_each_service_queues_with_its_own_timeout_and_retry_after(start_backend, start_config_proxy):
    backend = start_backend("busy")
    admin, _ = start_config_proxy(
        _service("short", [backend], upstream_max_conns=1, upstream_queue_timeout_ms=300)
        + _service("long", [backend], upstream_max_conns=1, upstream_queue_timeout_ms=2500)
        + _service("nowait", [backend], upstream_max_conns=1, upstream_queue_max=0),
        threads=1, client_timeout_ms=100)
    port = admin.proxy.port
    busy = []
    try:
        for name in ("short", "long", "nowait"):
            c = HttpConnection(port, timeout=30)
            c.send(build_request("GET", "/slow?ms=8000", [("Host", name)]))
            busy.append(c)
        backend.wait_for_requests(3)
        results = {}
        for name in ("short", "long", "nowait"):
            with HttpConnection(port, timeout=30) as waiting:
                started = time.monotonic()
                r = waiting.request("GET", "/second", [("Host", name)], timeout=15)
                results[name] = (r.status, r.header("Retry-After"), time.monotonic() - started)
        assert results["short"][:2] == (503, "1"), results
        assert 0.25 <= results["short"][2] < 2.0, results
        assert results["long"][:2] == (503, "3"), results
        assert 2.4 <= results["long"][2] < 6.0, results
        # No room to wait at all: 503 at once.
        assert results["nowait"][0] == 503 and results["nowait"][2] < 1.0, results
    finally:
        for c in busy:
            c.close()
    m = admin.metrics()
    assert m["ringmaster_upstream_queue_timeouts_total"] == 2
    assert m["ringmaster_upstream_queue_full_total"] == 1


def test_each_service_has_its_own_body_limit(start_backend, start_config_proxy):
    backend = start_backend("bodies")
    admin, _ = start_config_proxy(
        _service("small", [backend], body_bytes_max='"1K"')
        + _service("large", [backend]),
        body_bytes_max="4K")
    port = admin.proxy.port
    body = b"x" * 2048
    with HttpConnection(port) as c:
        assert c.request("POST", "/upload", [("Host", "small")], body=body).status == 413
    with HttpConnection(port) as c:
        assert c.request("POST", "/upload", [("Host", "large")], body=body).status == 200
        assert c.request("POST", "/upload", [("Host", "large")], body=b"y" * 5000).status == 413  # the flag's
    with HttpConnection(port) as c:
        # A chunked body is counted as it arrives.
        c.send(b"POST /chunked HTTP/1.1\r\nHost: small\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"800\r\n" + body + b"\r\n0\r\n\r\n")
        assert c.read_response().status == 413
    with HttpConnection(port) as c:
        assert c.request("POST", "/upload", [("Host", "small")], body=b"z" * 1000).status == 200
    # What the backend saw: of the small service's requests only the one within its limit.
    small = [r["body_len"] for r in backend.requests() if request_header(r, "Host") == ["small"]]
    assert small == [1000], backend.requests()


def test_a_reload_changes_a_timeout_for_requests_routed_after_it(start_backend, start_config_proxy):
    backend = start_backend("slowish")
    admin, path = start_config_proxy(_service("api", [backend], upstream_timeout_ms=20000))
    port = admin.proxy.port
    assert HttpConnection(port).request("GET", "/slow?ms=1500", [("Host", "api")], timeout=10).status == 200
    with HttpConnection(port, timeout=30) as before:
        # In flight across the reload: it keeps the deadline it was routed with.
        before.send(build_request("GET", "/slow?ms=2500", [("Host", "api")]))
        wait_until(lambda: len(backend.requests()) >= 2, 10, "the in-flight request upstream")
        _write(path, "", [_service("api", [backend], upstream_timeout_ms=300)])
        r = admin.reload()
        assert r.status == 200, r
        text = r.body.decode()
        # Applied live: not among the settings that wait for a restart.
        assert "not applied" not in text, text
        started = time.monotonic()
        after = HttpConnection(port).request("GET", "/slow?ms=1500", [("Host", "api")], timeout=10)
        assert after.status == 504, after
        assert time.monotonic() - started < 1.4
        assert before.read_response(timeout=20).status == 200
    # And back: the same service (its counters kept) waits again.
    _write(path, "", [_service("api", [backend], upstream_timeout_ms=20000)])
    assert admin.reload().status == 200
    assert HttpConnection(port).request("GET", "/slow?ms=1500", [("Host", "api")], timeout=10).status == 200
    m = admin.metrics()
    assert m['ringmaster_service_requests_total{service="api"}'] == 4


def test_a_bad_limit_fails_check_with_file_line_and_key(ringmaster_bin, tmp_path, start_backend):
    import subprocess
    backend = start_backend("b")
    path = tmp_path / "bad.toml"
    path.write_text('listen = "127.0.0.1:1"\n' + _service("api", [backend], upstream_timeout_ms=0),
                    encoding="utf-8")
    out = subprocess.run([str(ringmaster_bin), "check", "--config", str(path)], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 2, out
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].endswith('%s:6: service "api": upstream-timeout-ms: expected an integer 1..86400000, got "0"'
                             % path), lines


def test_each_services_cache_counts_its_own_stores_evictions_and_invalidations(start_backend,
                                                                               start_config_proxy):
    backend = start_backend("origin")
    admin, _ = start_config_proxy(
        _service("small", [backend], cache_bytes='"1M"')
        + _service("roomy", [backend], cache_bytes='"8M"'))
    port = admin.proxy.port

    def fetch(host, name, size):
        r = HttpConnection(port).request("GET", "/cacheable/%s?max_age=600&bytes=%d" % (name, size),
                                         [("Host", host)])
        assert r.status == 200, r
        return r.header("X-Serial")

    # Three 400K answers do not fit the small service's 1M: one is evicted; one small answer
    # goes to the roomy service's cache, and a second request for it is a hit (same serial).
    for name in ("a", "b", "c"):
        fetch("small", name, 400 << 10)
    first = fetch("roomy", "x", 1000)
    assert fetch("roomy", "x", 1000) == first

    def counters():
        m = admin.metrics()
        return {(family, service): m['ringmaster_service_cache_%s_total{service="%s"}' % (family, service)]
                for family in ("stores", "evictions", "invalidations") for service in ("small", "roomy")}

    wait_until(lambda: counters()[("stores", "small")] == 3, 5, "three stores in the small cache")
    c = counters()
    assert c[("stores", "roomy")] == 1, c
    assert c[("evictions", "small")] >= 1 and c[("evictions", "roomy")] == 0, c
    assert c[("invalidations", "small")] == 0 and c[("invalidations", "roomy")] == 0, c
    # A purge of one service's cache is that service's invalidation only.
    assert admin.post("/cache/purge?service=roomy").status == 200
    c = counters()
    assert c[("invalidations", "roomy")] == 1 and c[("invalidations", "small")] == 0, c
    assert fetch("roomy", "x", 1000) != first
