"""Latency histograms and build info on GET /metrics, as Prometheus scrapes them."""

import subprocess

import pytest

from harness import LOOPBACK, free_port, get, parse_metrics, port_accepts, send_raw, wait_until
from zk import zk, zk_server  # noqa: F401  (fixtures used by name)

REQUEST = "ringmaster_request_duration_seconds"
UPSTREAM = "ringmaster_upstream_duration_seconds"


@pytest.fixture
def admin_proxy(start_proxy, backend):
    admin_port = free_port()
    p = start_proxy([backend], admin="%s:%d" % (LOOPBACK, admin_port))
    wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10, "the admin listener")
    p.admin_port = admin_port
    return p


def scrape(proxy):
    r = get(proxy.admin_port, "/metrics")
    assert r.status == 200
    return r.body.decode(), parse_metrics(r.body.decode())


def buckets(metrics, name):
    """[(le, cumulative count)] in the order of the bounds, +Inf last."""
    out = [(float(k.split('le="')[1].rstrip('"}')), v) for k, v in metrics.items()
           if k.startswith(name + "_bucket{")]
    return sorted(out)


def test_request_and_upstream_histograms_count_every_request(admin_proxy):
    for _ in range(5):
        assert get(admin_proxy.port, "/slow?ms=30").status == 200
    for _ in range(3):  # answered by the proxy itself: no upstream time
        assert send_raw(admin_proxy.port, b"GET / HTTP/1.1\r\n\r\n").status == 400
    text, m = scrape(admin_proxy)
    assert "# TYPE %s histogram" % REQUEST in text
    assert "# TYPE %s histogram" % UPSTREAM in text

    assert m[REQUEST + "_count"] == 8
    assert m[UPSTREAM + "_count"] == 5
    for name, count in [(REQUEST, 8), (UPSTREAM, 5)]:
        b = buckets(m, name)
        assert b[-1] == (float("inf"), count)
        assert [v for _, v in b] == sorted(v for _, v in b), "not cumulative: %s" % b
    # The backend took >= 30 ms for each of the 5: none is in a bucket below that.
    up = dict(buckets(m, UPSTREAM))
    assert up[0.025] == 0 and up[10.0] == 5
    assert m[UPSTREAM + "_sum"] >= 5 * 0.030
    assert m[REQUEST + "_sum"] >= m[UPSTREAM + "_sum"]
    # The three local 400s were quick.
    assert dict(buckets(m, REQUEST))[0.025] == 3


def test_build_info_names_the_version(admin_proxy, ringmaster_bin):
    version = subprocess.run([str(ringmaster_bin), "--version"], capture_output=True,
                             text=True, check=True).stdout.split()[1]
    _, m = scrape(admin_proxy)
    assert m['ringmaster_build_info{version="%s"}' % version] == 1


TARGET = "ringmaster_target_upstream_duration_seconds"


def target_counts(m):
    return {k.split('target="')[1].split('"')[0]: v for k, v in m.items()
            if k.startswith(TARGET + "_count{")}


def test_upstream_histogram_per_target_static(start_proxy, start_backend):
    b1, b2 = start_backend("backend-1"), start_backend("backend-2")
    admin_port = free_port()
    proxy = start_proxy([b1, b2], admin="%s:%d" % (LOOPBACK, admin_port))
    wait_until(lambda: port_accepts(admin_port), 10, "the admin listener")
    proxy.admin_port = admin_port
    for _ in range(10):
        assert get(proxy.port, "/").status == 200
    text, m = scrape(proxy)
    assert "# TYPE %s histogram" % TARGET in text
    counts = target_counts(m)
    assert set(counts) == {b1.addr, b2.addr}
    assert counts[b1.addr] == len(b1.requests()) and counts[b2.addr] == len(b2.requests())
    assert sum(counts.values()) == m[UPSTREAM + "_count"] == 10
    assert m['%s_bucket{target="%s",le="+Inf"}' % (TARGET, b1.addr)] == counts[b1.addr]


def test_upstream_histogram_per_target_zookeeper(start_proxy, backend, zk):
    zk.ctl.create("/targets", "")
    zk.ctl.create("/targets/%s" % backend.addr, "0")
    admin_port = free_port()
    proxy = start_proxy([], zk=zk.connect, admin="%s:%d" % (LOOPBACK, admin_port))
    wait_until(lambda: port_accepts(admin_port), 10, "the admin listener")
    proxy.admin_port = admin_port
    wait_until(lambda: get(proxy.port, "/").status == 200, 10, "routing to the backend")
    served = len(backend.requests())
    for _ in range(3):
        assert get(proxy.port, "/").status == 200
    _, m = scrape(proxy)
    assert target_counts(m) == {backend.addr: served + 3}
