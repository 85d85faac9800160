"""`ringmaster proxy --zk` in tests: the pieces test_discovery.py, test_discovery_faults.py
and test_fleet_faults.py share (test modules import helpers from here, never from each other).

    ZkProxy, start_zk_proxy     a proxy with --zk and --admin, its admin views (fixture)
    zk_counts(), wait_counts_sum(), assert_counts_stay()   the counts in ZooKeeper
    Nginx, start_nginx          named nginx targets (X-Backend: NAME) from the test kit
    LoadClient, run_wrk         load (tests/kit/load.py)
    start_registered(), register_pair(), register_two()   backends announced by agents
    backend_requests(), share_report()
"""

import os
from pathlib import Path

import pytest

import harness
import kit.nginx
from harness import LOOPBACK, free_port, parse_metrics, port_accepts, wait_until
from kit.load import LoadClient, run_wrk, wrk_binary  # noqa: F401  (re-exported)
from zk import wait_for

# The coordinator's flush interval in these tests (the proxy's default).
FLUSH_INTERVAL_MS = 100
# How long counts may take to reach ZooKeeper once the load stopped: a few flush intervals,
# generously, since zkctl runs as a process per read and the machine may be busy.
COUNTS_SETTLE_S = 20.0
TARGETS = "/targets"


# ---------------------------------------------------------------------------------------
# ZooKeeper-mode proxies

class ZkProxy:
    """A harness.Proxy started with --zk and --admin, plus its admin views."""

    def __init__(self, proxy, admin_port, session_file=None):
        self.proxy = proxy
        self.admin_port = admin_port
        self.session_file = session_file

    def __getattr__(self, name):  # port, pid, alive(), process, stderr() ...
        return getattr(self.proxy, name)

    def admin_get(self, path):
        r = harness.get(self.admin_port, path, timeout=5.0)
        assert r.status == 200, "GET %s on the admin listener: %r %r" % (path, r, r.body[:300])
        return r

    def targets(self):
        """The parsed JSON of GET /targets."""
        return self.admin_get("/targets").json()

    def target_rows(self):
        return {t["name"]: t for t in self.targets()["targets"]}

    def metrics_text(self):
        return self.admin_get("/metrics").body.decode("utf-8", "replace")

    def metrics(self):
        """{'name{labels}': value} from GET /metrics."""
        return parse_metrics(self.metrics_text())

    def metric(self, name, default=None):
        return self.metrics().get(name, default)

    def routing(self):
        """Names of the targets in state "routing"."""
        return sorted(n for n, t in self.target_rows().items() if t["state"] == "routing")

    def wait_routing(self, names, timeout=10.0):
        names = sorted(names)
        try:
            wait_until(lambda: self.routing() == names, timeout,
                       "%s to route to exactly %s" % (self.name, names), interval_max=0.05)
        except AssertionError as e:
            raise AssertionError("%s; GET /targets shows %s" % (e, self.targets())) from None

    def unflushed(self):
        return sum(t["unflushed"] for t in self.targets()["targets"])

    def session(self):
        """(session id hex, password hex) of the proxy's latest ZooKeeper session."""
        try:
            parts = Path(self.session_file).read_text().split()
        except OSError:
            return None
        return (parts[0], parts[1]) if len(parts) == 2 else None




@pytest.fixture
def start_zk_proxy(start_proxy, tmp_path):
    """factory: start_zk_proxy(zk_connect, threads=None, session_file=False, routing=None,
    **flags) -> ZkProxy.

    Flushes every FLUSH_INTERVAL_MS with the response cache off (harness default), so every
    request reaches a backend and is counted. `routing`: backends (anything with .addr) the
    proxy must route to, exactly, before it is returned."""
    count = [0]

    def start(zk_connect, threads=None, session_file=False, routing=None, **flags):
        count[0] += 1
        admin_port = free_port()
        env = None
        path = None
        if session_file:
            d = tmp_path / ("zk-proxy-%d" % count[0])
            d.mkdir(parents=True, exist_ok=True)
            path = d / "session"
            env = dict(os.environ, RINGMASTER_ZK_SESSION_FILE=str(path))
        flags.setdefault("flush_interval_ms", FLUSH_INTERVAL_MS)
        flags.setdefault("session_timeout_ms", 10000)
        p = start_proxy([], threads=threads, zk=zk_connect,
                        admin="%s:%d" % (LOOPBACK, admin_port), env=env, **flags)
        wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10,
                   "the admin listener on %d" % admin_port)
        assert p.alive(), p.stderr()
        proxy = ZkProxy(p, admin_port, path)
        if routing is not None:
            proxy.wait_routing([b.addr for b in routing])
        return proxy

    return start


