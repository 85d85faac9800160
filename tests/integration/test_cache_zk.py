"""The response cache in ZooKeeper mode: /cacheAge invalidation (issue 4, ARCHITECTURE.md §1).

With a real ZooKeeper server (zk.py), real agents and backend.py behind `ringmaster proxy --zk`:
  * a change of /cacheAge's value, written with zkctl or by an agent started with
    --content-version, makes the next request a miss; writing the same value again (zkctl, or
    an agent with the version already there) leaves every entry a hit;
  * a response whose fetch began before the change is not served after it;
  * /cacheAge created where there was none is a change of value too;
  * the admin purge works in ZooKeeper mode as in static mode (test_cache.py);
  * /metrics shows each cache sample once.

"The coordinator has seen a write" is observed without sleeping: either the invalidation
counter moves, or (for writes that must change nothing) a later change to /targets is
visible in the proxy's routing. ZooKeeper delivers a session's watch events in zxid order
and the coordinator handles them in order, so once the later /targets change shows, the
earlier /cacheAge event has been handled.
"""

import threading
import time

import pytest

import harness
from harness import LOOPBACK, free_port, parse_metrics, port_accepts, wait_until
from zk import (  # noqa: F401  (fixtures are used by name)
    start_agent, start_zk_server, wait_for, zk, zk_server)

CACHE_AGE = "/cacheAge"
TARGETS = "/targets"
TARGET = "/cacheable/zk?max_age=600"




class CacheZkProxy:
    """`ringmaster proxy --zk` with the cache on and an admin listener."""

    def __init__(self, proxy, admin_port):
        self.proxy = proxy
        self.admin_port = admin_port

    def __getattr__(self, name):
        return getattr(self.proxy, name)

    def admin(self, method, path):
        with harness.HttpConnection(self.admin_port, timeout=5.0) as c:
            return c.request(method, path, timeout=5.0)

    def metrics_text(self):
        r = self.admin("GET", "/metrics")
        assert r.status == 200, r
        return r.body.decode("utf-8", "replace")

    def metric(self, name):
        m = parse_metrics(self.metrics_text())
        assert name in m, "%s missing from /metrics" % name
        return m[name]

    def routing(self):
        r = self.admin("GET", "/targets")
        assert r.status == 200, r
        return sorted(t["name"] for t in r.json()["targets"] if t["state"] == "routing")

    def wait_routing(self, names, timeout=15.0):
        names = sorted(names)
        wait_for(lambda: self.routing() == names, timeout, "routing to exactly %s" % names)

    def wait_invalidations(self, count, timeout=10.0):
        t0 = time.monotonic()
        wait_until(lambda: self.metric("ringmaster_cache_invalidations_total") >= count,
                   timeout, "ringmaster_cache_invalidations_total to reach %d" % count)
        return time.monotonic() - t0


@pytest.fixture
def start_cache_zk_proxy(start_proxy):
    def start(zk_connect, threads=None, **flags):
        admin_port = free_port()
        flags.setdefault("cache_bytes", "64M")
        flags.setdefault("flush_interval_ms", 100)
        flags.setdefault("session_timeout_ms", 10000)
        p = start_proxy([], threads=threads, zk=zk_connect,
                        admin="%s:%d" % (LOOPBACK, admin_port), **flags)
        wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10,
                   "the admin listener on %d" % admin_port)
        assert p.alive(), p.stderr()
        return CacheZkProxy(p, admin_port)

    return start


def fetch(port, target=TARGET):
    r = harness.get(port, target)
    assert r.status == 200, r
    return r


def origin_requests(*backends):
    return sum(1 for b in backends for e in b.requests()
               if (e["target"] or "").startswith("/cacheable"))


