"""Registries other tools write: nerve, Finagle ServerSets, Curator (issue 16; README "Other
registries").

Nodes are created here with kazoo exactly as each tool creates them (same create modes, names
and JSON; see README), against a real ZooKeeper server, with real backends and clients:
  * routing follows registrations joining and leaving, in every format;
  * ServerSet `status` and Curator `enabled` are honoured, also when changed in place;
  * two registrations of one host:port route once; a malformed node is skipped and counted;
  * nerve weights set the shares;
  * counts are exact under the ringmaster-owned counts path, with one proxy and with a fleet;
  * `ringmaster agent --format ...` registers what the tools register, read back field by field
    and routed by the proxy.
"""

import json
import uuid

import pytest

from harness import wait_until
from registrylib import (COUNTS, curator_register, kz, nerve_register,  # noqa: F401  (kz: fixture)
                         serverset_data, serverset_join)
from zkproxy import (  # noqa: F401  (start_zk_proxy is a fixture, used by name)
    LoadClient, share_report, start_zk_proxy, wait_counts_sum)
from zk import start_agent, wait_for, zk, zk_server  # noqa: F401  (fixtures are used by name)


def load(proxy, total, connections=4):
    client = LoadClient(proxy.port, connections=connections, total=total).run()
    client.assert_all_ok()
    assert client.answered == total
    return client


# ---------------------------------------------------------------------------------------

def test_nerve_joins_leaves_duplicates_malformed_and_exact_counts(zk, kz, start_backend,
                                                                   start_zk_proxy):
    path = "/nerve/services/web/services"
    b1, b2 = start_backend("one"), start_backend("two")
    n1 = nerve_register(kz, path, b1, "i-one")
    proxy = start_zk_proxy(zk.connect, targets_path=path, targets_format="nerve")
    proxy.wait_routing([b1.addr])
    # Joins: the path-encoded form; a second registration of b1 (a restarted nerve whose old
    # session has not expired yet) routes once; a node that is not nerve's is skipped.
    nerve_register(kz, path, b2, "i-two", path_encoding=True)
    n1_again = nerve_register(kz, path, b1, "i-one")
    kz.create(path + "/garbage_", b"not json", ephemeral=True, sequence=True)
    proxy.wait_routing([b1.addr, b2.addr])
    wait_for(lambda: proxy.targets()["registry"]["malformed"] == 1, 10, "the malformed node counted")
    registry = proxy.targets()["registry"]
    assert registry["format"] == "nerve"
    assert registry["nodes"] == 4 and registry["routed"] == 2 and registry["duplicates"] == 1, registry
    metrics = proxy.metrics()
    assert metrics['ringmaster_registry_nodes{state="malformed"}'] == 1
    assert metrics['ringmaster_registry_nodes{state="duplicate"}'] == 1
    assert metrics["ringmaster_registry_malformed_reads_total"] >= 1
    assert proxy.alive()

    client = load(proxy, 400)
    shares = client.by_backend()
    print("nerve, two targets:", share_report(shares, client.answered))
    assert set(shares) == {"one", "two"}
    # Counts live under the ringmaster-owned path, never in nerve's nodes; exact.
    counts = wait_counts_sum(zk.ctl, 400, [proxy], path=COUNTS)
    assert counts == {b1.addr: shares["one"], b2.addr: shares["two"]}
    for child in kz.get_children(path):
        data, _ = kz.get("%s/%s" % (path, child))
        assert not data.isdigit(), "a count was written into nerve's node %s" % child
    assert zk.ctl.stat("%s/%s" % (COUNTS, b1.addr))["ephemeralOwner"] == 0  # persistent

    # Leaves: b1 goes only when both its registrations are gone.
    kz.delete(n1)
    wait_for(lambda: proxy.targets()["registry"]["nodes"] == 3, 10, "one nerve node fewer")
    assert proxy.routing() == sorted([b1.addr, b2.addr])
    kz.delete(n1_again)
    proxy.wait_routing([b2.addr])
    client = load(proxy, 100)
    assert client.by_backend() == {"two": 100}
    counts = wait_counts_sum(zk.ctl, 500, [proxy], path=COUNTS)
    assert counts[b1.addr] == shares["one"]  # kept after b1 left: a cumulative total


