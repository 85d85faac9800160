"""`ringmaster proxy --zk` under faults (issue 3: failover, static stability, expiry).

What a user relies on when things break, checked with real processes on loopback:
  * a backend killed with SIGKILL (its agent lives on, so its node stays): requests keep
    succeeding, failed over to the other target; a GET it held is resent to the other
    target, a POST is not;
  * the ZooKeeper server stopped under load: not one request fails, and once it is back
    the counts in ZooKeeper sum exactly to the requests sent;
  * the proxy's session expired: it opens a new one, re-arms its watches (a target added
    afterwards gets traffic), fails nothing and loses no count;
  * an agent's session expired: its node comes back, exactly once, and traffic returns;
  * a three-server ensemble loses its leader under load: nothing fails, counts complete;
  * every node vanishing at once is believed only after one session timeout: until then
    the proxy keeps routing to the last target it had.

Helpers (the load client, the ZooKeeper-mode proxy factory, count readers) come from
zkproxy.py.
"""

import os
import signal
import time

import pytest

import harness
from harness import wait_until
from zkproxy import (  # noqa: F401  (start_zk_proxy is a fixture, used by name)
    TARGETS, LoadClient, backend_requests, register_pair, share_report, start_registered,
    start_zk_proxy, wait_counts_sum)
from zk import (  # noqa: F401  (fixtures are used by name)
    ZkCtl, expire_session, start_agent, start_zk_server, wait_for, zk, zk_ensemble,
    zk_server)

# The issue asks for a 30 s ZooKeeper outage; 12 s keeps the suite quick and exercises the
# same paths (it is longer than every session timeout involved; a restarted standalone
# server gives each stored session a fresh timeout, so sessions resume rather than expire).
# RINGMASTER_ZK_OUTAGE_S=30 reproduces the figure exactly.
ZK_OUTAGE_S = float(os.environ.get("RINGMASTER_ZK_OUTAGE_S", "12"))
# Fault tests run their load at a steady pace: the Python backends are the bottleneck, and
# a steady rate makes "requests during the fault" a meaningful number.
LOAD_RATE = 600


# =======================================================================================
# 8. A backend killed with SIGKILL: failover

@pytest.mark.slow
def test_killed_backend_fails_over_with_no_failed_request(zk, start_backend, start_agent,
                                                         start_zk_proxy):
    (b1, _), (b2, a2) = register_pair(start_backend, start_agent, zk.connect, zk.ctl)
    proxy = start_zk_proxy(zk.connect, routing=[b1, b2])

    with LoadClient(proxy.port, connections=6, rate=LOAD_RATE, duration_max=60,
                    name="failover") as load:
        load.wait_answered(300)
        assert set(load.by_backend()) == {"one", "two"}
        b2.stop()                       # SIGKILL: the backend only; its agent keeps the node
        killed = time.monotonic()
        n = load.count()
        # Long enough to cover the first ejections (1 s, then 2 s) and retries after them.
        load.wait_answered(n + int(LOAD_RATE * 4.5), timeout=30)
        # The node lingers (the agent's session is alive), so the proxy still lists it:
        # failover is what keeps requests succeeding.
        assert zk.ctl.exists("%s/%s" % (TARGETS, b2.addr))
        assert b2.addr in proxy.routing()
        assert a2.alive()
    load.assert_all_ok("after kill -9 of a backend")
    after = load.by_backend(since=killed + 0.2)
    print("\nkill -9: %d requests, all 200; answered after the kill: %s"
          % (load.answered, share_report(after, sum(after.values()))))
    assert set(after) == {"one"}, after
    assert sum(after.values()) >= LOAD_RATE * 4


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_request_in_flight_on_a_killed_backend_is_retried_only_if_idempotent(
        method, zk, start_backend, start_agent, start_zk_proxy):
    """Issue 3, item 4: a request whose bytes already reached a backend is retried (on the
    next target) only if it is idempotent and no response byte went to the client. A GET in
    flight on a backend killed with SIGKILL is answered 200 by the other target; a POST is
    not resent anywhere (502)."""
    (b1, _), (b2, _) = register_pair(start_backend, start_agent, zk.connect, zk.ctl)
    proxy = start_zk_proxy(zk.connect, routing=[b1, b2])
    by_name = {"one": b1, "two": b2}

    def slow_requests(b):
        return [r for r in b.requests() if r["target"].startswith("/slow")]

    with harness.HttpConnection(proxy.port, timeout=15) as conn:
        conn.send(harness.build_request(method, "/slow?ms=1500", body=b"",
                                        headers=[("Content-Length", "0")]
                                        if method == "POST" else None))
        first = wait_for(lambda: next((n for n, b in by_name.items() if slow_requests(b)),
                                      None), 5, "the request to reach a backend")
        victim, other = by_name[first], by_name["two" if first == "one" else "one"]
        victim.stop()                   # SIGKILL while it holds the request
        r = conn.read_response(method, timeout=15)
    print("\n%s in flight on a killed backend: %d from %s; the other backend saw it %d time(s)"
          % (method, r.status, r.header("X-Backend"), len(slow_requests(other))))
    if method == "GET":
        assert r.status == 200 and r.header("X-Backend") == other.name, (
            "a GET in flight on a killed backend was answered %d (X-Backend %s) instead of "
            "being resent to the other target; the other backend saw it %d time(s)"
            % (r.status, r.header("X-Backend"), len(slow_requests(other))))
        assert len(slow_requests(other)) == 1
    else:
        assert r.status == 502, r
        assert slow_requests(other) == [], "a POST was resent to another backend"


