"""Real ZooKeeper for ringmaster's integration tests: servers, ensembles, zkctl, agents.

    ZooKeeperServer    one standalone server (Debian's zookeeper package) in a temp dir:
                       start/stop/kill/restart (dataDir kept), four-letter words (ruok,
                       mntr, srvr)
    ZooKeeperEnsemble  three servers on loopback (QuorumPeerMain): leader(), kill(i), start(i)
    ZkCtl              the tests/tools/zkctl binary: get/stat/set/create/delete/recreate/ls/
                       wait-gone/expire-session
    Agent              `ringmaster agent` as a process; its session id and password come from
                       the file named by RINGMASTER_ZK_SESSION_FILE

Fixtures (import them into a test module: `from zk import zk_server, zk, ...`):

    zk_server          one server for the whole session (JVM start-up is the slow part)
    zk                 a fresh chroot on that server per test: .connect (chrooted connect
                       string), .ctl (ZkCtl on it), .root (ZkCtl without chroot), .server
    start_zk_server    factory for a private server a test may stop, kill or restart
    zk_ensemble        a private three-server ensemble
    start_agent        factory: start_agent(zk_connect, target, **flags) -> Agent

The servers and zkctl live in the test kit (tests/kit/zookeeper.py, shared with perf/ and
scripts/demo) and are re-exported here; this module adds the agent and the fixtures. Each
pytest-xdist worker is a session of its own: its own shared server, port and data dir.
"""

import itertools
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402,F401  (puts tests/ on sys.path for the kit)
from harness import ManagedProcess, wait_until  # noqa: E402
from kit.zookeeper import (JAVA, JVM_FLAGS, ZK_CLASSPATH, ZK_START_TIMEOUT_S,  # noqa: E402,F401
                           ZkCtl, ZkError, ZooKeeperEnsemble, ZooKeeperServer, expire_session,
                           find_zkctl, four_letter_word, zookeeper_available)

# ---------------------------------------------------------------------------------------
# Agents

