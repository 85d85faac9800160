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

Everything follows harness.py: ManagedProcess for children, wait_until() for polling with
deadlines, never a sleep as synchronisation.
"""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import LOOPBACK, ManagedProcess, free_port, wait_until  # noqa: E402

# ---------------------------------------------------------------------------------------
# Where things are

JAVA = "/usr/bin/java"
# Debian's zookeeper.jar names its dependencies (zookeeper-jute, netty, slf4j-api, jackson,
# commons-*, ...) in its manifest Class-Path, so the jar alone starts the server; the
# package's own scripts use "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
# (/usr/share/zookeeper/bin/zkEnv.sh). We add the slf4j -> log4j 1.2 binding so the server
# logs to a file in its temp dir (without a binding slf4j discards everything).
ZK_CLASSPATH = ":".join([
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
])
# A small, quick-starting JVM: these servers hold a handful of znodes.
JVM_FLAGS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
             "-Djava.net.preferIPv4Stack=true", "-Dzookeeper.jmx.log4j.disable=true"]
ZK_START_TIMEOUT_S = 60.0


def zookeeper_available():
    return os.path.exists(JAVA) and os.path.exists("/usr/share/java/zookeeper.jar")


def find_zkctl():
    """$RINGMASTER_BUILD_DIR/tests/tools/zkctl (ctest sets it), else <repo>/build/...;
    ZKCTL overrides both."""
    if os.environ.get("ZKCTL"):
        return Path(os.environ["ZKCTL"])
    candidates = []
    if os.environ.get("RINGMASTER_BUILD_DIR"):
        candidates.append(Path(os.environ["RINGMASTER_BUILD_DIR"]) / "tests" / "tools" / "zkctl")
    candidates.append(harness.REPO_ROOT / "build" / "tests" / "tools" / "zkctl")
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


def four_letter_word(port, word, timeout=2.0):
    """Sends a four-letter command ("ruok", "mntr", "srvr") and returns the reply text, or
    None when the server cannot be reached."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
            s.sendall(word.encode())
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None


def _parse_tabbed(text):
    out = {}
    for line in (text or "").splitlines():
        if "\t" not in line:
            continue
        key, value = line.split("\t", 1)
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def _parse_colons(text):
    out = {}
    for line in (text or "").splitlines():
        if ": " in line:
            key, value = line.split(": ", 1)
            out[key.strip()] = value.strip()
    return out


LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={log}
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n
"""


# ---------------------------------------------------------------------------------------
# Servers

class ZooKeeperServer:
    """One ZooKeeper server process. Standalone by default; an ensemble member when
    `quorum_lines` (server.N=...) and `myid` are given.

    tickTime defaults to 200 ms with minSessionTimeout 1000 ms so tests can use session
    timeouts of a second or two; sessions expire within timeout + a tick."""

    def __init__(self, tmp_dir, name="zk", port=None, tick_ms=200, min_session_timeout_ms=1000,
                 max_session_timeout_ms=60000, myid=None, quorum_lines=(), start=True,
                 jvm_flags=None, extra_config=()):
        self.name = name
        self.dir = Path(tmp_dir) / name
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tick_ms = tick_ms
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.myid = myid
        self.quorum_lines = list(quorum_lines)
        self.jvm_flags = list(JVM_FLAGS if jvm_flags is None else jvm_flags)
        self.extra_config = list(extra_config)  # e.g. "peerType=observer"
        self.log_path = self.dir / "zookeeper.log"
        self.process = None
        self._starts = 0
        if myid is not None:
            (self.data_dir / "myid").write_text("%d\n" % myid)
        self._write_config()
        if start:
            self.start()

    @property
    def addr(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def connect_string(self, chroot=""):
        return self.addr + chroot

    def _write_config(self):
        lines = [
            "tickTime=%d" % self.tick_ms,
            "dataDir=%s" % self.data_dir,
            "clientPort=%d" % self.port,
            "clientPortAddress=%s" % LOOPBACK,
            "minSessionTimeout=%d" % self.min_session_timeout_ms,
            "maxSessionTimeout=%d" % self.max_session_timeout_ms,
            "maxClientCnxns=0",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            "autopurge.purgeInterval=0",
            # Writes are fsynced by default; tests on tmpfs or a busy disk do not need it.
            "forceSync=no",
        ]
        if self.quorum_lines:
            lines += ["initLimit=20", "syncLimit=10", "standaloneEnabled=false",
                      "reconfigEnabled=false"] + self.quorum_lines
        lines += self.extra_config
        self.config_path = self.dir / "zoo.cfg"
        self.config_path.write_text("\n".join(lines) + "\n")
        self.log4j_path = self.dir / "log4j.properties"
        self.log4j_path.write_text(LOG4J_PROPERTIES.format(log=self.log_path))

    def argv(self):
        main = ("org.apache.zookeeper.server.quorum.QuorumPeerMain" if self.quorum_lines
                else "org.apache.zookeeper.server.ZooKeeperServerMain")
        return ([JAVA] + self.jvm_flags +
                ["-Dlog4j.configuration=file:%s" % self.log4j_path, "-cp", ZK_CLASSPATH,
                 main, self.config_path])

    def launch(self):
        """Starts the process without waiting for it to serve (an ensemble starts all its
        members first)."""
        if self.process is not None and self.process.alive():
            return
        self._starts += 1
        out = self.dir / ("stdout.log" if self._starts == 1 else "stdout.%d.log" % self._starts)
        self.process = ManagedProcess(self.argv(), out, name="zookeeper " + self.name)

    def start(self, timeout=ZK_START_TIMEOUT_S):
        """Starts (or restarts, keeping dataDir) and waits until it answers ruok with imok."""
        self.launch()
        self.wait_serving(timeout)
        return self

    def wait_serving(self, timeout=ZK_START_TIMEOUT_S):
        def serving():
            if not self.process.alive():
                raise AssertionError("ZooKeeper %s exited (%s):\n%s\n--- zookeeper.log ---\n%s" % (
                    self.name, self.process.returncode, self.process.output_tail(),
                    self.log_tail()))
            return self.is_serving()
        wait_until(serving, timeout, "ZooKeeper %s to serve on port %d" % (self.name, self.port),
                   interval_max=0.1)

    def is_serving(self):
        """True when the server answers requests: `imok` to ruok, and for an ensemble member
        a quorum role (srvr Mode: leader/follower)."""
        if four_letter_word(self.port, "ruok", timeout=1.0) != "imok":
            return False
        if not self.quorum_lines:
            return True
        return self.mode() in ("leader", "follower", "observer")

    def stop(self, timeout=10.0):
        """SIGTERM (SIGKILL after `timeout`); dataDir is kept for a restart."""
        if self.process is not None:
            self.process.stop(signal.SIGTERM, timeout)

    def kill(self):
        if self.process is not None:
            self.process.kill()

    def restart(self, timeout=ZK_START_TIMEOUT_S):
        self.stop()
        return self.start(timeout)

    def alive(self):
        return self.process is not None and self.process.alive()

    def ruok(self):
        return four_letter_word(self.port, "ruok") == "imok"

    def mntr(self):
        """The `mntr` reply as a dict (numbers converted): zk_packets_received etc."""
        return _parse_tabbed(four_letter_word(self.port, "mntr"))

    def srvr(self):
        return _parse_colons(four_letter_word(self.port, "srvr"))

    def session_ids(self):
        """Ids of the sessions connected to this server right now (from `cons`)."""
        out = set()
        for part in (four_letter_word(self.port, "cons") or "").split("sid=0x")[1:]:
            digits = part.split(",", 1)[0].split(")", 1)[0]
            try:
                out.add(int(digits, 16))
            except ValueError:
                pass
        return out

    def mode(self):
        """"standalone", "leader", "follower", or None when not serving."""
        return self.srvr().get("Mode")

    def log_tail(self, lines=60):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class ZooKeeperEnsemble:
    """`size` voting servers on loopback with distinct client, peer and election ports, plus
    `observers` observers (members[size:]: they serve clients and forward writes, but do not
    vote; `server.N=host:peer:election:observer` in every config, `peerType=observer` in
    theirs)."""

    def __init__(self, tmp_dir, size=3, tick_ms=200, start=True, observers=0, **server_flags):
        self.size = size
        ports = [(free_port(), free_port(), free_port()) for _ in range(size + observers)]
        quorum = ["server.%d=%s:%d:%d%s" % (i + 1, LOOPBACK, peer, election,
                                           ":observer" if i >= size else "")
                  for i, (_, peer, election) in enumerate(ports)]
        self.members = [
            ZooKeeperServer(tmp_dir, name="zk-%d" % (i + 1), port=client, tick_ms=tick_ms,
                            myid=i + 1, quorum_lines=quorum, start=False,
                            extra_config=["peerType=observer"] if i >= size else (),
                            **server_flags)
            for i, (client, _, _) in enumerate(ports)]
        if start:
            self.start()

    def start(self, timeout=ZK_START_TIMEOUT_S):
        for m in self.members:
            m.launch()
        for m in self.members:
            m.wait_serving(timeout)
        return self

    def connect_string(self, chroot=""):
        return ",".join(m.addr for m in self.members) + chroot

    def leader(self):
        """Index of the member that says it leads, or None."""
        for i, m in enumerate(self.members):
            if m.alive() and m.mode() == "leader":
                return i
        return None

    def wait_leader(self, timeout=30.0, exclude=()):
        return wait_until(lambda: (lambda i: i if i is not None and i not in exclude else None)(
            self.leader()), timeout, "an ensemble leader")

    def kill(self, index):
        self.members[index].kill()

    def serving_session(self, session_id):
        """Index of the live member the session is connected to, or None."""
        for i, m in enumerate(self.members):
            if m.alive() and session_id in m.session_ids():
                return i
        return None

    def start_member(self, index, timeout=ZK_START_TIMEOUT_S):
        self.members[index].start(timeout)

    def stop(self):
        for m in self.members:
            m.stop()


# ---------------------------------------------------------------------------------------
# zkctl

class ZkError(AssertionError):
    """zkctl exited 1: `code` is ZooKeeper's error name ("NONODE", "BADVERSION", ...)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class ZkCtl:
    """The zkctl binary against one connect string (which may carry a chroot)."""

    def __init__(self, connect, binary=None, timeout_ms=10000):
        self.connect = connect
        self.binary = Path(binary) if binary else find_zkctl()
        self.timeout_ms = timeout_ms

    def run(self, *args, timeout_ms=None):
        """Runs one command; returns stdout. ZkError on exit 1, AssertionError otherwise."""
        argv = [str(self.binary), "--zk", self.connect,
                "--timeout-ms", str(timeout_ms or self.timeout_ms)] + [str(a) for a in args]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=(timeout_ms or self.timeout_ms) / 1000.0 + 30)
        stderr = p.stderr.decode("utf-8", "replace").strip()
        if p.returncode == 0:
            return p.stdout.decode("utf-8", "replace")
        if p.returncode == 1:
            raise ZkError(stderr.split(":", 1)[0], "zkctl %s: %s" % (" ".join(argv[5:]), stderr))
        raise AssertionError("zkctl %s exited %d: %s" % (" ".join(argv[1:]), p.returncode, stderr))

    def get(self, path):
        """Data as text, or None when the node does not exist."""
        try:
            out = self.run("get", path)
        except ZkError as e:
            if e.code == "NONODE":
                return None
            raise
        return out[:-1] if out.endswith("\n") else out

    def stat(self, path):
        """dict(version, ephemeralOwner (int), dataLength, numChildren, mzxid, czxid,
        cversion), or None when the node does not exist."""
        try:
            s = json.loads(self.run("stat", path))
        except ZkError as e:
            if e.code == "NONODE":
                return None
            raise
        s["ephemeralOwner"] = int(s["ephemeralOwner"], 16)
        return s

    def exists(self, path):
        return self.stat(path) is not None

    def ls(self, path):
        """Sorted child names, or None when the node does not exist."""
        try:
            return self.run("ls", path).split()
        except ZkError as e:
            if e.code == "NONODE":
                return None
            raise

    def set(self, path, data, version=None):
        args = ["set", path, data] + (["--version", version] if version is not None else [])
        self.run(*args)

    def create(self, path, data="", ephemeral=False, parents=False):
        args = ["create", path, data]
        if ephemeral:
            args.append("--ephemeral")
        if parents:
            args.append("--parents")
        self.run(*args)

    def delete(self, path, version=None):
        self.run(*(["delete", path] + (["--version", version] if version is not None else [])))

    def recreate(self, path, data):
        """Deletes the node and creates it again with `data` in one transaction."""
        self.run("recreate", path, data)

    def wait_gone(self, path, timeout=10.0):
        self.run("wait-gone", path, timeout_ms=int(timeout * 1000))

    def expire_session(self, session_hex, password_hex):
        self.run("expire-session", session_hex, password_hex)