@pytest.mark.slow
def test_stale_entry_answers_with_zookeeper_and_every_backend_down(
        start_zk_server, start_backend, start_agent, start_cache_zk_proxy):
    """Static stability with the cache: ZooKeeper gone and the only backend gone too, what
    the cache holds still answers, stale, with its true Age, and is counted."""
    server = start_zk_server()
    b1, _ = registered(start_backend, start_agent, server.connect_string(), "backend-1")
    proxy = start_cache_zk_proxy(server.connect_string())
    proxy.wait_routing([b1.addr])
    target = "/cacheable/zk-stale?max_age=1"
    stored = fetch(proxy.port, target)
    server.kill()
    b1.stop()
    time.sleep(1.2)  # the passage of time is the subject: past the 1 s lifetime
    r = fetch(proxy.port, target)
    assert r.body == stored.body, r
    assert int(r.header("Age")) >= 1, r
    assert proxy.metric("ringmaster_cache_stale_served_total") == 1


def registered(start_backend, start_agent, zk_connect, name, **agent_flags):
    b = start_backend(name)
    a = start_agent(zk_connect, b.addr, name="agent-" + name, **agent_flags)
    a.wait_session()
    return b, a


# ---------------------------------------------------------------------------------------

def test_cache_age_change_by_zkctl_invalidates_and_same_value_does_not(
        zk, start_backend, start_agent, start_cache_zk_proxy):
    zk.ctl.create(CACHE_AGE, "v1")
    b1, _ = registered(start_backend, start_agent, zk.connect, "backend-1")
    proxy = start_cache_zk_proxy(zk.connect)
    proxy.wait_routing([b1.addr])

    stored = fetch(proxy.port)
    assert fetch(proxy.port).body == stored.body
    assert origin_requests(b1) == 1

    # A new value: the next request is a miss.
    zk.ctl.set(CACHE_AGE, "v2")
    latency = proxy.wait_invalidations(1)
    after_change = fetch(proxy.port)
    assert after_change.body != stored.body and after_change.header("Age") is None, \
        "served from the cache after /cacheAge changed: %r" % after_change
    assert origin_requests(b1) == 2
    assert fetch(proxy.port).body == after_change.body      # stored again
    assert origin_requests(b1) == 2

    # The same value again: a real write (the znode's version moves), no invalidation.
    version = zk.ctl.stat(CACHE_AGE)["version"]
    zk.ctl.set(CACHE_AGE, "v2")
    assert zk.ctl.stat(CACHE_AGE)["version"] == version + 1
    # Barrier: a target added after the write is routed to only once the coordinator has
    # handled every event before it, the /cacheAge one included.
    b2 = start_backend("backend-2")
    zk.ctl.create("%s/%s" % (TARGETS, b2.addr), "0")
    proxy.wait_routing([b1.addr, b2.addr])
    same = fetch(proxy.port)
    assert same.body == after_change.body, \
        "rewriting /cacheAge with the same value invalidated the cache: %r" % same
    assert origin_requests(b1, b2) == 2
    assert proxy.metric("ringmaster_cache_invalidations_total") == 1

    # The watch is armed again: a second change invalidates too.
    zk.ctl.set(CACHE_AGE, "v3")
    proxy.wait_invalidations(2)
    assert fetch(proxy.port).body != after_change.body
    assert origin_requests(b1, b2) == 3
    print("/cacheAge change to invalidation seen on /metrics: %.3fs" % latency)

    # The admin purge in ZooKeeper mode.
    kept = fetch(proxy.port)
    assert origin_requests(b1, b2) == 3
    r = proxy.admin("POST", "/cache/purge")
    assert r.status == 200 and r.json() == {"purged": "all"}, r
    assert fetch(proxy.port).body != kept.body
    assert origin_requests(b1, b2) == 4