# ---------------------------------------------------------------------------------------
# Counts in ZooKeeper

def zk_counts(ctl, path=TARGETS):
    """{target name: count} for every child of `path` (a node gone meanwhile is left out)."""
    out = {}
    for name in ctl.ls(path) or []:
        data = ctl.get("%s/%s" % (path, name))
        if data is not None:
            out[name] = int(data)
    return out


def wait_counts_sum(ctl, expected, proxies=(), timeout=COUNTS_SETTLE_S, baseline=0,
                    path=TARGETS):
    """Polls until the counts in ZooKeeper sum to baseline + expected and every proxy shows
    nothing unflushed; returns the counts. On timeout, says what it last saw."""
    last = {}

    def done():
        counts = zk_counts(ctl, path)
        last["counts"] = counts
        last["unflushed"] = [p.unflushed() for p in proxies]
        return counts if (sum(counts.values()) == baseline + expected
                          and not any(last["unflushed"])) else None
    try:
        return wait_for(done, timeout, "counts to sum to %d" % (baseline + expected))
    except AssertionError:
        counts = last.get("counts", {})
        raise AssertionError(
            "counts in ZooKeeper sum to %d (%s), expected exactly %d (%d sent + baseline %d); "
            "unflushed per proxy: %s" % (sum(counts.values()), counts, baseline + expected,
                                         expected, baseline, last.get("unflushed"))) from None


def assert_counts_stay(ctl, counts, proxy, flushes=5, path=TARGETS):
    """Several flush intervals later the counts are unchanged (nothing written twice)."""
    name = "ringmaster_flush_intervals_total"
    v0 = proxy.metric(name)
    wait_until(lambda: proxy.metric(name) >= v0 + flushes, 10, "%d more flush intervals" % flushes)
    again = zk_counts(ctl, path)
    assert again == counts, "counts changed with no traffic: %s then %s" % (counts, again)


# ---------------------------------------------------------------------------------------
# Load: a bounded client that knows exactly what it sent and who answered


# ---------------------------------------------------------------------------------------
# nginx targets (the Python backend is too slow for the balance and load figures)

class Nginx:
    """nginx answering every request 200 with its name in the body and in X-Backend."""

    def __init__(self, tmp_dir, name):
        if kit.nginx.binary() is None:
            pytest.skip("nginx is not installed (scripts/setup installs it)")
        self.name = name
        self.port = free_port()
        self.addr = "%s:%d" % (LOOPBACK, self.port)
        self._nginx = kit.nginx.Nginx(Path(tmp_dir) / ("nginx-" + name),
                                      kit.nginx.NAMED_TEMPLATE,
                                      {"NAME": name, "PORT": self.port}, [self.port],
                                      name="nginx " + name)
        self.dir = self._nginx.dir
        self.process = self._nginx.process

    def stop(self):
        self._nginx.stop()


@pytest.fixture
def start_nginx(tmp_path, request):
    started = []

    def start(name):
        n = Nginx(tmp_path, name)
        started.append(n)
        harness.track(request, n.process)
        return n

    yield start
    for n in started:
        n.stop()

# ---------------------------------------------------------------------------------------
# Small helpers

def backend_requests(backend):
    return len(backend.requests())


def start_registered(start_backend, start_agent, zk_connect, name, ctl=None, **agent_flags):
    """A backend.py process plus its agent; waits for the node to exist."""
    b = start_backend(name)
    a = start_agent(zk_connect, b.addr, name="agent-" + name, **agent_flags)
    a.wait_session()
    if ctl is not None:
        wait_for(lambda: ctl.exists("%s/%s" % (TARGETS, b.addr)), 10, "node of %s" % name)
    return b, a


def register_pair(start_backend, start_agent, zk_connect, ctl, **agent_flags):
    """Backends "one" and "two", each announced by its agent (start_registered):
    ((b1, a1), (b2, a2))."""
    return tuple(start_registered(start_backend, start_agent, zk_connect, name, ctl=ctl, **agent_flags)
                 for name in ("one", "two"))


def register_two(start_backend, start_agent, zk_connect, ctl, **agent_flags):
    """register_pair's backends."""
    return [b for b, _ in register_pair(start_backend, start_agent, zk_connect, ctl, **agent_flags)]


def share_report(counts, total):
    return ", ".join("%s %d (%.2f%%)" % (k, v, 100.0 * v / total) for k, v in
                     sorted(counts.items()))