def test_serverset_status_and_named_endpoint(zk, kz, start_backend, start_zk_proxy, dead_port):
    path = "/aurora/jobs/web"
    b1, b2 = start_backend("one"), start_backend("two")

    def member(backend, status):
        # Routing goes to the "http" additional endpoint; serviceEndpoint is a port nothing
        # listens on (the thrift port, say), so a wrong choice fails the requests.
        host, port = backend.addr.rsplit(":", 1)
        return serverset_data(host, dead_port.port, status, {"http": {"host": host, "port": int(port)}},
                              shard=0)

    m1 = serverset_join(kz, path, member(b1, "ALIVE"))
    m2 = serverset_join(kz, path, member(b2, "STARTING"))
    kz.create(path + "/vector_", b"{}", ephemeral=True, sequence=True)  # not a member: ignored
    proxy = start_zk_proxy(zk.connect, targets_path=path, targets_format="serverset",
                           serverset_endpoint="http")
    proxy.wait_routing([b1.addr])
    registry = proxy.targets()["registry"]
    assert registry["not_routed"] == 1 and registry["ignored"] == 1 and registry["malformed"] == 0, registry
    # Status changes in place (setData) are followed.
    kz.set(m2, member(b2, "ALIVE"))
    proxy.wait_routing([b1.addr, b2.addr])
    client = load(proxy, 200)
    assert set(client.by_backend()) == {"one", "two"}
    kz.set(m1, member(b1, "DEAD"))
    proxy.wait_routing([b2.addr])
    client = load(proxy, 50)
    assert client.by_backend() == {"two": 50}
    kz.delete(m2)
    proxy.wait_routing([])
    wait_counts_sum(zk.ctl, 250, [proxy], path=COUNTS)


def test_curator_enabled_and_exact_counts_in_a_fleet(zk, kz, start_backend, start_zk_proxy):
    base, name = "/discovery", "web"
    path = "%s/%s" % (base, name)
    b1, b2 = start_backend("one"), start_backend("two")
    curator_register(kz, base, name, b1)  # Curator before 4.x writes no "enabled"
    p2 = curator_register(kz, base, name, b2, enabled=False)
    # Two proxies: the leader writes both proxies' counts with the ledger, in one multi.
    proxies = [start_zk_proxy(zk.connect, targets_path=path, targets_format="curator")
               for _ in range(2)]
    for p in proxies:
        p.wait_routing([b1.addr])
    data, _ = kz.get(p2)
    fields = json.loads(data)
    fields["enabled"] = True
    kz.set(p2, json.dumps(fields).encode())  # ServiceDiscovery.updateService
    for p in proxies:
        p.wait_routing([b1.addr, b2.addr])
    total = 0
    for p in proxies:
        load(p, 300)
        total += 300
    counts = wait_counts_sum(zk.ctl, total, proxies, path=COUNTS)
    print("curator, fleet of two:", counts)
    assert set(counts) == {b1.addr, b2.addr}
    assert zk.ctl.exists("/ringmaster/ledger")
    roles = sorted(p.targets()["fleet"]["role"] for p in proxies)
    assert roles == ["follower", "leader"]


def test_nerve_weights_set_the_shares(zk, kz, start_backend, start_zk_proxy):
    path = "/nerve/services/weighted/services"
    b1, b2 = start_backend("one"), start_backend("two")
    nerve_register(kz, path, b1, "i-one", weight=1)
    nerve_register(kz, path, b2, "i-two", weight=3)
    proxy = start_zk_proxy(zk.connect, targets_path=path, targets_format="nerve")
    proxy.wait_routing([b1.addr, b2.addr])
    rows = proxy.target_rows()
    assert (rows[b1.addr]["weight"], rows[b2.addr]["weight"]) == (1, 3), rows
    client = load(proxy, 2000)
    shares = client.by_backend()
    print("nerve weights 1:3:", share_report(shares, client.answered))
    assert abs(shares.get("two", 0) / 2000.0 - 0.75) <= 0.03, shares
    counts = wait_counts_sum(zk.ctl, 2000, [proxy], path=COUNTS)
    assert counts == {b1.addr: shares["one"], b2.addr: shares["two"]}


