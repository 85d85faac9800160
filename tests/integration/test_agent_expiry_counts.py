"""Counts survive an agent's session expiry (README "ZooKeeper layout").

`/targets/<host>:<port>` is ephemeral: when its agent's session expires the node, and the
cumulative count in it, vanish with the session. The agent re-creates it from the last count
*it* read, which can be behind what the proxies wrote (its re-read lags the writes, and a
session dies while the connection is down). The proxies know what they wrote and put the
node back to that total before adding anything new, so the sum in ZooKeeper stays exactly
the requests sent.

The scenario is made deterministic by freezing both agents (SIGSTOP) before any request:
each agent's last-seen count is then exactly 0 while the proxies write N. The agents stay
frozen past their 2 s session timeout, so ZooKeeper expires their sessions and deletes the
nodes; resumed (SIGCONT), they are told of the expiry and re-create their nodes at count 0.
Checked with one proxy and with a fleet of two proxies (one leader writing for both).
"""

import os
import signal

import pytest

from harness import HttpConnection
from zkproxy import (  # noqa: F401  (start_zk_proxy is a fixture, used by name)
    TARGETS, backend_requests, register_pair, start_zk_proxy, wait_counts_sum, zk_counts)
from zk import start_agent, wait_for, zk, zk_server  # noqa: F401  (fixtures)

REQUESTS_PER_PROXY = 150   # before the expiry, and again after it
EXPIRY_WAIT_S = 20         # the agents' sessions (2 s) expire well within this


def send(port, count):
    """`count` GETs through the proxy on `port`; every one must be a 200."""
    with HttpConnection(port, timeout=10.0) as c:
        for _ in range(count):
            r = c.request("GET", "/")
            assert r.status == 200, r


def owner(ctl, path):
    stat = ctl.stat(path)
    return stat["ephemeralOwner"] if stat else None


@pytest.mark.slow
@pytest.mark.parametrize("proxies", [1, 2], ids=["one-proxy", "fleet-of-two"])
def test_counts_survive_agents_session_expiry_exactly(proxies, zk, start_backend, start_agent,
                                                     start_zk_proxy):
    (b1, a1), (b2, a2) = register_pair(start_backend, start_agent, zk.connect, zk.ctl)
    backends, agents = (b1, b2), (a1, a2)
    paths = ["%s/%s" % (TARGETS, b.addr) for b in backends]
    both = sorted(b.addr for b in backends)
    ps = [start_zk_proxy(zk.connect) for _ in range(proxies)]
    for p in ps:
        p.wait_routing(both)
    if proxies > 1:
        wait_for(lambda: len(zk.ctl.ls("/ringmaster/proxies") or []) == proxies, 10,
                 "both proxies to join the fleet")
    owners = [owner(zk.ctl, path) for path in paths]

    # Agents frozen: the counts the proxies write now are never seen by them.
    for a in agents:
        os.kill(a.pid, signal.SIGSTOP)
    try:
        for p in ps:
            send(p.port, REQUESTS_PER_PROXY)
        sent = REQUESTS_PER_PROXY * proxies
        wait_counts_sum(zk.ctl, sent, proxies=ps)
        # Frozen past the session timeout: ZooKeeper expires the sessions, the nodes go.
        wait_for(lambda: not any(zk.ctl.exists(path) for path in paths), EXPIRY_WAIT_S,
                 "the agents' sessions to expire and their nodes to vanish")
    finally:
        for a in agents:
            os.kill(a.pid, signal.SIGCONT)

    # The agents re-create their nodes under new sessions, from the count they last saw (0).
    for a, path, old in zip(agents, paths, owners):
        wait_for(lambda: owner(zk.ctl, path) not in (None, old), 15,
                 "%s to re-create %s under a new session" % (a.name, path))
        assert "re-created node %s (count 0," % path in a.log(), a.log()
    # The proxies restore what they wrote: exact, with nothing left unflushed.
    counts = wait_counts_sum(zk.ctl, sent, proxies=ps)
    # And counting goes on from there.
    for p in ps:
        p.wait_routing(both)
        send(p.port, REQUESTS_PER_PROXY)
    sent *= 2
    counts = wait_counts_sum(zk.ctl, sent, proxies=ps)
    assert counts == {b.addr: backend_requests(b) for b in backends}, counts
    print("\nagents' sessions expired with %d proxies: counts %s (sum %d = requests sent)"
          % (proxies, counts, sum(counts.values())))
    assert zk_counts(zk.ctl) == counts
