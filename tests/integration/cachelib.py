"""The cache in tests: the pieces test_cache.py and test_many_reactors.py share (test
modules import helpers from here, never from each other).

    CacheProxy, start_cache_proxy, cache_proxy   a proxy with the cache on and --admin
    fetch(), origin_hits(), serial(), assert_age(), header_multiset(), http_date()
    concurrent_gets(port, target, n)             n requests sent as close together as possible
"""

import email.utils
import re
import time

import pytest

from harness import (DEFAULT_HOST, LOOPBACK, HttpConnection, build_request, free_port,
                     parse_metrics, port_accepts, wait_until)

CACHE_BYTES = "64M"

# ---------------------------------------------------------------------------------------
# Proxies and requests



def admin_request(port, method, path):
    with HttpConnection(port, timeout=5.0) as c:
        return c.request(method, path, timeout=5.0)


class CacheProxy:
    """A harness.Proxy with the cache on and an admin listener."""

    def __init__(self, proxy, admin_port):
        self.proxy = proxy
        self.admin_port = admin_port

    def __getattr__(self, name):  # port, pid, rss_bytes(), stderr() ...
        return getattr(self.proxy, name)

    def metrics_text(self):
        r = admin_request(self.admin_port, "GET", "/metrics")
        assert r.status == 200, r
        return r.body.decode("utf-8", "replace")

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def metric(self, name):
        m = self.metrics()
        assert name in m, "%s missing from /metrics:\n%s" % (name, self.metrics_text())
        return m[name]

    def purge(self, path=None):
        return admin_request(self.admin_port, "POST",
                             "/cache/purge" + ("?path=%s" % path if path else ""))

    def wait_metrics(self, expected, timeout=5.0):
        """Polls until every metric in `expected` has that value; AssertionError naming the
        last values seen otherwise."""
        seen = {}

        def match():
            m = self.metrics()
            seen.clear()
            seen.update({k: m.get(k) for k in expected})
            return all(m.get(k) == v for k, v in expected.items())
        try:
            wait_until(match, timeout, "metrics %s" % expected)
        except AssertionError:
            raise AssertionError("expected metrics %s, /metrics shows %s" % (expected, seen)) \
                from None


@pytest.fixture
def start_cache_proxy(start_proxy):
    """factory: start_cache_proxy(backends, threads=None (the default), **flags) -> CacheProxy with
    --cache-bytes 64M (unless given) and --admin."""

    def start(backends, threads=None, **flags):
        admin_port = free_port()
        flags.setdefault("cache_bytes", CACHE_BYTES)
        p = start_proxy(backends, threads=threads, admin="%s:%d" % (LOOPBACK, admin_port),
                        **flags)
        wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10,
                   "the admin listener on %d" % admin_port)
        assert p.alive(), p.stderr()
        return CacheProxy(p, admin_port)

    return start


@pytest.fixture
def cache_proxy(start_cache_proxy, backend):
    return start_cache_proxy([backend])


def fetch(port, target, headers=None, method="GET", host=DEFAULT_HOST, timeout=10.0):
    """One request on a new connection; the response."""
    with HttpConnection(port, timeout=timeout) as c:
        return c.request(method, target, headers, host=host, timeout=timeout)


def origin_hits(backend, prefix="/cacheable"):
    """The requests the backend received whose target starts with `prefix`."""
    return [e for e in backend.requests() if (e["target"] or "").startswith(prefix)]


def serial(resp):
    """The backend's response number (X-Serial) of a /cacheable response."""
    value = resp.header("X-Serial")
    assert value is not None and value.isdigit(), "no X-Serial in %r" % resp
    return int(value)


def header_multiset(resp, *without):
    drop = {n.lower() for n in without}
    return sorted((k.lower(), v) for k, v in resp.headers if k.lower() not in drop)


def assert_age(resp, at_least=0, at_most=None):
    ages = resp.header_all("Age")
    assert len(ages) == 1 and re.fullmatch(r"\d+", ages[0]), \
        "expected one numeric Age header on a cache hit: %r" % resp
    age = int(ages[0])
    assert age >= at_least and (at_most is None or age <= at_most), \
        "Age %d outside [%s, %s]: %r" % (age, at_least, at_most, resp)
    return age


def http_date(unix_time):
    return email.utils.formatdate(unix_time, usegmt=True)


def concurrent_gets(port, target, n, timeout=20.0):
    """Opens n connections, then sends one request on each as close together as possible;
    returns the responses (or exceptions) in order and the seconds until the last."""
    conns = [HttpConnection(port, timeout=timeout) for _ in range(n)]
    try:
        data = build_request("GET", target)
        t0 = time.monotonic()
        for c in conns:
            c.send(data)
        results = []
        for c in conns:
            try:
                results.append(c.read_response(timeout=timeout))
            except Exception as e:  # noqa: BLE001  (reported with the others below)
                results.append(e)
        return results, time.monotonic() - t0
    finally:
        for c in conns:
            c.close()
