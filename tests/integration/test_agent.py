"""`ringmaster agent` against a real ZooKeeper server (ARCHITECTURE.md §1, issue 3 item 1).

What a user of the agent relies on, checked in ZooKeeper itself:
  * the ephemeral node /targets/<host>:<port> exists, owned by the agent's session, with a
    decimal count (0 at first creation), and /targets (and a missing chroot) get created;
  * SIGTERM removes the node at once, then the agent exits 0;
  * ZooKeeper absent at start, restarted, a member of the ensemble lost, or the session
    expired: the agent keeps going and the node comes back, exactly once, with the last count
    proxies wrote;
  * a leftover of a crashed run is replaced, never duplicated; two live agents for one
    target do not fight over the node;
  * with --health-path the node exists only while the backend answers 2xx;
  * --content-version writes /cacheAge only when the value differs.

Sessions use a 2 s timeout and health checks a 100 ms interval so the suite stays quick.
"""

import signal
import subprocess

import pytest

from harness import ReservedPort
from zk import (  # noqa: F401  (fixtures are used by name)
    ZkCtl, start_agent, start_zk_server, wait_for, zk, zk_ensemble, zk_server)

HEALTH = dict(health_path="/healthz", health_interval_ms=100, health_timeout_ms=500,
              health_rise=2, health_fall=2)


def node_path(target, targets="/targets"):
    return "%s/%s" % (targets, target if isinstance(target, str) else target.addr)


def wait_node(ctl, path, owner=None, data=None, timeout=10.0):
    """Polls until `path` exists (owned by session `owner`, holding `data`, when given);
    returns its stat."""
    def check():
        s = ctl.stat(path)
        if s is None or (owner is not None and s["ephemeralOwner"] != owner):
            return None
        if data is not None and ctl.get(path) != data:
            return None
        return s
    return wait_for(check, timeout, "%s (owner %s, data %r)" % (
        path, hex(owner) if owner else "any", data))


def wait_no_node(ctl, path, timeout=10.0):
    wait_for(lambda: not ctl.exists(path), timeout, "%s to be gone" % path)


def server_ctl(server, chroot=""):
    return ZkCtl(server.connect_string(chroot))


# ---------------------------------------------------------------------------------------
# Registration

def test_agent_creates_targets_path_and_ephemeral_node_with_count_zero(zk, start_agent):
    assert zk.ctl.ls("/") == []
    agent = start_agent(zk.connect, "127.0.0.1:8081")
    session = agent.wait_session()
    stat = wait_node(zk.ctl, "/targets/127.0.0.1:8081", owner=session)
    assert zk.ctl.get("/targets/127.0.0.1:8081") == "0"
    assert stat["version"] == 0
    assert zk.ctl.ls("/targets") == ["127.0.0.1:8081"]
    assert zk.ctl.stat("/targets")["ephemeralOwner"] == 0, "/targets must be persistent"
    assert zk.ctl.get("/targets") == ""
    agent.wait_log("created node /targets/127.0.0.1:8081")


def test_agent_creates_missing_chroot_then_targets_under_it(zk, start_agent):
    chroot = zk.chroot + "/app"   # does not exist yet
    assert zk.root.stat(chroot) is None
    agent = start_agent(zk.server.connect_string(chroot), "127.0.0.1:8082")
    session = agent.wait_session()
    wait_node(zk.root, chroot + "/targets/127.0.0.1:8082", owner=session, data="0")
    assert zk.root.ls(chroot) == ["targets"]
    agent.wait_log("created the chroot %s" % chroot)


def test_agent_uses_configured_paths(zk, start_agent):
    agent = start_agent(zk.connect, "127.0.0.1:8083", targets_path="/svc/web/targets",
                        cache_version_path="/svc/web/version", content_version="abc")
    session = agent.wait_session()
    wait_node(zk.ctl, "/svc/web/targets/127.0.0.1:8083", owner=session, data="0")
    wait_for(lambda: zk.ctl.get("/svc/web/version") == "abc", 10, "/svc/web/version")
    assert zk.ctl.stat("/targets") is None