def test_agent_content_version_invalidates_only_when_it_changes(
        zk, start_backend, start_agent, start_cache_zk_proxy):
    b1, _ = registered(start_backend, start_agent, zk.connect, "backend-1",
                       content_version="v1")
    wait_for(lambda: zk.ctl.get(CACHE_AGE) == "v1", 10, "/cacheAge = v1")
    proxy = start_cache_zk_proxy(zk.connect)
    proxy.wait_routing([b1.addr])
    stored = fetch(proxy.port)
    assert fetch(proxy.port).body == stored.body
    assert origin_requests(b1) == 1

    # An agent deploying the version already there writes nothing; everything stays a hit.
    # It writes the version (if at all) before registering its target, so once the proxy
    # routes to the new target it has seen whatever happened to /cacheAge.
    version = zk.ctl.stat(CACHE_AGE)["version"]
    b2, a2 = registered(start_backend, start_agent, zk.connect, "backend-2",
                        content_version="v1")
    proxy.wait_routing([b1.addr, b2.addr])
    a2.wait_log('is already "v1"')
    assert zk.ctl.stat(CACHE_AGE)["version"] == version
    assert fetch(proxy.port).body == stored.body, "a same-version deploy cleared the cache"
    assert origin_requests(b1, b2) == 1

    # The same backend redeployed with a new content version: the next request is a miss.
    assert a2.terminate() == 0
    proxy.wait_routing([b1.addr])
    start_agent(zk.connect, b2.addr, name="agent-backend-2-v2", content_version="v2")
    wait_for(lambda: zk.ctl.get(CACHE_AGE) == "v2", 10, "/cacheAge = v2")
    proxy.wait_routing([b1.addr, b2.addr])
    fresh = fetch(proxy.port)
    assert fresh.body != stored.body and fresh.header("Age") is None, \
        "served from the cache after the agent changed /cacheAge: %r" % fresh
    assert origin_requests(b1, b2) == 2
    assert proxy.metric("ringmaster_cache_invalidations_total") == 1


def test_response_fetched_before_a_version_change_is_not_served_after_it(
        zk, start_backend, start_agent, start_cache_zk_proxy):
    zk.ctl.create(CACHE_AGE, "v1")
    b1, _ = registered(start_backend, start_agent, zk.connect, "backend-1")
    proxy = start_cache_zk_proxy(zk.connect)
    proxy.wait_routing([b1.addr])
    target = "/cacheable/inflight?max_age=600&delay_ms=1000"
    box = {}
    t = threading.Thread(target=lambda: box.update(r=harness.get(proxy.port, target)))
    t.start()
    wait_until(lambda: origin_requests(b1) == 1, 5, "the slow request at the backend")
    zk.ctl.set(CACHE_AGE, "v2")
    proxy.wait_invalidations(1)
    t.join(10)
    old = box["r"]
    assert old.status == 200 and old.header("X-Serial") == "1", old
    new = fetch(proxy.port, target)
    assert new.header("X-Serial") == "2", \
        "the response fetched under the old content version was served after the " \
        "change: %r" % new


def test_cache_age_created_where_there_was_none_invalidates(
        zk, start_backend, start_agent, start_cache_zk_proxy):
    b1, _ = registered(start_backend, start_agent, zk.connect, "backend-1")
    proxy = start_cache_zk_proxy(zk.connect)
    proxy.wait_routing([b1.addr])
    assert zk.ctl.get(CACHE_AGE) is None
    stored = fetch(proxy.port)
    assert fetch(proxy.port).body == stored.body
    # The first deploy that sets a content version.
    zk.ctl.create(CACHE_AGE, "v1")
    b2 = start_backend("backend-2")
    zk.ctl.create("%s/%s" % (TARGETS, b2.addr), "0")
    proxy.wait_routing([b1.addr, b2.addr])       # the creation event has been handled
    r = fetch(proxy.port)
    assert r.body != stored.body and r.header("Age") is None, \
        "entries stored while /cacheAge did not exist survived its creation with \"v1\": %r" % r


def test_metrics_show_each_cache_sample_once(zk, start_backend, start_agent,
                                              start_cache_zk_proxy):
    b1, _ = registered(start_backend, start_agent, zk.connect, "backend-1")
    proxy = start_cache_zk_proxy(zk.connect)
    proxy.wait_routing([b1.addr])
    fetch(proxy.port)
    text = proxy.metrics_text()
    samples = [line.rpartition(" ")[0] for line in text.splitlines()
               if line.startswith("ringmaster_cache")]
    families = [line.split()[2] for line in text.splitlines()
                if line.startswith("# TYPE ringmaster_cache")]
    dup_samples = sorted({s for s in samples if samples.count(s) > 1})
    dup_families = sorted({f for f in families if families.count(f) > 1})
    assert not dup_samples and not dup_families, \
        "/metrics repeats %s (a Prometheus scrape rejects repeated families):\n%s" % (
            dup_samples or dup_families,
            "\n".join(line for line in text.splitlines() if "cache_invalidations" in line))