class Agent:
    """`ringmaster agent` as a child process.

    Flags are keyword arguments with underscores for dashes (health_path="/healthz" gives
    `--health-path /healthz`; True gives a bare flag). The agent writes its session id and
    password to `session_file` each time it establishes a session."""

    DEFAULT_SESSION_TIMEOUT_MS = 2000
    STOP_TIMEOUT_S = 10.0

    def __init__(self, binary, tmp_dir, zk_connect, target, name="agent",
                 session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS, extra_args=(), env=None, **flags):
        self.binary = Path(binary)
        self.name = name
        self.dir = Path(tmp_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zk_connect = zk_connect
        self.target = target if isinstance(target, str) else target.addr
        self.session_file = self.dir / "session"
        if self.session_file.exists():
            self.session_file.unlink()
        argv = [self.binary, "agent", "--zk", zk_connect, "--target", self.target]
        if session_timeout_ms is not None:
            argv += ["--session-timeout-ms", session_timeout_ms]
        for key, value in flags.items():
            if value is None or value is False:
                continue
            argv.append("--" + key.replace("_", "-"))
            if value is not True:
                argv.append(value)
        argv += list(extra_args)
        full_env = dict(os.environ if env is None else env)
        full_env["RINGMASTER_ZK_SESSION_FILE"] = str(self.session_file)
        self.process = ManagedProcess(argv, self.dir / "agent.log", env=full_env, name=name)

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.alive()

    def log(self):
        return self.process.output()

    def wait_log(self, text, timeout=10.0, count=1):
        """Waits until `text` appears `count` times in the agent's output."""
        def seen():
            if self.log().count(text) >= count:
                return True
            if not self.alive():
                raise AssertionError("%s exited (%s) before logging %r:\n%s" % (
                    self.name, self.process.returncode, text, self.process.output_tail()))
            return False
        wait_until(seen, timeout, "%s to log %r" % (self.name, text))

    def session(self):
        """(session id hex, password hex) of the latest session, or None before the first."""
        try:
            text = self.session_file.read_text().strip()
        except OSError:
            return None
        parts = text.split()
        return (parts[0], parts[1]) if len(parts) == 2 else None

    def session_id(self):
        s = self.session()
        return int(s[0], 16) if s else None

    def wait_session(self, timeout=15.0, other_than=None):
        """Session id once established (and different from `other_than` when given)."""
        return wait_until(
            lambda: (lambda sid: sid if sid and sid != other_than else None)(self.session_id()),
            timeout, "%s to establish a ZooKeeper session" % self.name)

    def expire_session(self, ctl):
        """Expires the agent's current session (see expire_session()); returns its id."""
        session = self.session()
        assert session, "%s has no session yet" % self.name
        expire_session(ctl, self.pid, session)
        return int(session[0], 16)

    def terminate(self, timeout=None):
        """SIGTERM; the exit code (None if still running after `timeout`)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(self.STOP_TIMEOUT_S if timeout is None else timeout)

    def kill(self):
        """SIGKILL: no clean-up, the node lingers until the session times out."""
        self.process.kill()

    def teardown_problems(self):
        problems = []
        died_on_its_own = not self.alive() and self.process.signalled_by_us is None
        code = self.process.returncode
        if died_on_its_own and code not in (None, 0):
            problems.append("%s exited by itself during the test with code %s" % (self.name, code))
        if self.alive():
            code = self.process.stop(signal.SIGTERM, self.STOP_TIMEOUT_S)
            if code != 0:
                problems.append("%s: SIGTERM in teardown gave exit code %s" % (self.name, code))
        report = self.process.sanitizer_report()
        if report:
            problems.append("%s: sanitizer report:\n%s" % (self.name, report))
        return problems


# ---------------------------------------------------------------------------------------
# Fixtures

_track = harness.track  # failed tests show the output of every process they started


class _ServerOutput:
    """Stands in for a server's ManagedProcess in failure reports: whichever process the
    server runs now (it may have been restarted), and the tail of its zookeeper.log."""

    def __init__(self, server):
        self.server = server
        self.name = "zookeeper " + server.name

    @property
    def pid(self):
        return self.server.process.pid if self.server.process else 0

    @property
    def argv(self):
        return [str(a) for a in self.server.argv()]

    def output_tail(self, lines=120):
        return self.server.log_tail(lines)


def _require_zookeeper():
    if not zookeeper_available():
        pytest.fail("ZooKeeper is not installed (%s, /usr/share/java/zookeeper.jar): "
                    "scripts/setup installs it" % JAVA, pytrace=False)
    zkctl = find_zkctl()
    if not zkctl.exists():
        pytest.fail("zkctl not found at %s: build the zkctl target (ctest sets "
                    "RINGMASTER_BUILD_DIR)" % zkctl, pytrace=False)


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory):
    """One standalone server shared by the session's tests; each test works in its own
    chroot (the `zk` fixture). Tests that stop the server use start_zk_server instead."""
    _require_zookeeper()
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"), name="shared")
    yield server
    server.stop()


_chroot_ids = itertools.count(1)


class ZkView:
    """A test's private corner of the shared server: a chroot and clients for it."""

    def __init__(self, server, chroot):
        self.server = server
        self.chroot = chroot
        self.connect = server.connect_string(chroot)
        self.ctl = ZkCtl(self.connect)
        self.root = ZkCtl(server.connect_string())


@pytest.fixture
def zk(zk_server, request):
    if not zk_server.alive():
        zk_server.start()
    _track(request, _ServerOutput(zk_server))
    chroot = "/t%d-%d" % (os.getpid(), next(_chroot_ids))
    view = ZkView(zk_server, chroot)
    view.root.create(chroot)
    return view


@pytest.fixture
def start_zk_server(tmp_path, request):
    _require_zookeeper()
    started = []

    def start(name=None, port=None, start=True, **flags):
        name = name or "zk-%d" % (len(started) + 1)
        s = ZooKeeperServer(tmp_path, name=name, port=port, start=False, **flags)
        started.append(s)
        _track(request, _ServerOutput(s))
        if start:
            s.start()
        return s

    yield start
    for s in started:
        s.kill()


@pytest.fixture
def zk_ensemble(tmp_path, request):
    _require_zookeeper()
    ensemble = ZooKeeperEnsemble(tmp_path / "ensemble", start=False)
    for m in ensemble.members:
        _track(request, _ServerOutput(m))
    ensemble.start()
    yield ensemble
    for m in ensemble.members:
        m.kill()


@pytest.fixture
def start_agent(tmp_path, ringmaster_bin, request):
    def make(zk_connect, target, name=None, **flags):
        return Agent(ringmaster_bin, tmp_path, zk_connect, target, name=name, **flags)

    yield from harness.launcher(request, "agent", make)


def wait_for(predicate, timeout=10.0, message=None):
    """harness.wait_until with the ZooKeeper-friendly poll interval (zkctl is a process)."""
    return wait_until(predicate, timeout, message, interval_max=0.1)


__all__ = [
    "ZooKeeperServer", "ZooKeeperEnsemble", "ZkCtl", "ZkError", "Agent", "ZkView",
    "zk_server", "zk", "start_zk_server", "zk_ensemble", "start_agent", "wait_for",
    "four_letter_word", "find_zkctl", "expire_session",
]
