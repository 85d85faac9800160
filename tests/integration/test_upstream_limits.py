"""--upstream-max-conns and its queue: a burst of clients opens no more upstream connections
than the limit, the queue answers 503 with Retry-After when full or too slow, and the
balancer prefers a target with a free connection."""

import time

import pytest

from burst import Burst, CountingBackend, raise_nofile
from harness import LOOPBACK, HttpConnection, free_port, get, parse_metrics, port_accepts, wait_until


@pytest.fixture
def counting_backend(tmp_path):
    b = CountingBackend(tmp_path, delay_ms=2)
    yield b
    b.stop()


def scrape(proxy):
    r = get(proxy.admin_port, "/metrics")
    assert r.status == 200
    return parse_metrics(r.body.decode())


def start_admin_proxy(start_proxy, targets, **flags):
    admin_port = free_port()
    p = start_proxy(targets, admin="%s:%d" % (LOOPBACK, admin_port), **flags)
    wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10, "the admin listener")
    p.admin_port = admin_port
    return p


BURST_CLIENTS = 10000
LIMIT = 16


@pytest.mark.serial
@pytest.mark.slow
def test_a_10000_client_burst_opens_no_more_upstream_connections_than_the_limit(start_proxy,
                                                                                counting_backend):
    limit = raise_nofile()
    assert limit >= BURST_CLIENTS + 1000, "descriptor limit %d is too low for the burst" % limit
    proxy = start_admin_proxy(start_proxy, [counting_backend], threads=2, upstream_max_conns=LIMIT,
                              # Each reactor holds half of the queue, and SO_REUSEPORT does not
                              # split 10,000 clients exactly in half: room for all on either.
                              upstream_queue_max=2 * BURST_CLIENTS, upstream_queue_timeout_ms=120000,
                              max_connections=BURST_CLIENTS + 100)
    started = time.monotonic()
    burst = Burst(proxy.port, BURST_CLIENTS, procs=4, deadline_s=150)
    statuses = burst.results()
    burst.release()
    elapsed = time.monotonic() - started
    assert statuses.get(200) == BURST_CLIENTS, (statuses, counting_backend.stats())
    seen = counting_backend.wait_requests(BURST_CLIENTS, timeout=10)
    # What the backend saw, not what the proxy says about itself.
    assert seen["max_open"] <= LIMIT, seen
    assert seen["accepted"] <= LIMIT, seen
    m = scrape(proxy)
    assert m["ringmaster_upstream_connects_total"] <= LIMIT
    assert m["ringmaster_upstream_queued_total"] > 0, "a burst this large must have queued"
    assert m["ringmaster_upstream_queue_length"] == 0
    assert m["ringmaster_upstream_queue_wait_seconds_count"] == m["ringmaster_upstream_queued_total"]
    print("burst of %d: %.1fs, backend %s, queued %d" % (BURST_CLIENTS, elapsed, seen,
                                                          m["ringmaster_upstream_queued_total"]))


def test_the_queue_times_out_to_503_with_retry_after(start_proxy, backend):
    proxy = start_admin_proxy(start_proxy, [backend], threads=1, upstream_max_conns=1,
                              upstream_queue_timeout_ms=300, client_timeout_ms=100)
    with HttpConnection(proxy.port) as busy, HttpConnection(proxy.port) as waiting:
        busy.send(b"GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
        backend.wait_for_requests(1)
        started = time.monotonic()
        r = waiting.request("GET", "/second", timeout=10)
        waited = time.monotonic() - started
        # The client's own (shorter) timeout does not apply while we make it wait.
        assert r.status == 503, r
        assert r.header("Retry-After") == "1", r.headers
        assert 0.25 <= waited < 2, waited
        assert busy.read_response(timeout=10).status == 200
    assert [e["target"] for e in backend.requests()] == ["/slow?ms=2000"]
    m = scrape(proxy)
    assert m["ringmaster_upstream_queue_timeouts_total"] == 1
    assert m["ringmaster_upstream_queue_wait_seconds_count"] == 1
    assert m["ringmaster_upstream_queue_length"] == 0


def test_a_full_queue_answers_503_at_once(start_proxy, backend):
    proxy = start_admin_proxy(start_proxy, [backend], threads=1, upstream_max_conns=1,
                              upstream_queue_max=0)
    with HttpConnection(proxy.port) as busy, HttpConnection(proxy.port) as refused:
        busy.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        backend.wait_for_requests(1)
        started = time.monotonic()
        r = refused.request("GET", "/refused", timeout=10)
        assert r.status == 503 and r.header("Retry-After") is not None, r
        assert time.monotonic() - started < 1
        assert busy.read_response(timeout=10).status == 200
    assert scrape(proxy)["ringmaster_upstream_queue_full_total"] == 1


def test_a_queued_request_is_sent_on_the_connection_that_frees(start_proxy, backend):
    proxy = start_admin_proxy(start_proxy, [backend], threads=1, upstream_max_conns=1)
    with HttpConnection(proxy.port) as first, HttpConnection(proxy.port) as second:
        first.send(b"GET /slow?ms=500 HTTP/1.1\r\nHost: x\r\n\r\n")
        backend.wait_for_requests(1)
        second.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert first.read_response(timeout=10).status == 200
        r = second.read_response(timeout=10)
        assert r.status == 200 and b'"len": 5' in r.body, r
    conns = {e["conn"] for e in backend.requests()}
    assert len(conns) == 1, backend.requests()
    m = scrape(proxy)
    assert m["ringmaster_upstream_connects_total"] == 1
    assert m["ringmaster_upstream_queued_total"] == 1


def test_least_requests_prefers_a_target_with_a_free_connection(start_proxy, start_backend):
    a, b = start_backend("a"), start_backend("b")
    proxy = start_admin_proxy(start_proxy, [a, b], threads=1, upstream_max_conns=1)
    with HttpConnection(proxy.port) as slow:
        slow.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: len(a.requests()) + len(b.requests()) == 1, 10, "the slow request")
        busy, free = (a, b) if a.requests() else (b, a)
        # The free target soon has more requests than the busy one; each still goes there
        # instead of waiting behind the slow one.
        for i in range(5):
            started = time.monotonic()
            assert get(proxy.port, "/fast-%d" % i).status == 200
            assert time.monotonic() - started < 1
        assert len(free.requests()) == 5 and len(busy.requests()) == 1
        assert slow.read_response(timeout=10).status == 200
    assert scrape(proxy)["ringmaster_upstream_queued_total"] == 0
