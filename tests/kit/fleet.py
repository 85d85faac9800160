"""Fleets of `ringmaster proxy --zk` processes on one ZooKeeper (issue 10): the pieces that
tests/integration/test_fleet.py and perf/fleet share, so neither copies the other.

    fleet_support(binary)      does this binary know --fleet? (the flag lands with fleet
                               coordination; older binaries exit 2 "unknown flag --fleet")
    fleet_args(...)            the flags of one fleet member (mode off/on/None)
    proxy_argv(...)            its whole command line
    Admin(port)                one proxy's admin listener: metrics(), targets(), unflushed()
    FleetSample.take(admins)   the fleet's counters summed over its proxies (ZooKeeper
                               operations by kind, BADVERSION retries, fleet metrics when the
                               binary has them), subtractable: after - before
    wait_routing / wait_flushed / wait_fleet_size   bounded polls over every admin
    TargetRegistry             one kazoo session that registers target nodes
                               (/targets/<host>:<port>, ephemeral, data "0") and reads the
                               counts back
    share_deviation(deltas)    each target's share of the requests as % off even (min, max)

Standard library + the kit; kazoo (Debian python3-kazoo) only for TargetRegistry, imported
when one is made. No pytest here: perf/fleet imports this module too.
"""

import re
import subprocess
import time
from pathlib import Path

import kit.http
from kit.metrics import parse_metrics
from kit.procs import LOOPBACK

MODES = ("off", "on")


# ---------------------------------------------------------------------------------------
# The binary and its command line