def test_sigterm_removes_node_then_exits_0(zk, start_agent):
    agent = start_agent(zk.connect, "127.0.0.1:8084", session_timeout_ms=30000)
    wait_node(zk.ctl, "/targets/127.0.0.1:8084", owner=agent.wait_session())
    assert agent.terminate(timeout=10) == 0
    # Gone as soon as the process is: the agent deleted it, the 30 s session timeout played
    # no part.
    assert not zk.ctl.exists("/targets/127.0.0.1:8084")
    log = agent.log()
    assert log.index("removed node /targets/127.0.0.1:8084") < log.index("stopped")


def test_sigint_also_stops_cleanly(zk, start_agent):
    agent = start_agent(zk.connect, "127.0.0.1:8085", session_timeout_ms=30000)
    wait_node(zk.ctl, "/targets/127.0.0.1:8085", owner=agent.wait_session())
    agent.process.send_signal(signal.SIGINT)
    assert agent.process.wait(10) == 0
    assert not zk.ctl.exists("/targets/127.0.0.1:8085")


def test_sighup_is_logged_and_the_node_stays(zk, start_agent):
    agent = start_agent(zk.connect, "127.0.0.1:8087", session_timeout_ms=30000)
    owner = agent.wait_session()
    wait_node(zk.ctl, "/targets/127.0.0.1:8087", owner=owner)
    agent.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in agent.log() or not agent.process.alive(), 10,
             "the agent to log the SIGHUP")
    assert agent.process.alive(), "SIGHUP killed the agent: %s" % agent.process.returncode
    wait_node(zk.ctl, "/targets/127.0.0.1:8087", owner=owner)
    assert agent.terminate(timeout=10) == 0


def test_node_deleted_by_another_client_is_recreated(zk, start_agent):
    agent = start_agent(zk.connect, "127.0.0.1:8086", verbose=True)
    session = agent.wait_session()
    path = "/targets/127.0.0.1:8086"
    wait_node(zk.ctl, path, owner=session)
    zk.ctl.set(path, "17")
    agent.wait_log("is ours, count 17")
    zk.ctl.delete(path)
    stat = wait_node(zk.ctl, path, owner=session, data="17")
    assert stat["version"] == 0
    agent.wait_log("re-created node %s (count 17" % path)


# ---------------------------------------------------------------------------------------
# ZooKeeper away, restarted, failing over, expiring sessions

@pytest.mark.slow
def test_agent_started_before_zookeeper_registers_once_it_starts(start_zk_server, start_agent):
    server = start_zk_server(start=False)
    agent = start_agent(server.connect_string(), "127.0.0.1:8087")
    agent.wait_log("unreachable; retrying in", timeout=15)
    assert agent.alive()
    server.start()
    session = agent.wait_session(timeout=20)
    wait_node(server_ctl(server), "/targets/127.0.0.1:8087", owner=session, data="0", timeout=20)
    agent.wait_log("connected to ZooKeeper")


@pytest.mark.slow
def test_short_zookeeper_restart_keeps_the_session_and_the_node(start_zk_server, start_agent):
    server = start_zk_server()
    ctl = server_ctl(server)
    agent = start_agent(server.connect_string(), "127.0.0.1:8088", session_timeout_ms=15000)
    session = agent.wait_session()
    before = wait_node(ctl, "/targets/127.0.0.1:8088", owner=session)
    server.restart()
    agent.wait_log("session 0x%x resumed" % session, timeout=20)
    after = wait_node(ctl, "/targets/127.0.0.1:8088", owner=session)
    assert after["czxid"] == before["czxid"], "the node was re-created, not kept"
    assert agent.session_id() == session


def test_session_expiry_recreates_node_with_last_count(zk, start_agent):
    agent = start_agent(zk.connect, "127.0.0.1:8089", verbose=True)
    first = agent.wait_session()
    path = "/targets/127.0.0.1:8089"
    wait_node(zk.ctl, path, owner=first, data="0")
    zk.ctl.set(path, "42")               # what a proxy's flush would write
    agent.wait_log("is ours, count 42")  # the agent's data watch saw it

    assert agent.expire_session(zk.ctl) == first

    second = agent.wait_session(other_than=first, timeout=15)
    stat = wait_node(zk.ctl, path, owner=second, data="42", timeout=15)
    assert stat["version"] == 0
    assert zk.ctl.ls("/targets") == ["127.0.0.1:8089"]
    agent.wait_log("session 0x%x expired" % first)
    agent.wait_log("re-created node %s (count 42" % path)
    assert agent.alive()