# =======================================================================================
# 9. ZooKeeper stopped under load: static stability, exact counts afterwards

# Not serial: on a busy machine ZooKeeper may come back later than the agents' 2 s session
# timeout (JVM start-up), so their sessions expire and they re-create their nodes from the
# last count they read; the proxy writes them back up to what it had written (README
# "ZooKeeper layout"), so the counts are exact either way.
@pytest.mark.slow
def test_zookeeper_outage_under_load_fails_nothing_and_counts_complete(
        start_zk_server, start_backend, start_agent, start_zk_proxy):
    server = start_zk_server()
    connect = server.connect_string()
    ctl = ZkCtl(connect)
    (b1, a1), (b2, a2) = register_pair(start_backend, start_agent, connect, ctl)
    proxy = start_zk_proxy(connect, routing=[b1, b2])
    both = sorted([b1.addr, b2.addr])

    with LoadClient(proxy.port, connections=6, rate=LOAD_RATE,
                    duration_max=ZK_OUTAGE_S + 60, name="outage") as load:
        load.wait_answered(300)
        server.stop()
        stopped = time.monotonic()
        wait_until(lambda: proxy.targets()["session"] != "connected", 15,
                   "the proxy to notice ZooKeeper is gone")
        # The outage lasts ZK_OUTAGE_S; meanwhile, checked every half second: still routing
        # to both, still counting, nothing failed. (The pause is the check interval of a
        # loop bounded by the outage's end, not a synchronisation.)
        unflushed = []
        while True:
            assert proxy.alive()
            assert proxy.routing() == both, proxy.targets()
            unflushed.append(proxy.unflushed())
            assert not load.not_ok(), load.not_ok()[:5]
            remaining = stopped + ZK_OUTAGE_S - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.5, remaining))
        during = load.by_backend(since=stopped)
        assert set(during) == {"one", "two"}, during
        assert unflushed[-1] > unflushed[0] > 0, unflushed
        server.start()
        back = time.monotonic()
        wait_until(lambda: proxy.targets()["session"] == "connected", 30,
                   "the proxy to reconnect")
        n = load.count()
        load.wait_answered(n + 300)
    load.assert_all_ok("with ZooKeeper stopped for %.0f s" % ZK_OUTAGE_S)
    counts = wait_counts_sum(ctl, load.answered, proxies=[proxy], timeout=30)
    print("\nZooKeeper outage of %.0f s: %d requests (%d while it was away), all 200; "
          "unflushed at the end of the outage %d; counts in ZooKeeper afterwards %s "
          "(sum %d); ZooKeeper sessions opened by the proxy: %d"
          % (ZK_OUTAGE_S, load.answered, sum(during.values()), unflushed[-1], counts,
             sum(counts.values()), proxy.metric("ringmaster_zk_sessions_total")))
    print("  agents: %s" % ", ".join(
        "%s %s" % (a.name, "session expired, node re-created" if "expired" in a.log()
                   else "session resumed") for a in (a1, a2)))
    assert sorted(ctl.ls(TARGETS)) == both
    assert back - stopped >= ZK_OUTAGE_S


