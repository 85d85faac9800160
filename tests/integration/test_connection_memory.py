"""Memory per connection, as RSS shows it (VmRSS of the proxy from /proc/<pid>/status):
idle keep-alive clients, a burst of clients answered and left idle, and the return to the
baseline once they go."""

import time

import pytest

from burst import Burst, CountingBackend, raise_nofile
from harness import get, wait_steady, wait_until

# RSS figures: the machine to itself (no other worker's load in the proxy's allocator timing).
pytestmark = [pytest.mark.serial, pytest.mark.slow]

MIB = 1 << 20
# An idle keep-alive client: at most 1 KiB (issue 13's bound; nginx: 0.94 KB). A burst,
# answered and idle: at most 2 KiB per client over the RSS before it (issue 13's bound;
# measured 0.75-0.8 KiB: connections in slabs of their own, no send message kept by an idle
# client, the heap's freed pages decommitted at the reactor's trims, small requests packed
# into shared receive buffers; 85 KB at first).
IDLE_CLIENT_BYTES_MAX = 1024
BURST_CLIENT_BYTES_MAX = 2048
# A minute after the clients go, RSS is back within 10% of the baseline (issue 13), with the
# default flags: the burst's pooled upstream connections close after --upstream-idle-timeout-ms
# (10 s), a reactor without clients gives its receive buffers' pages back after 1 s, and one
# without any connection left frees what its lists grew to, so that the heap it serves
# requests from empties and its pages are decommitted (worker.cc use_request_heap). Measured:
# back to the 6.9 MiB baseline 3 s after the clients went, and 0.3-0.4 MiB above it once the
# pooled connections closed while /metrics was polled (1.6-2.2 MiB above it before).
# The baseline is RSS once settled after start-up and one warm-up request: what the first
# request makes for good (the reactors' first pages of each kind) is not the burst's.
RETURN_WAIT_S = 60
RETURN_FRACTION_MAX = 0.10


@pytest.fixture(autouse=True)
def _release_build_only(sanitized):
    # ASan's quarantine and shadow memory make RSS per connection meaningless (a freed
    # buffer stays resident for a while by design): these figures are a release build's.
    if sanitized:
        pytest.skip("RSS per connection is measured in a release build, not under a sanitizer")


@pytest.fixture
def counting_backend(tmp_path):
    b = CountingBackend(tmp_path, delay_ms=1)
    yield b
    b.stop()


def settled_rss(proxy, timeout=30.0):
    """RSS once it stops moving (kit.procs.wait_steady)."""
    return wait_steady(proxy.rss_bytes, timeout)[0]


def answered_and_held(port, clients, procs):
    burst = Burst(port, clients, procs=procs, deadline_s=120, hold=True)
    statuses = burst.results()
    assert statuses.get(200) == clients, statuses
    return burst


def test_idle_keepalive_clients_cost_under_1kib_each(start_proxy, counting_backend):
    """The marginal cost of an idle client: RSS with 10,000 idle clients minus RSS with 2,000,
    over the 8,000 in between, which arrive 1,000 at a time (fixed per-reactor memory, such
    as the receive buffers' pages that the first requests touch, and what one wave's
    requests use meanwhile, is not per idle connection and is left out this way)."""
    assert raise_nofile() >= 11000
    proxy = start_proxy([counting_backend], threads=2, max_connections=20000)
    waves = [answered_and_held(proxy.port, 2000, 2)]
    try:
        rss_2k = settled_rss(proxy)
        for _ in range(8):
            waves.append(answered_and_held(proxy.port, 1000, 1))
        rss_10k = settled_rss(proxy)
    finally:
        for w in waves:
            w.release()
    per_client = (rss_10k - rss_2k) / 8000
    print("idle keep-alive clients: %.1f MiB with 2,000, %.1f MiB with 10,000: %.0f B each"
          % (rss_2k / MIB, rss_10k / MIB, per_client))
    assert per_client <= IDLE_CLIENT_BYTES_MAX, per_client


def test_a_burst_answered_and_idle_then_gone(start_proxy, counting_backend):
    assert raise_nofile() >= 11000
    proxy = start_proxy([counting_backend], threads=2, max_connections=20000)
    assert get(proxy.port, "/warm-up").status == 200
    baseline = settled_rss(proxy)
    with answered_and_held(proxy.port, 10000, 4):
        idle = settled_rss(proxy)
        per_client = (idle - baseline) / 10000
    print("burst of 10,000: baseline %.1f MiB, answered and idle %.1f MiB (%.0f B per client)"
          % (baseline / MIB, idle / MIB, per_client))
    assert per_client <= BURST_CLIENT_BYTES_MAX, per_client
    started = time.monotonic()
    deadline = started + RETURN_WAIT_S
    bound = baseline * (1 + RETURN_FRACTION_MAX)
    last = [proxy.rss_bytes()]

    def returned():
        last[0] = proxy.rss_bytes()
        return last[0] <= bound
    try:
        wait_until(returned, max(0.0, deadline - time.monotonic()), interval_max=0.5)
    finally:
        print("RSS %.1f MiB %.1fs after the clients went (baseline %.1f MiB)"
              % (last[0] / MIB, time.monotonic() - started, baseline / MIB))
    assert last[0] <= bound, (last[0] / MIB, baseline / MIB)
    # ... and stays there once the backend saw the pooled connections go (closed at their
    # idle timeout) and the proxy let go of what they held.
    wait_until(lambda: counting_backend.stats()["open"] == 0, max(10.0, deadline - time.monotonic()),
               "the backend's connections to close")
    settled = settled_rss(proxy)
    print("RSS %.1f MiB once settled with no connection left" % (settled / MIB))
    assert settled <= bound, (settled / MIB, baseline / MIB)