def test_stale_node_of_killed_agent_is_replaced_with_its_count(zk, start_agent):
    path = "/targets/127.0.0.1:8091"
    crashed = start_agent(zk.connect, "127.0.0.1:8091", name="crashed", session_timeout_ms=30000)
    old = crashed.wait_session()
    wait_node(zk.ctl, path, owner=old)
    zk.ctl.set(path, "7")
    crashed.kill()
    assert zk.ctl.stat(path)["ephemeralOwner"] == old   # lingers: its session lives 30 s

    agent = start_agent(zk.connect, "127.0.0.1:8091", name="restarted")
    new = agent.wait_session()
    assert new != old
    wait_node(zk.ctl, path, owner=new, data="7")
    assert zk.ctl.ls("/targets") == ["127.0.0.1:8091"]
    agent.wait_log("removed stale node %s owned by session 0x%x" % (path, old))


def test_two_live_agents_for_one_target_do_not_fight(zk, start_agent):
    path = "/targets/127.0.0.1:8092"
    first = start_agent(zk.connect, "127.0.0.1:8092", name="first")
    wait_node(zk.ctl, path, owner=first.wait_session())
    # The second one takes the first's node for a crash leftover (it cannot tell) and removes
    # it, once; from then on whichever agent finds the other's node waits for it to go.
    second = start_agent(zk.connect, "127.0.0.1:8092", name="second")
    second.wait_session()
    waiting_text = "another live agent for this target? waiting for it to go"
    waiter = wait_for(lambda: next((a for a in (first, second) if waiting_text in a.log()), None),
                      10, "one agent to wait for the other")
    owner = second if waiter is first else first
    stat = wait_node(zk.ctl, path, owner=owner.session_id())
    assert waiting_text not in owner.log()
    assert zk.ctl.ls("/targets") == ["127.0.0.1:8092"]
    # The waiter neither touched the node nor took it over again meanwhile.
    assert zk.ctl.stat(path)["czxid"] == stat["czxid"], "the node changed hands again"
    assert waiter.log().count("removed stale node") <= 1
    # When the owner leaves, the waiter takes over.
    assert owner.terminate() == 0
    wait_node(zk.ctl, path, owner=waiter.session_id())
    assert zk.ctl.ls("/targets") == ["127.0.0.1:8092"]


def test_agent_keeps_its_session_when_its_ensemble_member_dies(zk_ensemble, start_agent):
    ctl = ZkCtl(zk_ensemble.connect_string())
    agent = start_agent(zk_ensemble.connect_string(), "127.0.0.1:8093", session_timeout_ms=10000)
    session = agent.wait_session(timeout=20)
    before = wait_node(ctl, "/targets/127.0.0.1:8093", owner=session)
    wait_for(lambda: zk_ensemble.serving_session(session) is not None, 10,
             "the agent's session to show up in a member's `cons`")
    member = zk_ensemble.serving_session(session)
    zk_ensemble.kill(member)

    def reconnected_elsewhere():
        i = zk_ensemble.serving_session(session)
        return i is not None and i != member
    wait_for(reconnected_elsewhere, 20, "the agent to reconnect to another member")
    agent.wait_log("session 0x%x resumed" % session, timeout=20)
    after = wait_node(ctl, "/targets/127.0.0.1:8093", owner=session, timeout=20)
    assert after["czxid"] == before["czxid"], "the node was re-created, not kept"
    assert agent.session_id() == session
    # And it still reacts: a deleted node comes back under the same session.
    ctl.delete("/targets/127.0.0.1:8093")
    wait_node(ctl, "/targets/127.0.0.1:8093", owner=session, timeout=20)


# ---------------------------------------------------------------------------------------
# Health checks

def test_health_checks_hold_the_node_only_while_the_backend_is_healthy(
        zk, start_agent, start_backend):
    backend = start_backend("web")
    path = node_path(backend)
    agent = start_agent(zk.connect, backend.addr, verbose=True, **HEALTH)
    session = agent.wait_session()
    wait_node(zk.ctl, path, owner=session, data="0")
    agent.wait_log("health up")
    assert any(r["target"] == "/healthz" for r in backend.requests())
    zk.ctl.set(path, "9")
    agent.wait_log("is ours, count 9")

    port = backend.port
    backend.stop()
    wait_no_node(zk.ctl, path)
    agent.wait_log("health down: 2 failed checks")

    start_backend("web", port=port)
    wait_node(zk.ctl, path, owner=session, data="9")   # back, count carried over
    agent.wait_log("health up", count=2)
    assert zk.ctl.ls("/targets") == [backend.addr]