# =======================================================================================
# 10. The proxy's session expires

@pytest.mark.slow
def test_proxy_session_expiry_reopens_rearms_watches_and_loses_no_count(
        zk, start_backend, start_agent, start_zk_proxy):
    (b1, _), (b2, _) = register_pair(start_backend, start_agent, zk.connect, zk.ctl)
    proxy = start_zk_proxy(zk.connect, session_file=True, routing=[b1, b2])
    first = wait_for(proxy.session, 10, "the proxy's session file")
    assert proxy.metric("ringmaster_zk_sessions_total") == 1

    with LoadClient(proxy.port, connections=6, rate=LOAD_RATE, duration_max=60,
                    name="proxy-expiry") as load:
        load.wait_answered(300)
        expire_session(zk.ctl, proxy.pid, first)
        wait_until(lambda: proxy.metric("ringmaster_zk_sessions_total") == 2, 20,
                   "the proxy to open a second session")
        second = wait_for(lambda: (lambda s: s if s and s != first else None)(proxy.session()),
                          10, "the proxy's new session in its session file")
        wait_until(lambda: proxy.targets()["session"] == "connected", 10,
                   "the new session to connect")
        assert int(second[0], 16) != int(first[0], 16)
        # Watches re-armed: a target added now reaches the routing table and gets traffic.
        b3, _ = start_registered(start_backend, start_agent, zk.connect, "three", ctl=zk.ctl)
        added = time.monotonic()
        wait_until(lambda: load.by_backend(since=added).get("three"), 5,
                   "traffic to reach the target added after the expiry")
        n = load.count()
        load.wait_answered(n + 300)
    load.assert_all_ok("across the proxy's session expiry")
    counts = wait_counts_sum(zk.ctl, load.answered, proxies=[proxy])
    print("\nproxy session expiry: %s -> %s; %d requests, all 200; counts %s (sum %d)"
          % (first[0], second[0], load.answered, counts, sum(counts.values())))
    assert counts == {b.addr: backend_requests(b) for b in (b1, b2, b3)}
    assert proxy.metric("ringmaster_zk_sessions_total") == 2


# =======================================================================================
# 11. An agent's session expires