@pytest.mark.parametrize("fmt", ["nerve", "serverset", "curator"])
def test_agent_registers_as_the_tool_does(fmt, zk, kz, start_backend, start_agent,
                                          start_zk_proxy):
    path = {"nerve": "/nerve/services/web/services", "serverset": "/aurora/jobs/web",
            "curator": "/discovery/web"}[fmt]
    b = start_backend("one")
    host, port = b.addr.rsplit(":", 1)
    # (--name goes through extra_args: the fixture's own `name` is the process's name.)
    flags = {"weight": 2, "extra_args": ["--name", "i-one"]} if fmt == "nerve" else {}
    agent = start_agent(zk.connect, b.addr, targets_path=path, format=fmt, **flags)
    agent.wait_session()
    children = wait_for(lambda: kz.exists(path) and kz.get_children(path), 10,
                        "the agent's %s registration" % fmt)
    assert len(children) == 1, children
    child = children[0]
    data, stat = kz.get("%s/%s" % (path, child))
    assert stat.ephemeralOwner == agent.session_id(), "not ephemeral in the agent's session"
    fields = json.loads(data)
    if fmt == "nerve":
        assert child.startswith("i-one_") and len(child) == len("i-one_") + 10, child
        assert fields == {"host": host, "port": int(port), "name": "i-one", "weight": 2}
    elif fmt == "serverset":
        assert child.startswith("member_") and child[len("member_"):].isdigit(), child
        assert fields == {"serviceEndpoint": {"host": host, "port": int(port)},
                          "additionalEndpoints": {}, "status": "ALIVE"}
    else:
        assert str(uuid.UUID(child)) == child and child == fields["id"]
        assert fields["name"] == "web" and fields["address"] == host and fields["port"] == int(port)
        assert fields["sslPort"] is None and fields["payload"] is None and fields["uriSpec"] is None
        assert fields["serviceType"] == "DYNAMIC" and fields["enabled"] is True
        assert isinstance(fields["registrationTimeUTC"], int)
    # Our own reader routes it (the readers are what the unit tables check against each tool).
    # (A short session timeout: the last registration vanishing is believed after one, as
    # every target vanishing at once is in our own layout — README "Static stability".)
    proxy = start_zk_proxy(zk.connect, targets_path=path, targets_format=fmt,
                           session_timeout_ms=2000)
    proxy.wait_routing([b.addr])
    registry = proxy.targets()["registry"]
    assert registry["malformed"] == 0 and registry["routed"] == 1, registry
    load(proxy, 20)
    wait_counts_sum(zk.ctl, 20, [proxy], path=COUNTS)
    # A session expiry takes the registration with it; the agent registers again in its new
    # session, once (a sequential node under a new name, Curator's under its id).
    old_session = agent.expire_session(zk.ctl)
    new_session = agent.wait_session(other_than=old_session)

    def registered_once_in_new_session():
        names = kz.get_children(path)
        if len(names) != 1:
            return None
        got = kz.exists("%s/%s" % (path, names[0]))
        return names[0] if got is not None and got.ephemeralOwner == new_session else None
    again = wait_for(registered_once_in_new_session, 15, "one registration in the new session")
    if fmt == "curator":
        assert again == child
    else:
        assert again != child and again.startswith(child[:-10]), (child, again)
    proxy.wait_routing([b.addr])
    # SIGTERM: the registration goes first.
    assert agent.terminate() == 0
    wait_until(lambda: kz.get_children(path) == [], 10, "the registration removed")
    proxy.wait_routing([])


def test_bad_format_flags_exit_2(ringmaster_bin):
    import subprocess
    run = lambda *a: subprocess.run([str(ringmaster_bin), *a], capture_output=True, text=True,
                                    timeout=10)
    r = run("check", "proxy", "--listen", "127.0.0.1:1", "--zk", "127.0.0.1:2181",
            "--targets-format", "eureka")
    assert r.returncode == 2 and "--targets-format" in r.stderr, r.stderr
    r = run("check", "proxy", "--listen", "127.0.0.1:1", "--zk", "127.0.0.1:2181",
            "--serverset-endpoint", "http")
    assert r.returncode == 2 and "--serverset-endpoint" in r.stderr, r.stderr
    r = run("check", "proxy", "--listen", "127.0.0.1:1", "--zk", "127.0.0.1:2181",
            "--targets-format", "nerve", "--counts-path", "/targets/counts")
    assert r.returncode == 2 and "--counts-path" in r.stderr, r.stderr
    r = run("agent", "--zk", "127.0.0.1:2181", "--target", "127.0.0.1:1", "--weight", "2")
    assert r.returncode == 2 and "--weight" in r.stderr, r.stderr


def test_agent_foreign_registration_only_while_healthy(zk, kz, start_backend, start_agent):
    """The health check holds a foreign registration as it holds our own node: gone while the
    backend is down, registered again (a new sequential name) once it is back."""
    path = "/aurora/jobs/web"
    b = start_backend("web")
    agent = start_agent(zk.connect, b.addr, targets_path=path, format="serverset",
                        health_path="/healthz", health_interval_ms=100, health_timeout_ms=500,
                        health_rise=2, health_fall=2)
    session = agent.wait_session()
    first = wait_for(lambda: kz.exists(path) and kz.get_children(path), 10, "the registration")
    port = b.port
    b.stop()
    wait_for(lambda: kz.get_children(path) == [], 10, "the registration removed while unhealthy")
    agent.wait_log("health down: 2 failed checks")
    start_backend("web", port=port)
    again = wait_for(lambda: kz.get_children(path), 10, "registered again")
    assert len(again) == 1 and again != first, (first, again)
    assert kz.exists("%s/%s" % (path, again[0])).ephemeralOwner == session
