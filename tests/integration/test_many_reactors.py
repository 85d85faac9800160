"""More reactors than CPUs (issue 14): `--threads 80` on this 2-core machine.

Bare-metal hosts with more than 64 CPUs get a default --threads above 64; per-reactor limits
(a 64-bit mask of reactors, say) must not hide behind a small test machine, so this runs the
proxy with 80 reactors here. Each reactor has its own SO_REUSEPORT listener and the kernel
spreads connections over them by their addresses, so with 160 connections the chance that
none lands on a reactor numbered 64 or above is (64/80)^160, about 1e-16: the requests below
reach the high reactors, as owners of a collapsed miss and as waiters on one.
"""

import pytest

# Shared with the cache tests: the proxy with --cache-bytes and --admin, one GET per new
# connection, concurrent cold GETs for one key, and what the backend received.
from cachelib import (assert_age, concurrent_gets, fetch, origin_hits, serial,  # noqa: F401
                      start_cache_proxy)
from harness import HttpConnection

THREADS = 80
CONNECTIONS = 2 * THREADS


@pytest.mark.slow
def test_eighty_reactors_proxy_and_collapse_cache_misses(start_cache_proxy, backend):
    proxy = start_cache_proxy([backend], threads=THREADS)

    # Proxied: every connection open at once (so they spread over the reactors), then two
    # requests on each, the cache bypassed; each answer is the backend's for that request.
    conns = [HttpConnection(proxy.port, timeout=30.0) for _ in range(CONNECTIONS)]
    try:
        for round_ in range(2):
            for i, c in enumerate(conns):
                target = "/proxied/%d/%d" % (i, round_)
                r = c.request("GET", target, [("Cache-Control", "no-cache")], timeout=30.0)
                assert r.status == 200, r
                assert r.body == ("backend-1 %s\n" % target).encode(), r
    finally:
        for c in conns:
            c.close()
    assert len(origin_hits(backend, "/proxied/")) == 2 * CONNECTIONS

    # Collapsed misses: 160 concurrent cold requests per key, three keys; one backend
    # request each, every client the same body. (The proxied responses above were stored.)
    stores_before = proxy.metric("ringmaster_cache_stores_total")
    for key in range(3):
        target = "/cacheable/many-%d?max_age=600&delay_ms=1000&bytes=2000" % key
        results, elapsed = concurrent_gets(proxy.port, target, CONNECTIONS, timeout=30.0)
        bad = [(i, r) for i, r in enumerate(results)
               if isinstance(r, Exception) or r.status != 200]
        assert not bad, "%d of %d failed, e.g. %r" % (len(bad), CONNECTIONS, bad[:3])
        assert {r.body for r in results} == {results[0].body}, "clients got different bodies"
        sent = origin_hits(backend, "/cacheable/many-%d?" % key)
        assert len(sent) == 1, "%d concurrent misses made %d backend requests" % (
            CONNECTIONS, len(sent))
        print("key %d: %d concurrent cold requests over %d reactors in %.2fs" % (
            key, CONNECTIONS, THREADS, elapsed))
    m = proxy.metrics()
    assert m["ringmaster_cache_stores_total"] == stores_before + 3, m
    assert m["ringmaster_cache_collapsed_waits_total"] >= 1, m

    # Hits from new connections (so from any reactor): the stored response, with an Age.
    for i in range(THREADS):
        r = fetch(proxy.port, "/cacheable/many-%d?max_age=600&delay_ms=1000&bytes=2000" % (i % 3))
        assert r.status == 200, r
        assert serial(r) == i % 3 + 1, r
        assert_age(r, at_most=60)
    assert len(origin_hits(backend, "/cacheable/")) == 3

    # A large response is stored too: 80 reactors must not split the cache into shards too
    # small to hold one (at 8 shards per reactor, 64 MiB would be 64 KiB a shard).
    big = "/cacheable/big?max_age=600&bytes=%d" % (2 << 20)
    first = fetch(proxy.port, big)
    again = fetch(proxy.port, big)
    assert first.status == again.status == 200 and len(again.body) == 2 << 20, again
    assert serial(again) == serial(first), "a 2 MiB response was not stored"
    assert_age(again, at_most=60)
    assert proxy.alive(), proxy.stderr()
