"""Soak under chaos (issue 6, item 7): load through a `--zk` proxy while backends, agents
and ZooKeeper are killed and restarted, then the books are checked.

Set-up, loopback only: one ZooKeeper server (private: it is restarted), three backends
(backend.py) each announced by its own agent (`--session-timeout-ms 2000`), one proxy
(`--zk`, `--cache-bytes 0`, `--admin`, two reactors, 100 ms flushes).

Load: CONNECTIONS keep-alive connections in threads, paced to RATE requests/s together,
for SOAK_SECONDS. Every request asks for a path with a unique id, /soak/<conn>-<seq>; the
backend answers "<name> /soak/<conn>-<seq>\\n" with X-Backend: <name>, so each 200 body is
checked byte for byte against the request that asked for it.

Chaos, concurrently, from a seeded RNG (same seed, same sequence of faults): one fault at
a time, each fully recovered before the next, so at least two backends can always serve:
  * kill9-backend           SIGKILL a backend, restart it on the same port 0.5-2 s later
                            (its agent keeps the node: the proxy must fail over);
  * sigterm-agent           SIGTERM an agent (it deletes its node, with its count), restart
                            it 0.5-2 s later (a new process: the node comes back at 0);
  * kill9-agent-takeover    SIGKILL an agent, restart it within its session timeout: the
                            new agent removes the lingering node and carries its count;
  * kill9-agent-expire      SIGKILL an agent and let the node linger until the session
                            times out (ZooKeeper deletes it, with its count), then restart;
  * restart-zookeeper       stop the server, 1-3 s, start it on the same data dir.

At the end (load finished, chaos stopped):
  * zero wrong bodies; every request answered (a client-side timeout or reset counts as a
    failure); no answer other than 200 (no fault leaves every backend down);
  * the proxy parsed exactly the requests the clients sent (ringmaster_requests_total);
  * counts in ZooKeeper: the proxy counts a request for a target when it goes out to it on
    an established connection (Balancer::on_request_sent in src/proxy/upstream_conn.cc: a
    pooled connection at once, a fresh one once connected), so a failover after a refused
    connect counts once, on the target that took the request, and a request resent after
    a connection broke under it counts once more. With every request answered 200:
        sends = Δ ringmaster_requests_total + Δ ringmaster_upstream_retries_total
    Once every row of GET /targets shows unflushed == 0:
        Σ counts now − Σ counts before == sends
    A node deleted with its agent (SIGTERM: the agent's log says "removed node ... (count
    N)"; expiry: the proxy's /targets row, frozen at the deletion) is re-created by the
    agent from the count it last read, and the proxy writes it back up to the highest count
    it saw (README "ZooKeeper layout"), so its total carries on: those deletions are listed
    in the report, and they are not subtracted. Nothing lost,
    nothing counted twice; the one allowance is the documented one: when the proxy had to
    count a write of unknown outcome as applied (ringmaster_zk_ambiguous_writes_total > 0)
    those requests may be lost, but never counted twice. The proxy has no metric of its sends itself (per target they
    are count + unflushed in GET /targets, but only until the target's row is pruned);
    ringmaster_flushed_requests_total is printed alongside, not asserted: it leaves out
    writes whose CONNECTIONLOSS was settled by reading the node back (see the report);
  * no file-descriptor growth (/proc/<pid>/fd) beyond FD_GROWTH_MAX and no VmRSS growth
    beyond RSS_GROWTH_MAX_BYTES (a sanitizer build gets SANITIZED_RSS_GROWTH_MAX_BYTES:
    ASan's quarantine alone holds up to 256 MiB of freed memory).
All figures are printed (run pytest with -s to see them).

Select it alone with `pytest tests/integration/test_soak.py` or `-m soak`; it runs with
the rest of the integration suite, bounded by SOAK_SECONDS (RINGMASTER_SOAK_SECONDS).
"""

import faulthandler
import json
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest

