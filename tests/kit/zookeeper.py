"""Real ZooKeeper (Debian's zookeeper package) for tests, benchmarks and the demo.

    ZooKeeperServer    one server in a directory of its own, on a port from port 0 unless
                       given: start/stop/kill/restart (dataDir kept), four-letter words
                       (ruok, mntr, srvr, cons)
    ZooKeeperEnsemble  voting servers (+ observers) on loopback: leader(), kill(i), start(i)
    ZkCtl              the tests/tools/zkctl binary: get/stat/set/create/delete/recreate/ls/
                       wait-gone/expire-session
    expire_session()   ends a client's session from outside

    python3 -m kit.zookeeper --dir D [--port P]   one server in the foreground until SIGTERM
                                                  or SIGINT (scripts/demo)

No pytest here: tests/integration/zk.py wraps these in fixtures; perf/ and scripts/demo use
them directly.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from kit.procs import LOOPBACK, ManagedProcess, free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]

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
    candidates.append(REPO_ROOT / "build" / "tests" / "tools" / "zkctl")
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
log4j.rootLogger={level}, FILE
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
                 jvm_flags=None, extra_config=(), force_sync=False, wrapper=(),
                 log_level="INFO", new_session=False):
        """force_sync: fsync every write (ZooKeeper's default; tests and benchmarks sharing a
        box turn it off). wrapper: argv prefix such as ["taskset", "-c", "2"]."""
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
        self.force_sync = force_sync
        self.wrapper = [str(a) for a in wrapper]
        self.log_level = log_level
        self.new_session = new_session
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
            "forceSync=%s" % ("yes" if self.force_sync else "no"),
        ]
        if self.quorum_lines:
            lines += ["initLimit=20", "syncLimit=10", "standaloneEnabled=false",
                      "reconfigEnabled=false"] + self.quorum_lines
        lines += self.extra_config
        self.config_path = self.dir / "zoo.cfg"
        self.config_path.write_text("\n".join(lines) + "\n")
        self.log4j_path = self.dir / "log4j.properties"
        self.log4j_path.write_text(LOG4J_PROPERTIES.format(log=self.log_path,
                                                                level=self.log_level))

    def argv(self):
        main = ("org.apache.zookeeper.server.quorum.QuorumPeerMain" if self.quorum_lines
                else "org.apache.zookeeper.server.ZooKeeperServerMain")
        return (self.wrapper + [JAVA] + self.jvm_flags +
                ["-Dlog4j.configuration=file:%s" % self.log4j_path, "-cp", ZK_CLASSPATH,
                 main, self.config_path])

    def launch(self):
        """Starts the process without waiting for it to serve (an ensemble starts all its
        members first)."""
        if self.process is not None and self.process.alive():
            return
        self._starts += 1
        out = self.dir / ("stdout.log" if self._starts == 1 else "stdout.%d.log" % self._starts)
        self.process = ManagedProcess(self.argv(), out, name="zookeeper " + self.name,
                                      new_session=self.new_session)

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
        """True when the server answers requests: `imok` to ruok, and a mode in srvr
        (standalone, or a quorum role for an ensemble member)."""
        if four_letter_word(self.port, "ruok", timeout=1.0) != "imok":
            return False
        # ruok says imok while the server still loads its database ("not currently serving
        # requests" to everything else); srvr names a mode only once it serves.
        return self.mode() in (("leader", "follower", "observer") if self.quorum_lines
                               else ("standalone",))

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

    def packets_received(self):
        """zk_packets_received from `mntr` (requests this server has read), 0 if unreachable."""
        return int(self.mntr().get("zk_packets_received", 0))

    def sessions_recved(self):
        """{client port: packets received} for each session connected now (from `cons`)."""
        return sessions_recved(self.port)

    def mntr(self):
        """The `mntr` reply as a dict (numbers converted): zk_packets_received etc."""
        return self.mntr_of(self.port)

    @staticmethod
    def mntr_of(port):
        return _parse_tabbed(four_letter_word(port, "mntr"))

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


def sessions_recved(port):
    """Packets each client connection has sent to the server on `port` so far (`cons`):
    {client port: recved}, sessions only (not the `cons` connection itself)."""
    out = {}
    for line in (four_letter_word(port, "cons") or "").splitlines():
        m = re.match(r"\s*/[\d.]+:(\d+)\[\d+\]\((.*)\)", line)
        if not m:
            continue
        fields = dict(kv.split("=", 1) for kv in m.group(2).split(",") if "=" in kv)
        if "sid" in fields:
            out[int(m.group(1))] = int(fields.get("recved", 0))
    return out


def main():
    ap = argparse.ArgumentParser(description="One ZooKeeper server in the foreground.")
    ap.add_argument("--dir", required=True, help="its config, data and log go here")
    ap.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
    ap.add_argument("--tick-ms", type=int, default=2000)
    a = ap.parse_args()
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    signal.signal(signal.SIGCHLD, lambda *_: None)  # so that pause() wakes when it exits
    server = ZooKeeperServer(a.dir, name="zookeeper", port=a.port or None, tick_ms=a.tick_ms,
                             min_session_timeout_ms=2 * a.tick_ms)
    print("ready %d" % server.port, flush=True)
    try:
        while not stop and server.alive():
            signal.pause()  # woken by SIGTERM/SIGINT or SIGCHLD
    finally:
        server.stop()
    return 0 if stop else 1


if __name__ == "__main__":  # PYTHONPATH=tests python3 -m kit.zookeeper ...
    sys.exit(main())