@pytest.mark.slow
def test_agent_session_expiry_recreates_its_node_once_and_traffic_returns(
        zk, start_backend, start_agent, start_zk_proxy):
    (b1, _), (b2, a2) = register_pair(start_backend, start_agent, zk.connect, zk.ctl)
    proxy = start_zk_proxy(zk.connect, routing=[b1, b2])
    both = sorted([b1.addr, b2.addr])
    path = "%s/%s" % (TARGETS, b2.addr)

    with LoadClient(proxy.port, connections=6, rate=LOAD_RATE, duration_max=60,
                    name="agent-expiry") as load:
        load.wait_answered(300)
        old = a2.expire_session(zk.ctl)
        new = a2.wait_session(other_than=old, timeout=15)
        wait_for(lambda: (lambda s: s and s["ephemeralOwner"] == new)(zk.ctl.stat(path)), 15,
                 "the node to be re-created by the agent's new session")
        recreated = time.monotonic()
        assert sorted(zk.ctl.ls(TARGETS)) == both
        proxy.wait_routing(both)
        wait_until(lambda: load.by_backend(since=recreated).get("two"), 5,
                   "traffic to return to the target whose node was re-created")
        n = load.count()
        load.wait_answered(n + 300)
        assert sorted(zk.ctl.ls(TARGETS)) == both
    load.assert_all_ok("across an agent's session expiry")
    after = load.by_backend(since=recreated)
    print("\nagent session expiry: 0x%x -> 0x%x; %d requests, all 200; after the node came "
          "back: %s" % (old, new, load.answered, share_report(after, sum(after.values()))))
    assert zk.ctl.stat(path)["ephemeralOwner"] == new
    assert sorted(zk.ctl.ls(TARGETS)) == both
    # Counts: the agent re-creates the node with the last count it saw, which may be behind
    # what the proxy wrote to the old node; the proxy writes it back up to its total
    # (test_agent_expiry_counts.py makes that case certain), so the sum is exact.
    counts = wait_counts_sum(zk.ctl, load.answered, proxies=[proxy])
    print("  counts complete: %s" % counts)


# =======================================================================================
# 12. A three-server ensemble loses its leader under load

@pytest.mark.slow
def test_ensemble_leader_killed_under_load_fails_nothing_and_counts_complete(
        zk_ensemble, start_backend, start_agent, start_zk_proxy):
    connect = zk_ensemble.connect_string()
    ctl = ZkCtl(connect)
    (b1, _), (b2, _) = register_pair(start_backend, start_agent, connect, ctl, session_timeout_ms=10000)
    proxy = start_zk_proxy(connect, routing=[b1, b2])
    both = sorted([b1.addr, b2.addr])

    with LoadClient(proxy.port, connections=6, rate=LOAD_RATE, duration_max=90,
                    name="leader-kill") as load:
        load.wait_answered(300)
        leader = zk_ensemble.wait_leader()
        zk_ensemble.kill(leader)
        killed = time.monotonic()
        new_leader = zk_ensemble.wait_leader(timeout=30, exclude=(leader,))
        elected = time.monotonic()
        wait_until(lambda: proxy.targets()["session"] == "connected", 30,
                   "the proxy's session to be connected again")
        n = load.count()
        load.wait_answered(n + 300)
    load.assert_all_ok("with the ensemble leader killed")
    counts = wait_counts_sum(ctl, load.answered, proxies=[proxy], timeout=30)
    print("\nensemble: leader zk-%d killed, zk-%d elected after %.1f s; %d requests "
          "(%d meanwhile), all 200; counts %s (sum %d)"
          % (leader + 1, new_leader + 1, elected - killed, load.answered,
             sum(load.by_backend(since=killed, until=elected).values()), counts,
             sum(counts.values())))
    assert counts == {b.addr: backend_requests(b) for b in (b1, b2)}
    assert sorted(ctl.ls(TARGETS)) == both


# =======================================================================================
# Every target gone at once: believed only after one session timeout