import harness
from harness import (LOOPBACK, ManagedProcess, free_port, parse_metrics, port_accepts,
                     wait_until)
from kit.load import LoadClient
from zk import ZkCtl, start_agent, start_zk_server  # noqa: F401  (fixtures, used by name)
from zkproxy import zk_counts

# `-m soak` selects it; serial: its fd/RSS bounds and exact counts want the machine alone.
pytestmark = [pytest.mark.soak, pytest.mark.serial]

SOAK_SECONDS = float(os.environ.get("RINGMASTER_SOAK_SECONDS", "90"))
SEED = int(os.environ.get("RINGMASTER_SOAK_SEED", "20240606"))
RATE = float(os.environ.get("RINGMASTER_SOAK_RATE", "500"))  # requests/s, all connections
CONNECTIONS = 6
REQUEST_TIMEOUT_S = 10.0        # a request unanswered this long is a failure (a hang)
WARMUP_S = 3.0
CHAOS_START_S = 3.0             # load runs alone this long first
CHAOS_TAIL_S = 10.0             # and this long after the last fault was repaired
AGENT_SESSION_MS = 2000
PROXY_SESSION_MS = 10000
FLUSH_INTERVAL_MS = 100
FD_GROWTH_MAX = 32
RSS_GROWTH_MAX_BYTES = 64 << 20
SANITIZED_RSS_GROWTH_MAX_BYTES = 384 << 20
COUNTS_SETTLE_S = 30.0
BACKEND_NAMES = ("one", "two", "three")
TARGETS = "/targets"
FAULTS = ("kill9-backend", "sigterm-agent", "kill9-agent-takeover", "kill9-agent-expire",
          "restart-zookeeper")


# ---------------------------------------------------------------------------------------
# Pieces