def expire_session(ctl, pid, session):
    """Ends a session from outside, as a long partition would: zkctl attaches to it with its
    id and password (`session` = (id hex, password hex)) and closes it. The owner (process
    `pid`) is frozen meanwhile (SIGSTOP ... SIGCONT): running, its client would reconnect at
    once and take the session back before the close (see zkctl.cc). When it resumes, it
    finds its connection gone, reconnects and is told the session expired."""
    os.kill(pid, signal.SIGSTOP)
    try:
        ctl.expire_session(*session)
    finally:
        os.kill(pid, signal.SIGCONT)


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

def _track(request, proc):
    """Failed tests show the output of every process they started (see conftest.py)."""
    if not hasattr(request.node, "_ringmaster_processes"):
        request.node._ringmaster_processes = []
    request.node._ringmaster_processes.append(proc)


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
    started = []

    def start(zk_connect, target, name=None, **flags):
        name = name or ("agent" if not started else "agent-%d" % (len(started) + 1))
        a = Agent(ringmaster_bin, tmp_path, zk_connect, target, name=name, **flags)
        started.append(a)
        _track(request, a.process)
        return a

    yield start
    problems = []
    for a in started:
        problems += a.teardown_problems()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def wait_for(predicate, timeout=10.0, message=None):
    """harness.wait_until with the ZooKeeper-friendly poll interval (zkctl is a process)."""
    return wait_until(predicate, timeout, message, interval_max=0.1)


__all__ = [
    "ZooKeeperServer", "ZooKeeperEnsemble", "ZkCtl", "ZkError", "Agent", "ZkView",
    "zk_server", "zk", "start_zk_server", "zk_ensemble", "start_agent", "wait_for",
    "four_letter_word", "find_zkctl", "expire_session",
]