def test_non_2xx_health_answers_count_as_failures(zk, start_agent, start_backend):
    backend = start_backend("web")
    flags = dict(HEALTH, health_path="/status?code=503")
    agent = start_agent(zk.connect, backend.addr, verbose=True, **flags)
    agent.wait_session()
    agent.wait_log("health check failed: status 503", count=4)
    assert not zk.ctl.exists(node_path(backend))
    assert zk.ctl.ls("/targets") == []


def test_backend_that_never_answers_never_registers(zk, start_agent):
    dead = ReservedPort()   # bound, not listening: connects are refused
    try:
        agent = start_agent(zk.connect, dead.addr, verbose=True, **HEALTH)
        agent.wait_session()
        agent.wait_log("health check failed: connect:", count=4)
        assert not zk.ctl.exists(node_path(dead.addr))
    finally:
        dead.close()


# ---------------------------------------------------------------------------------------
# Content version

def test_content_version_is_written_only_when_it_differs(zk, start_agent):
    first = start_agent(zk.connect, "127.0.0.1:8094", name="v1-first", content_version="v1")
    wait_for(lambda: zk.ctl.get("/cacheAge") == "v1", 10, "/cacheAge = v1")
    written = zk.ctl.stat("/cacheAge")
    assert written["ephemeralOwner"] == 0
    first.wait_log('created as "v1"')
    assert first.terminate() == 0

    same = start_agent(zk.connect, "127.0.0.1:8094", name="v1-again", content_version="v1")
    same.wait_log('content version at /cacheAge is already "v1"')
    unchanged = zk.ctl.stat("/cacheAge")
    assert (unchanged["mzxid"], unchanged["version"]) == (written["mzxid"], written["version"])
    assert same.terminate() == 0

    changed = start_agent(zk.connect, "127.0.0.1:8094", name="v2", content_version="v2")
    wait_for(lambda: zk.ctl.get("/cacheAge") == "v2", 10, "/cacheAge = v2")
    assert zk.ctl.stat("/cacheAge")["version"] == written["version"] + 1
    changed.wait_log('set to "v2" (was "v1")')


def test_agent_without_content_version_leaves_cache_age_alone(zk, start_agent):
    zk.ctl.create("/cacheAge", "keep")
    agent = start_agent(zk.connect, "127.0.0.1:8095")
    wait_node(zk.ctl, "/targets/127.0.0.1:8095", owner=agent.wait_session())
    assert zk.ctl.get("/cacheAge") == "keep"
    assert zk.ctl.stat("/cacheAge")["version"] == 0


# ---------------------------------------------------------------------------------------
# Command line

@pytest.mark.parametrize("args", [
    [],
    ["--target", "127.0.0.1:8080"],                                   # no --zk
    ["--zk", "127.0.0.1:2181"],                                       # no --target
    ["--zk", "127.0.0.1:2181", "--target", "nope"],
    ["--zk", "127.0.0.1:2181", "--target", "127.0.0.1:0"],
    ["--zk", "127.0.0.1:2181", "--target", "127.0.0.1:8080", "--health-rise", "0"],
    ["--zk", "127.0.0.1:2181", "--target", "127.0.0.1:8080", "--health-interval-ms", "0"],
    ["--zk", "127.0.0.1:2181", "--target", "127.0.0.1:8080", "--session-timeout-ms", "10"],
    ["--zk", "127.0.0.1:2181", "--target", "127.0.0.1:8080", "--bogus"],
    ["--zk", "127.0.0.1:2181", "--target", "127.0.0.1:8080", "--health-path"],
    ["--zk", "127.0.0.1:2181", "--target", "127.0.0.1:8080", "--listen", "127.0.0.1:1"],
])
def test_bad_agent_flags_exit_2_with_one_line(ringmaster_bin, args):
    p = subprocess.run([str(ringmaster_bin), "agent"] + args, capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    stderr = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 2, (args, p.returncode, stderr)
    assert stderr.count("\n") == 1 and stderr.startswith("ringmaster: "), stderr
    assert p.stdout == b""