def fleet_support(binary, timeout=10.0):
    """(True, "") when `binary proxy --fleet on` is understood, else (False, why). Only the
    flag is checked: the run stops at the missing --listen, well before anything starts."""
    try:
        r = subprocess.run([str(binary), "proxy", "--fleet", "on"], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "could not run %s: %s" % (binary, e)
    text = (r.stdout + r.stderr).strip()
    if "unknown flag" in text and "--fleet" in text:
        return False, "%s has no --fleet flag (%s)" % (binary, text.splitlines()[0])
    return True, ""


def wait_for_binary(path, timeout=180.0, interval=2.0, say=None):
    """The binary is rebuilt from time to time by someone else: wait until it is there."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        if say:
            say("waiting for %s to appear (being rebuilt?)" % path)
        time.sleep(interval)
    return True


class UnsupportedMode(Exception):
    pass


def fleet_args(zk_connect, admin_port, mode=None, fleet_flags=True, flush_interval_ms=100):
    """The flags that make a proxy a fleet member: --zk, --admin, --flush-interval-ms and
    --fleet MODE. mode "on"/"off" passes --fleet; on a binary without the flag
    (fleet_flags=False) "off" is the only behaviour there is, so it passes nothing, and "on"
    raises UnsupportedMode. mode None passes nothing (the binary's default)."""
    args = ["--zk", zk_connect, "--admin", "%s:%d" % (LOOPBACK, admin_port),
            "--flush-interval-ms", str(flush_interval_ms)]
    if mode is not None:
        if mode not in MODES:
            raise ValueError("mode %r: want one of %s" % (mode, ", ".join(MODES)))
        if fleet_flags:
            args += ["--fleet", mode]
        elif mode == "on":
            raise UnsupportedMode("--fleet on needs a binary with fleet coordination")
    return args


def proxy_argv(binary, port, admin_port, zk_connect, mode=None, fleet_flags=True, threads=1,
               flush_interval_ms=100, cache_bytes=0, extra=()):
    """A whole fleet member's command line (perf/fleet; the tests go through harness.Proxy
    with fleet_args())."""
    return ([str(binary), "proxy", "--threads", str(threads),
             "--listen", "%s:%d" % (LOOPBACK, port), "--cache-bytes", str(cache_bytes)] +
            fleet_args(zk_connect, admin_port, mode, fleet_flags, flush_interval_ms) +
            [str(a) for a in extra])


# ---------------------------------------------------------------------------------------
# Admin listeners and metrics

def metric_total(metrics, name, default=0.0):
    """Sum of every sample of `name` (all label sets) in a parse_metrics() dict, or default
    when the binary exports no such metric."""
    found = False
    total = 0.0
    for key, value in metrics.items():
        if key == name or key.startswith(name + "{"):
            found = True
            total += value
    return total if found else default


def metric_by_label(metrics, name, label):
    """{label value: sample} for `name{label="..."}`."""
    out = {}
    pattern = re.compile(r'^%s\{.*\b%s="([^"]*)"' % (re.escape(name), re.escape(label)))
    for key, value in metrics.items():
        m = pattern.match(key)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


class Admin:
    """One proxy's admin listener (GET /metrics, GET /targets)."""

    def __init__(self, port, name=None):
        self.port = port
        self.name = name or "admin:%d" % port

    def get(self, path, timeout=5.0):
        r = kit.http.get(self.port, path, timeout=timeout)
        if r.status != 200:
            raise AssertionError("%s: GET %s gave %r %r" % (self.name, path, r, r.body[:300]))
        return r

    def metrics(self):
        return parse_metrics(self.get("/metrics").body.decode("utf-8", "replace"))

    def targets(self):
        """Rows of GET /targets: [{"name", "count", "unflushed", "state", ...}]."""
        return self.get("/targets").json()["targets"]

    def routing(self):
        return sorted(t["name"] for t in self.targets() if t["state"] == "routing")

    def unflushed(self, metrics=None):
        """ringmaster_unflushed_requests (requests counted, not yet in ZooKeeper); the sum of
        /targets' unflushed column when the metric is absent. Both are updated at flush ticks
        only: see wait_flushed()."""
        v = metric_total(self.metrics() if metrics is None else metrics,
                         "ringmaster_unflushed_requests", None)
        if v is None:
            return sum(t.get("unflushed", 0) for t in self.targets())
        return int(v)

    def flush_ticks(self, metrics=None):
        """ringmaster_flush_intervals_total, or None when the binary has no such metric."""
        return metric_total(self.metrics() if metrics is None else metrics,
                            "ringmaster_flush_intervals_total", None)


def _try(fn, default=None):
    try:
        return fn()
    except (OSError, AssertionError, ValueError, KeyError):
        return default


class FleetSample:
    """The fleet's counters at one moment, summed over its proxies. Fleet metrics are None
    when the binary does not export them (before fleet coordination)."""

    SUMS = {
        "bad_version": "ringmaster_zk_bad_version_total",
        "flushed": "ringmaster_flushed_requests_total",
        "unflushed": "ringmaster_unflushed_requests",
        "leaders": "ringmaster_fleet_leader",
        "direct_flushes": "ringmaster_fleet_direct_flushes_total",
    }

    def __init__(self, values, ops, reports, proxies_seen):
        self.values = values        # field -> float or None
        self.ops = ops              # kind -> operations
        self.reports = reports      # result -> reports, {} without fleet metrics
        self.proxies_seen = proxies_seen  # ringmaster_fleet_proxies per proxy (None: absent)

    @classmethod
    def take(cls, admins):
        values = {k: None for k in cls.SUMS}
        ops, reports, seen = {}, {}, []
        for a in admins:
            m = a.metrics()
            for field, name in cls.SUMS.items():
                v = metric_total(m, name, None)
                if v is not None:
                    values[field] = (values[field] or 0.0) + v
            for kind, v in metric_by_label(m, "ringmaster_zk_operations_total", "kind").items():
                ops[kind] = ops.get(kind, 0.0) + v
            for result, v in metric_by_label(m, "ringmaster_fleet_reports_total", "result").items():
                reports[result] = reports.get(result, 0.0) + v
            seen.append(metric_total(m, "ringmaster_fleet_proxies", None))
        return cls(values, ops, reports, seen)

    def __getattr__(self, name):
        if name in FleetSample.SUMS:
            return self.values[name]
        raise AttributeError(name)

    def __sub__(self, before):
        """Counter deltas (gauges keep the later value)."""
        def d(a, b):
            return None if a is None else a - (b or 0.0)
        values = dict(self.values)
        for field in ("bad_version", "flushed", "direct_flushes"):
            values[field] = d(self.values[field], before.values[field])
        ops = {k: v - before.ops.get(k, 0.0) for k, v in self.ops.items()}
        reports = {k: v - before.reports.get(k, 0.0) for k, v in self.reports.items()}
        return FleetSample(values, ops, reports, self.proxies_seen)

    def has_fleet_metrics(self):
        return self.values["leaders"] is not None


def wait_all(admins, predicate, timeout, interval=0.2):
    """Polls until predicate(admin) holds for every admin; returns (ok, last values)."""
    deadline = time.monotonic() + timeout
    last = {}
    while True:
        ok = True
        for a in admins:
            last[a.name] = _try(lambda: predicate(a), default=False)
            ok = ok and bool(last[a.name])
        if ok:
            return True, last
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(interval)


def wait_routing(admins, names, timeout=60.0):
    names = sorted(names)
    return wait_all(admins, lambda a: a.routing() == names, timeout)[0]


def wait_flushed(admins, timeout=60.0, interval_ms=100, ticks=2):
    """Every proxy's unflushed requests at 0 after at least `ticks` more flush ticks (bounded).
    A proxy moves its reactors' counts into its books, and its unflushed figure, only at a
    flush tick: right after a load a 0 can be stale by one interval. Two ticks later every
    request made before the call is in the books. Ticks come from
    ringmaster_flush_intervals_total, or from the clock when a binary lacks it."""
    t0 = time.monotonic()
    start = {a.name: _try(a.flush_ticks) for a in admins}

    def done(a):
        m = a.metrics()
        now = a.flush_ticks(m)
        if now is None or start[a.name] is None:
            if time.monotonic() - t0 < ticks * interval_ms / 1000.0:
                return False
        elif now - start[a.name] < ticks:
            return False
        return a.unflushed(m) == 0
    return wait_all(admins, done, timeout)[0]


def wait_fleet_size(admins, n, timeout=30.0):
    """Every proxy sees a fleet of n and exactly one leads — when the binary exports fleet
    metrics; without them there is nothing to wait for (True)."""
    if not FleetSample.take(admins).has_fleet_metrics():
        return True
    deadline = time.monotonic() + timeout
    while True:
        s = _try(lambda: FleetSample.take(admins))
        if s is not None and all(p == n for p in s.proxies_seen) and s.leaders == 1:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------
# Targets in ZooKeeper

class TargetRegistry:
    """One kazoo session that registers targets as the agents would (ephemeral
    <targets_path>/<host>:<port> with data "0") and reads the counts back. It sets no watch.
    `connect` may carry a chroot (created when missing)."""

    def __init__(self, connect, targets_path="/targets", timeout=15.0):
        import logging
        from kazoo.client import KazooClient
        logging.getLogger("kazoo").setLevel(logging.ERROR)  # "Connection dropped" on close
        hosts, _, chroot = connect.partition("/")
        if chroot:
            root = KazooClient(hosts=hosts, timeout=10.0)
            root.start(timeout=timeout)
            try:
                root.ensure_path("/" + chroot)
            finally:
                root.stop()
                root.close()
        self.path = targets_path.rstrip("/")
        self.client = KazooClient(hosts=connect, timeout=10.0)
        self.client.start(timeout=timeout)
        self.client.ensure_path(self.path)
        self.names = []

    def register(self, addrs, data="0"):
        for addr in addrs:
            self.client.create("%s/%s" % (self.path, addr), data.encode(), ephemeral=True)
            self.names.append(addr)

    def unregister(self, addr):
        self.client.delete("%s/%s" % (self.path, addr))
        self.names.remove(addr)

    def counts(self, names=None):
        """{name: count} of the given (default: registered) targets."""
        out = {}
        for name in (self.names if names is None else names):
            data, _ = self.client.get("%s/%s" % (self.path, name))
            out[name] = int(data.decode() or "0")
        return out

    def total(self):
        return sum(self.counts().values())

    def close(self):
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # noqa: BLE001  (closing a broken session is no error of ours)
            pass


def count_deltas(before, after):
    return {name: after[name] - before.get(name, 0) for name in after}


def share_deviation(deltas):
    """(min, max) of each target's share of the requests as % deviation from an even share."""
    total = sum(deltas.values())
    if not deltas or total <= 0:
        return None, None
    even = total / len(deltas)
    devs = [100.0 * (v - even) / even for v in deltas.values()]
    return min(devs), max(devs)