class SoakBackend:
    """backend.py without a request log (a JSON line per request would cost the soak
    more than the proxy does), restartable on its port."""

    def __init__(self, tmp_dir, name, request):
        self.name = name
        self.dir = Path(tmp_dir) / ("backend-" + name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.starts = 0
        self.process = None
        self._request = request
        self.start()
        self.addr = "%s:%d" % (LOOPBACK, self.port)

    def start(self):
        self.starts += 1
        ready = self.dir / "ready"
        if ready.exists():
            ready.unlink()
        argv = [harness.PYTHON, harness.BACKEND_PY, "--port", self.port, "--name", self.name,
                "--ready-file", ready]
        self.process = ManagedProcess(argv, self.dir / ("output.%d.log" % self.starts),
                                      name="backend %s #%d" % (self.name, self.starts))
        harness.track(self._request, self.process)
        wait_until(lambda: ready.exists() or not self.process.alive(), 15,
                   "backend %s to listen" % self.name)
        assert self.process.alive(), self.process.output_tail()
        self.port = int(ready.read_text().strip())

    def kill(self):
        self.process.kill()




class Admin:
    def __init__(self, port):
        self.port = port

    def get(self, path):
        r = harness.get(self.port, path, timeout=5.0)
        assert r.status == 200, "admin GET %s: %r" % (path, r)
        return r

    def metrics(self):
        return parse_metrics(self.get("/metrics").body.decode("utf-8", "replace"))

    def targets(self):
        return self.get("/targets").json()

    def rows(self):
        return {t["name"]: t for t in self.targets()["targets"]}

    def routing(self):
        return sorted(n for n, t in self.rows().items() if t["state"] == "routing")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def steady(read, what, timeout=10.0):
    """read() once two readings 200 ms apart agree (an admin connection may be closing)."""
    last = [read()]

    def same():
        time.sleep(0.2)
        now = read()
        if now == last[0]:
            return True
        last[0] = now
        return False
    wait_until(same, timeout, "a steady %s" % what)
    return last[0]


# ---------------------------------------------------------------------------------------
# Load


def soak_load(port, duration, tag="soak"):
    """Paced keep-alive load (kit.load) with a unique path per request; every 200 body is
    checked byte for byte against the request that asked for it."""
    def right(path, r):
        backend = r.header("x-backend")
        return backend in BACKEND_NAMES and r.body == ("%s %s\n" % (backend, path)).encode("latin-1")

    return LoadClient(port, connections=CONNECTIONS, rate=RATE, duration_max=duration,
                      timeout=REQUEST_TIMEOUT_S, name=tag, host="soak.test",
                      path=lambda index, seq: "/soak/%s-%d-%d" % (tag, index, seq), check=right)


# ---------------------------------------------------------------------------------------
# Chaos

_REMOVED_RE = re.compile(r"removed node (\S+) \(count (\d+)\)")
_CARRIED_RE = re.compile(r"removed stale node (\S+) owned by session \S+ \(left by a previous "
                         r"run; count (\d+) carried over\)")


class Chaos:
    """Runs a seeded sequence of faults, one at a time, until `until` (monotonic).

    It runs on the test's main thread, not a thread of its own: the harness starts every
    child with PR_SET_PDEATHSIG, which fires when the *thread* that forked the child ends,
    so a process restarted from a short-lived thread would be SIGKILLed when it finished."""

    def __init__(self, env, seed, until):
        self.env = env
        self.rng = random.Random(seed)
        self.until = until
        self.events = []          # dicts: kind, target, t_start, t_end, notes
        self.deleted_counts = []  # (what, target, count)
        self.problems = []        # accounting we could not do exactly

    def run(self):
        time.sleep(CHAOS_START_S)  # the load runs alone first (a schedule, not a wait)
        order = []
        while True:
            if not order:
                order = list(FAULTS)
                self.rng.shuffle(order)
            kind = order.pop()
            index = self.rng.randrange(len(BACKEND_NAMES))
            gap = self.rng.uniform(1.0, 3.0)
            down = self.rng.uniform(0.5, 2.0)
            # The pause between faults (a schedule, not a synchronisation).
            time.sleep(gap)
            if time.monotonic() >= self.until:
                break
            event = {"kind": kind, "target": BACKEND_NAMES[index] if kind !=
                     "restart-zookeeper" else "-",
                     "t_start": time.monotonic() - self.env.t0, "notes": ""}
            self.events.append(event)
            handler = {"kill9-backend": self.kill9_backend,
                       "sigterm-agent": self.sigterm_agent,
                       "kill9-agent-takeover": self.kill9_agent_takeover,
                       "kill9-agent-expire": self.kill9_agent_expire,
                       "restart-zookeeper": self.restart_zookeeper}[kind]
            handler(index, down, event)
            event["t_end"] = time.monotonic() - self.env.t0

    # -- faults ---------------------------------------------------------------------------
    def kill9_backend(self, i, down, event):
        b = self.env.backends[i]
        b.kill()
        time.sleep(down)
        b.start()
        event["notes"] = "down %.1f s, restarted on port %d" % (down, b.port)

    def sigterm_agent(self, i, down, event):
        env = self.env
        name = env.backends[i].addr
        agent = env.agents[i]
        code = agent.terminate(timeout=10)
        assert code == 0, "%s exited %s on SIGTERM" % (agent.name, code)
        m = [x for x in _REMOVED_RE.findall(agent.log()) if x[0].endswith("/" + name)]
        frozen = env.frozen_row_count(name)
        if m:
            count = int(m[-1][1])
            self.deleted_counts.append(("sigterm", name, count))
            event["notes"] = "node removed with count %d (proxy's frozen row: %s)" % (count, frozen)
            if frozen is not None and frozen != count:
                self.problems.append("SIGTERM of %s: the agent removed count %d, the proxy's row "
                                     "says %d" % (agent.name, count, frozen))
        else:
            self.problems.append("SIGTERM of %s: no 'removed node' line in its log" % agent.name)
        time.sleep(down)
        env.start_agent(i)
        event["notes"] += "; agent back after %.1f s" % down

    def kill9_agent_takeover(self, i, down, event):
        env = self.env
        name = env.backends[i].addr
        env.agents[i].kill()
        pause = min(down, AGENT_SESSION_MS / 1000.0 * 0.4)
        time.sleep(pause)
        agent = env.start_agent(i)
        log = agent.log()
        carried = [x for x in _CARRIED_RE.findall(log) if x[0].endswith("/" + name)]
        if carried:
            event["notes"] = "restarted after %.1f s; lingering node taken over, count %s " \
                             "carried" % (pause, carried[-1][1])
        else:
            # The old session expired first: its node (and count) went with it, unobserved.
            self.problems.append("kill -9 of the agent of %s: the restarted agent found no "
                                 "lingering node to take over:\n%s" % (name, log[-2000:]))

    def kill9_agent_expire(self, i, down, event):
        env = self.env
        name = env.backends[i].addr
        env.agents[i].kill()
        killed = time.monotonic()
        wait_until(lambda: not env.ctl.exists("%s/%s" % (TARGETS, name)),
                   AGENT_SESSION_MS / 1000.0 + 10, "the node of %s to expire" % name)
        lingered = time.monotonic() - killed
        frozen = env.frozen_row_count(name)
        if frozen is None:
            self.problems.append("expiry of %s: the proxy's row was gone before it could be "
                                 "read" % name)
        else:
            self.deleted_counts.append(("expired", name, frozen))
        time.sleep(down)
        env.start_agent(i)
        event["notes"] = "node lingered %.1f s, expired with count %s; agent back" % (
            lingered, frozen)

    def restart_zookeeper(self, i, down, event):
        server = self.env.server
        server.stop()
        outage = down + 1.0
        time.sleep(outage)
        server.start()
        event["notes"] = "stopped for %.1f s (+ JVM start)" % outage


class SoakEnv:
    """What the chaos acts on: the server, the backends, the current agent per backend."""

    def __init__(self, server, backends, start_agent_fn, ctl, admin):
        self.server = server
        self.backends = backends
        self.ctl = ctl
        self.admin = admin
        self.start_agent_fn = start_agent_fn
        self.agent_starts = Counter()
        self.agents = [None] * len(backends)
        self.all_agents = []
        self.t0 = time.monotonic()

    def start_agent(self, i):
        b = self.backends[i]
        self.agent_starts[b.name] += 1
        agent = self.start_agent_fn(self.server.connect_string(), b.addr,
                                    name="agent-%s-%d" % (b.name, self.agent_starts[b.name]),
                                    session_timeout_ms=AGENT_SESSION_MS)
        self.agents[i] = agent
        self.all_agents.append(agent)
        session = agent.wait_session(timeout=20)
        path = "%s/%s" % (TARGETS, b.addr)
        wait_until(lambda: (lambda s: s is not None and s["ephemeralOwner"] == session)(
            self.ctl.stat(path)), 20, "%s to hold %s" % (agent.name, path), interval_max=0.1)
        return agent

    def frozen_row_count(self, name):
        """The proxy's count for a target whose node is gone: frozen at the deletion (the
        proxy is the only writer and gets NONODE afterwards). Waits for the node to be gone
        and two more flush intervals, so a write that landed just before is accounted."""
        wait_until(lambda: not self.ctl.exists("%s/%s" % (TARGETS, name)), 15,
                   "%s to be gone" % name, interval_max=0.1)
        v0 = self.admin.targets()["snapshot_version"]
        wait_until(lambda: self.admin.targets()["snapshot_version"] >= v0 + 2, 10,
                   "two flush intervals")
        row = self.admin.rows().get(name)
        return None if row is None else row["count"]


# ---------------------------------------------------------------------------------------
# The test

def test_soak_under_chaos_answers_everything_right_and_keeps_exact_counts(
        tmp_path, request, ringmaster_bin, sanitized, start_zk_server, start_agent,
        start_proxy):
    # The suite's per-test watchdog (conftest.py) defaults to 300 s; a longer soak needs more.
    faulthandler.dump_traceback_later(SOAK_SECONDS + 300, exit=True)

    server = start_zk_server(name="zk-soak")
    ctl = ZkCtl(server.connect_string())
    backends = []
    request.addfinalizer(lambda: [b.kill() for b in backends])
    backends += [SoakBackend(tmp_path, name, request) for name in BACKEND_NAMES]
    admin_port = free_port()
    proxy = start_proxy([], threads=2, zk=server.connect_string(),
                        admin="%s:%d" % (LOOPBACK, admin_port), cache_bytes=0,
                        flush_interval_ms=FLUSH_INTERVAL_MS,
                        session_timeout_ms=PROXY_SESSION_MS)
    wait_until(lambda: port_accepts(admin_port) or not proxy.alive(), 10, "the admin listener")
    admin = Admin(admin_port)
    env = SoakEnv(server, backends, start_agent, ctl, admin)
    for i in range(len(backends)):
        env.start_agent(i)
    all_addrs = sorted(b.addr for b in backends)
    wait_until(lambda: admin.routing() == all_addrs, 15, "the proxy to route to all three")

    # Warm-up (connections, upstream pools, allocator), then the baseline.
    warm = soak_load(proxy.port, WARMUP_S, tag="warm").run()
    assert warm.answered == warm.sent and not warm.wrong and set(warm.statuses()) == {200}, (
        warm.statuses(), warm.failures[:3], warm.wrong[:3])
    before = settle(admin, ctl)
    fd_before = steady(lambda: fd_count(proxy.pid), "fd count")
    rss_before = proxy.rss_bytes()

    # The soak: load and chaos together.
    load = soak_load(proxy.port, SOAK_SECONDS).start()
    env.t0 = t0 = load.started_at
    chaos = Chaos(env, SEED, until=t0 + SOAK_SECONDS - CHAOS_TAIL_S)
    try:
        chaos.run()
    except BaseException:
        load.stop()
        print("\nfaults until the error: %s" % json.dumps(chaos.events, indent=1))
        raise
    load.join()
    statuses = load.statuses()
    by_backend = Counter(backend for _, status, backend in load.records if status == 200)

    def books_closed(m, counts):
        gap = counts_identity(before, m, counts, chaos.deleted_counts)[0]
        return gap == 0 or ambiguous_writes(before["metrics"], m) > 0

    after = settle(admin, ctl, timeout=COUNTS_SETTLE_S, strict=False, expect=books_closed)
    fd_after = steady(lambda: fd_count(proxy.pid), "fd count")
    rss_after = proxy.rss_bytes()

    # ---- figures ----
    d_requests = after["metrics"]["ringmaster_requests_total"] - before["metrics"][
        "ringmaster_requests_total"]
    d_retries = (after["metrics"]["ringmaster_upstream_retries_total"]
                 - before["metrics"]["ringmaster_upstream_retries_total"])
    d_flushed = (after["metrics"]["ringmaster_flushed_requests_total"]
                 - before["metrics"]["ringmaster_flushed_requests_total"])
    gap, sends, counted, deleted = counts_identity(before, after["metrics"], after["counts"],
                                                      chaos.deleted_counts)
    rss_limit = SANITIZED_RSS_GROWTH_MAX_BYTES if sanitized else RSS_GROWTH_MAX_BYTES
    expired_sessions = [a.name for a in env.all_agents if "expired" in a.log()]
    metric = lambda name: after["metrics"].get(name, 0) - before["metrics"].get(name, 0)  # noqa

    print("\n==== soak: %.0f s, seed %d, %d connections at %.0f req/s, proxy %s ===="
          % (SOAK_SECONDS, SEED, CONNECTIONS, RATE, "sanitized" if sanitized else "release"))
    print("faults (%d):" % len(chaos.events))
    for e in chaos.events:
        print("  %6.1f-%6.1f s  %-22s %-6s %s" % (e["t_start"], e["t_end"], e["kind"],
                                                  e["target"], e["notes"]))
    print("requests sent %d, answered %d (%s), client-side failures %d, wrong bodies %d, "
          "client connects %d" % (load.sent, load.answered, dict(sorted(statuses.items())),
                                  len(load.failures), len(load.wrong), load.connects))
    print("answered 200 by backend: %s" % dict(sorted(by_backend.items())))
    for t, path, status, body in load.non_200[:10]:
        print("  non-200 at %.2f s: %s -> %d %r" % (t - t0, path, status, body))
    for t, reason, path in load.failures[:10]:
        print("  failure at %.2f s: %s: %s" % (t - t0, path, reason))
    for t, path, status, backend, body in load.wrong[:10]:
        print("  WRONG BODY at %.2f s: %s -> %d from %s: %r" % (t - t0, path, status, backend,
                                                               body))
    print("proxy: requests parsed %d; upstream connects %d, connect failures %d, pooled reuses "
          "%d, stale-connection retries %d; 502/503/504 %d/%d/%d; ZooKeeper sessions %d, "
          "bad-version retries %d, errors %d, ambiguous writes %d"
          % (d_requests, metric("ringmaster_upstream_connects_total"),
             metric("ringmaster_upstream_connect_failures_total"),
             metric("ringmaster_upstream_reused_total"), d_retries,
             metric("ringmaster_responses_502_total"), metric("ringmaster_responses_503_total"),
             metric("ringmaster_responses_504_total"), metric("ringmaster_zk_sessions_total"),
             metric("ringmaster_zk_bad_version_total"), metric("ringmaster_zk_errors_total"),
             metric("ringmaster_zk_ambiguous_writes_total")))
    print("counts: ZooKeeper before %s (sum %d), after %s (sum %d); deleted with nodes %s "
          "(sum %d)" % (before["counts"], sum(before["counts"].values()), after["counts"],
                        sum(after["counts"].values()), chaos.deleted_counts, deleted))
    print("counts: sends (requests %d + resends %d) = %d; counted in ZooKeeper (after - before) "
          "= %d; difference %+d; ringmaster_flushed_requests_total grew %d (%+d); "
          "unflushed now %s" % (d_requests, d_retries, sends, counted, -gap, d_flushed,
                                d_flushed - counted,
                                {n: r["unflushed"] for n, r in after["rows"].items()}))
    print("fds: %d before, %d after (growth %+d, bound %d); VmRSS %.1f MiB before, %.1f MiB "
          "after (growth %+.1f MiB, bound %d MiB)"
          % (fd_before, fd_after, fd_after - fd_before, FD_GROWTH_MAX, rss_before / 2**20,
             rss_after / 2**20, (rss_after - rss_before) / 2**20, rss_limit >> 20))
    if expired_sessions:
        print("agents whose ZooKeeper session expired (besides the expiry fault): %s"
              % expired_sessions)
    for p in chaos.problems:
        print("accounting problem: %s" % p)

    # ---- verdicts ----
    assert not load.wrong, "%d wrong bodies, first: %s" % (len(load.wrong), load.wrong[:3])
    assert not load.failures, "%d requests got no answer, first: %s" % (
        len(load.failures), load.failures[:5])
    assert set(statuses) <= {200}, "answers other than 200 (at least one backend was " \
        "always up): %s; first: %s" % (dict(statuses), load.non_200[:5])
    assert load.answered == load.sent
    assert d_requests == load.sent, "the proxy parsed %d requests, the clients sent %d" % (
        d_requests, load.sent)
    assert set(by_backend) == set(BACKEND_NAMES), by_backend
    if SOAK_SECONDS >= 60:  # the first five faults are one of each kind
        assert {e["kind"] for e in chaos.events} == set(FAULTS), (
            "not every kind of fault ran in %.0f s: %s" % (SOAK_SECONDS, chaos.events))
    assert not chaos.problems, chaos.problems
    assert after.get("settled", True), "the proxy did not settle: %s" % after["rows"]
    assert all(r["unflushed"] == 0 for r in after["rows"].values()), after["rows"]
    # A write whose outcome the proxy could not settle (CONNECTIONLOSS, then a node that
    # changed under it) is counted as applied: by design it may lose those requests, never
    # count them twice. Without one, the books must balance exactly.
    ambiguous = ambiguous_writes(before["metrics"], after["metrics"])
    detail = ("the proxy sent %d requests to targets, ZooKeeper counted %d (sum %d -> %d, "
              "deleted with nodes %d), ambiguous writes %d" % (
                  sends, counted, sum(before["counts"].values()),
                  sum(after["counts"].values()), deleted, ambiguous))
    if ambiguous == 0:
        assert gap == 0, "counts in ZooKeeper do not add up: " + detail
    else:
        print("counts: %d requests lost to %d ambiguous writes (counted as applied by design)"
              % (gap, ambiguous))
        assert gap >= 0, "counted twice: " + detail
    assert sorted(after["counts"]) == all_addrs
    assert fd_after - fd_before <= FD_GROWTH_MAX, "fds grew from %d to %d" % (fd_before, fd_after)
    assert rss_after - rss_before <= rss_limit, "VmRSS grew from %d to %d bytes" % (
        rss_before, rss_after)
    assert proxy.alive()


def counts_identity(before, metrics_now, counts_now, deleted_counts):
    """(sends - counted, sends, counted, deleted): see the module docstring."""
    m0 = before["metrics"]
    sends = int(metrics_now["ringmaster_requests_total"] - m0["ringmaster_requests_total"]
                + metrics_now["ringmaster_upstream_retries_total"]
                - m0["ringmaster_upstream_retries_total"])
    # Reported only: a deleted node's total is restored when it comes back (docstring).
    deleted = sum(c for _, _, c in deleted_counts)
    counted = sum(counts_now.values()) - sum(before["counts"].values())
    return sends - counted, sends, counted, deleted


def ambiguous_writes(metrics_before, metrics_now):
    name = "ringmaster_zk_ambiguous_writes_total"
    return int(metrics_now.get(name, 0) - metrics_before.get(name, 0))


def settle(admin, ctl, timeout=COUNTS_SETTLE_S, expect=None, strict=True):
    """Waits until no client connection is open, every target is routed with nothing
    unflushed, and (with `expect`) expect(metrics, counts) holds; returns what it saw last
    (with strict=False also when that never happened: the caller reports the figures)."""
    seen = {}

    def done():
        m = admin.metrics()
        rows = admin.rows()
        seen.update(metrics=m, rows=rows)
        if m.get("ringmaster_connections_open", 0) != 0:
            return False
        if any(r["unflushed"] != 0 or r["state"] != "routing" for r in rows.values()):
            return False
        counts = zk_counts(ctl)
        seen["counts"] = counts
        # Nothing may have moved while the counts were read.
        m2 = admin.metrics()
        if m2.get("ringmaster_requests_total") != m.get("ringmaster_requests_total"):
            return False
        return expect is None or expect(m, counts)
    try:
        wait_until(done, timeout, "the proxy to settle", interval_max=0.2)
    except AssertionError:
        if strict:
            raise AssertionError("the proxy did not settle in %.0f s: rows %s, counts %s, "
                                 "connections open %s" % (
                                     timeout, json.dumps(seen.get("rows")), seen.get("counts"),
                                     seen.get("metrics", {}).get("ringmaster_connections_open")))
        seen["settled"] = False
    if "counts" not in seen:
        seen["counts"] = zk_counts(ctl)
    return dict(seen)