@pytest.mark.slow
def test_all_nodes_vanishing_at_once_does_not_wipe_the_routing_table(
        zk, start_backend, start_agent, start_zk_proxy):
    """Both agents cut off past their session timeout (as in a ZooKeeper-side fault): the
    children list goes empty for a while, then the agents come back. An empty list is only
    believed after one session timeout (10 s here), so meanwhile the proxy keeps routing to
    the last target it had and no request fails. (The sessions end one after the other: the
    first node to go is a real leave as far as the proxy can tell; the second leaves the
    list empty, and that last target must stay.)"""
    (b1, a1), (b2, a2) = register_pair(start_backend, start_agent, zk.connect, zk.ctl)
    proxy = start_zk_proxy(zk.connect, session_timeout_ms=10000, routing=[b1, b2])
    both = sorted([b1.addr, b2.addr])
    routing_while_gone = []

    with LoadClient(proxy.port, connections=6, rate=LOAD_RATE, duration_max=60,
                    name="all-gone") as load:
        load.wait_answered(300)
        sessions = [a.session() for a in (a1, a2)]
        for a in (a1, a2):
            os.kill(a.pid, signal.SIGSTOP)
        try:
            for s in sessions:
                zk.ctl.expire_session(*s)
            assert zk.ctl.ls(TARGETS) == []
            gone = time.monotonic()
            # Two seconds of load with no node at all, well within the proxy's 10 s session
            # timeout; the routing table is sampled meanwhile.
            n = load.count()
            while load.count() < n + 2 * LOAD_RATE and time.monotonic() < gone + 20:
                rows = proxy.target_rows()
                routing_while_gone.append((
                    round(time.monotonic() - gone, 2),
                    sorted(n for n, t in rows.items() if t["state"] == "routing"),
                    {n: t["state"] for n, t in rows.items()}))
                load.wait_answered(load.count() + LOAD_RATE // 5, timeout=20)
            during = load.by_backend(since=gone)
            not_ok_during = load.not_ok()
        finally:
            for a in (a1, a2):
                os.kill(a.pid, signal.SIGCONT)
        for a, s in zip((a1, a2), sessions):
            a.wait_session(other_than=int(s[0], 16), timeout=15)
        wait_for(lambda: sorted(zk.ctl.ls(TARGETS)) == both, 15, "both nodes back")
        back = time.monotonic()
        wait_until(lambda: set(load.by_backend(since=back)) == {"one", "two"}, 10,
                   "traffic to both targets after they came back")
    samples = [(t, len(r)) for t, r, _ in routing_while_gone]
    print("\nevery node gone for %.1f s: %d requests; answered while gone: %s; failed while "
          "gone: %d; routing table sampled while gone (s after, targets routed): %s"
          % (back - gone, load.answered, during, len(not_ok_during), samples))
    emptied = [(t, states) for t, r, states in routing_while_gone if not r]
    assert not emptied and not not_ok_during, (
        "with every node gone for less than the proxy's 10 s session timeout, %d requests "
        "failed (first: %s) and the routing table was empty from %s s after the last node "
        "vanished (target states then: %s); samples (s, targets routed): %s"
        % (len(not_ok_during), not_ok_during[:2], emptied[0][0] if emptied else "-",
           emptied[0][1] if emptied else "-", samples))
    load.assert_all_ok("after every node came back")


def test_targets_that_really_left_are_dropped_after_one_session_timeout(
        zk, start_backend, start_agent, start_zk_proxy):
    """The other side of the rule above: when the last agent stops for good, the proxy keeps
    its target for one session timeout (it cannot tell a fault from a real leave), then
    believes the empty list and answers 503."""
    timeout_s = 4.0
    b1, a1 = start_registered(start_backend, start_agent, zk.connect, "one", ctl=zk.ctl)
    proxy = start_zk_proxy(zk.connect, session_timeout_ms=int(timeout_s * 1000))
    proxy.wait_routing([b1.addr])
    assert harness.get(proxy.port, "/").status == 200
    assert a1.terminate() == 0
    left = time.monotonic()
    wait_until(lambda: proxy.routing() == [], timeout_s + 10,
               "the proxy to drop the last target")
    dropped = time.monotonic() - left
    print("\nlast target left: dropped after %.2f s (session timeout %.0f s)"
          % (dropped, timeout_s))
    assert dropped >= timeout_s - 0.5, (
        "the empty target list was believed %.2f s after the last node went, before the "
        "%.0f s session timeout (GET /targets: %s)" % (dropped, timeout_s, proxy.targets()))
    assert harness.get(proxy.port, "/").status == 503
