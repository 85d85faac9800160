"""Shared machinery for perf/compare, perf/flamegraph and perf/fleet (python3 standard library only).

Processes: every child is started through `taskset -c CPUS` in its own session and killed
(process group, SIGTERM then SIGKILL) when the script exits, however it exits. Backends,
ZooKeeper and peers' configs come from the templates in perf/ (`*.in`, `@NAME@` placeholders)
filled into a temporary directory. Everything listens on 127.0.0.1 only.
"""

import atexit
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PERF_DIR = Path(__file__).resolve().parent
REPO_ROOT = PERF_DIR.parent
# The test kit (tests/kit): ZooKeeper, nginx, the HTTP reader, shared with the tests and the
# demo. perflib keeps its own names on top of it (perf/compare uses them).
sys.path.insert(0, str(REPO_ROOT / "tests"))
import kit.http  # noqa: E402
import kit.nginx  # noqa: E402
import kit.procs  # noqa: E402
import kit.zookeeper  # noqa: E402
LOOPBACK = "127.0.0.1"

# The small fixed body every backend answers with (nginx `return 200`).
BACKEND_BODY = "ringmaster perf backend: a small fixed body\n"

# The physical floors' build targets (perf/floor), built with ringmaster in the same folder.
FLOOR_TARGETS = ("floor_relay", "floor_fixed200")

# Debian 12 packages the scripts rely on: binary -> package.
REQUIRED_TOOLS = {
    "nginx": "nginx-light",
    "haproxy": "haproxy",
    "wrk": "wrk",
    "java": "zookeeper",
    "taskset": "util-linux",
    "cmake": "cmake",
    "ninja": "ninja-build",
}
ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_CLASSPATH = kit.zookeeper.ZK_CLASSPATH
ZK_JVM_FLAGS = ["-Xmx512m", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true",
                "-Dzookeeper.jmx.log4j.disable=true"]


def log(msg):
    print("[perf] %s" % msg, file=sys.stderr, flush=True)


def die(msg, code=1):
    print("perf: error: %s" % msg, file=sys.stderr, flush=True)
    sys.exit(code)


# ---------------------------------------------------------------------------------------
# CPU sets

def parse_cpus(text):
    """'0-3,8' -> [0, 1, 2, 3, 8]"""
    cpus = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            cpus.extend(range(int(a), int(b) + 1))
        else:
            cpus.append(int(part))
    if not cpus:
        raise ValueError("empty CPU list %r" % text)
    return sorted(set(cpus))


def default_cpu_sets(n=None):
    """(proxy, wrk, backends) for a box with n CPUs: the proxy gets the first quarter, wrk the
    third quarter and the backends the last quarter (16 CPUs: 0-3, 8-11, 12-15). With two
    CPUs: proxy 0, wrk and backends share 1. Override with --proxy-cpus/--wrk-cpus/--backend-cpus
    or PROXY_CPUS/WRK_CPUS/BACKEND_CPUS."""
    n = n or os.cpu_count() or 1
    if n == 1:
        return "0", "0", "0"
    if n <= 3:
        return "0", "1", str(n - 1)
    q = max(1, n // 4)

    def span(a, b):
        return str(a) if a == b else "%d-%d" % (a, b)
    return span(0, q - 1), span(n // 2, n // 2 + q - 1), span(n - q, n - 1)


# ---------------------------------------------------------------------------------------
# Preflight

def require_root():
    if os.geteuid() != 0:
        die("run as root (it pins processes, reads every process's /proc stat, may install "
            "packages and set kernel.perf_event_paranoid)")


def ensure_tools(extra=None):
    """Missing Debian packages are installed with apt-get when possible; without network
    that fails with the list of what is missing."""
    tools = dict(REQUIRED_TOOLS)
    tools.update(extra or {})
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if not os.path.exists(ZK_JAR):
        missing.append("zookeeper")
    missing = sorted(set(missing))
    if not missing:
        return
    log("missing packages: %s; trying apt-get install" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    ok = (subprocess.run(["apt-get", "update", "-q"], env=env).returncode == 0 and
          subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
                         env=env).returncode == 0)
    if not ok:
        die("could not install %s (no network?). Install them first: apt-get install %s"
            % (", ".join(missing), " ".join(missing)))
    # nginx's Debian package starts a system nginx on port 80: stop it, it is not ours.
    if "nginx-light" in missing:
        subprocess.run(["systemctl", "stop", "nginx"], stderr=subprocess.DEVNULL)


def build_flags(build_dir):
    """CMAKE_CXX_FLAGS as cached in the build directory (extra flags persist across runs)."""
    try:
        for line in (Path(build_dir) / "CMakeCache.txt").read_text().splitlines():
            if line.startswith("CMAKE_CXX_FLAGS:"):
                return line.split("=", 1)[1]
    except OSError:
        pass
    return ""


def machine_info():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": model}


def tool_versions():
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (r.stdout + r.stderr).strip().splitlines()
            return text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "?"
    haproxy = re.search(r"version (\S+)", first_line(["haproxy", "-v"]))
    wrk = re.search(r"wrk (\S+)", first_line(["wrk", "-v"]))
    out = {
        "nginx": first_line(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": "HAProxy %s" % (haproxy.group(1) if haproxy else "?"),
        "wrk": "wrk %s" % (wrk.group(1) if wrk else "?"),
    }
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "zookeeper"], capture_output=True, text=True)
        out["zookeeper"] = r.stdout.strip() or "?"
    except OSError:
        out["zookeeper"] = "?"
    return out


# ---------------------------------------------------------------------------------------
# Build

def build_release(build_dir, targets=("ringmaster", "zkctl") + FLOOR_TARGETS):
    """Release with frame pointers (the project's default keeps -fno-omit-frame-pointer).
    RINGMASTER_CMAKE_ARGS adds configure arguments (e.g. a compiler or warning flag)."""
    build_dir = Path(build_dir)
    extra = shlex.split(os.environ.get("RINGMASTER_CMAKE_ARGS", ""))
    configure = ["cmake", "-S", str(REPO_ROOT), "-B", str(build_dir), "-G", "Ninja",
                 "-DCMAKE_BUILD_TYPE=Release", "-DRINGMASTER_FRAME_POINTERS=ON"] + extra
    log("configure: %s" % " ".join(shlex.quote(a) for a in configure))
    if subprocess.run(configure, stdout=subprocess.DEVNULL).returncode != 0:
        die("cmake configure failed")
    build = ["ninja", "-C", str(build_dir)] + list(targets)
    log("build: %s" % " ".join(build))
    r = subprocess.run(build, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-6000:] + r.stderr[-2000:])
        die("Release build failed (see above). RINGMASTER_CMAKE_ARGS passes extra cmake "
            "arguments, e.g. RINGMASTER_CMAKE_ARGS=-DCMAKE_CXX_FLAGS=-Wno-error=restrict for "
            "GCC 12 -O3 false positives")
    binary = build_dir / "src" / "ringmaster"
    zkctl = build_dir / "tests" / "tools" / "zkctl"
    if not binary.exists():
        die("no binary at %s after the build" % binary)
    return binary, zkctl


# ---------------------------------------------------------------------------------------
# Processes

class Processes:
    """Children in their own sessions, each pinned with taskset; all killed at exit."""

    def __init__(self, work_dir):
        self.work_dir = Path(work_dir)
        self.children = []  # (name, Popen)
        # The same open-file limit for every contender: the hard limit.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        atexit.register(self.kill_all)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        log("signal %d: stopping everything" % signum)
        self.kill_all()
        sys.exit(128 + signum)

    def start(self, name, argv, cpus, env=None, cwd=None):
        log_path = self.work_dir / ("%s.log" % name)
        out = open(log_path, "ab")
        full = ["taskset", "-c", cpus] + [str(a) for a in argv]
        p = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env, cwd=cwd)
        out.close()
        p.name = name
        p.log_path = log_path
        p.argv = full
        self.children.append((name, p))
        return p

    def stop(self, p, timeout=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        self.children = [(n, c) for (n, c) in self.children if c is not p]

    def kill_all(self):
        for name, p in reversed(self.children):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 5
        for name, p in self.children:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(2)
                except subprocess.TimeoutExpired:
                    pass
        self.children = []

    @staticmethod
    def check_alive(p):
        if p.poll() is not None:
            tail = ""
            try:
                tail = Path(p.log_path).read_text(errors="replace")[-3000:]
            except OSError:
                pass
            die("%s exited with %s:\n%s" % (p.name, p.returncode, tail))


free_port = kit.procs.free_port


def wait_port(port, proc=None, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None:
            Processes.check_alive(proc)
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    die("nothing listens on %s:%d after %.0f s" % (LOOPBACK, port, timeout))


http_get = kit.http.http_get


def wait_http_ok(port, path="/", proc=None, timeout=20.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None:
            Processes.check_alive(proc)
        try:
            status, headers, body = http_get(port, path, timeout=2.0)
            if status == 200:
                return headers, body
            last = "status %d" % status
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    die("GET %s on port %d never answered 200 (last: %s)" % (path, port, last))


def fill_template(name, out_path, values):
    try:
        return kit.nginx.fill_template(name, out_path, values)
    except ValueError as e:
        die(str(e))


def make_work_dir(keep=False):
    d = Path(tempfile.mkdtemp(prefix="ringmaster-perf-"))
    # nginx workers run as `nobody`: they must reach the cache and temp paths in here.
    os.chmod(d, 0o755)
    if not keep:
        atexit.register(shutil.rmtree, d, True)
    return d


# ---------------------------------------------------------------------------------------
# CPU accounting from /proc

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields 3.. of /proc/<pid>/stat (after the parenthesised comm, which may hold spaces)."""
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])  # field 4
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_ticks(root):
    """Total of cpu_split(root)."""
    user, system = cpu_split(root)
    return user + system


def cpu_split(root):
    """utime+stime (fields 14+15, clock ticks) of `root` and every live descendant (nginx:
    master + workers + cache manager), plus the root's cutime+cstime (16+17: children it
    already reaped, zero unless one exited during the run). Threads are included: the
    process's fields sum them. Returns (user ticks, system ticks)."""
    user = system = 0
    for pid in descendants(root):
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        user += int(f[11])
        system += int(f[12])
        if pid == root:
            user += int(f[13])
            system += int(f[14])
    return user, system


def pin_check(pid, cpus_text):
    """ringmaster pins reactor i to CPU i (of all online CPUs), overriding the mask taskset
    gave it. When that lands outside the proxy CPU set, widen every thread back to the set
    (and say so) so every contender runs on the same CPUs."""
    allowed = set(parse_cpus(cpus_text))
    outside = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            status = Path("/proc/%d/task/%s/status" % (pid, tid)).read_text()
        except OSError:
            continue
        m = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
        if m and not set(parse_cpus(m.group(1))) <= allowed:
            outside.append(tid)
    if outside:
        log("warning: ringmaster pinned %d thread(s) outside the proxy CPUs %s; re-pinning all "
            "threads to %s" % (len(outside), cpus_text, cpus_text))
        subprocess.run(["taskset", "-a", "-p", "-c", cpus_text, str(pid)], stdout=subprocess.DEVNULL)
    return len(outside)


# ---------------------------------------------------------------------------------------
# Memory: RSS of a contender's processes

def rss_bytes(root):
    """VmRSS of `root` and every live descendant (nginx: master + workers), in bytes."""
    total = 0
    for pid in descendants(root):
        try:
            for line in Path("/proc/%d/status" % pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError):
            continue
    return total


def settled_rss(proc, timeout_s=30.0):
    """(RSS once it stops moving, seconds waited): kit.procs.wait_steady over rss_bytes."""
    def sample():
        Processes.check_alive(proc)
        return rss_bytes(proc.pid)
    return kit.procs.wait_steady(sample, timeout_s)


# ---------------------------------------------------------------------------------------
# The physical floors (perf/floor): built with ringmaster in the same build folder

def floor_binary(build_dir, name):
    path = Path(build_dir) / "perf" / "floor" / name
    if not path.exists():
        die("no %s at %s (it is built with ringmaster: perf/floor)" % (name, path))
    return path


# ---------------------------------------------------------------------------------------
# wrk

def _latency_us(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]


def parse_wrk(text):
    r = {"requests": 0, "rps": 0.0, "p50_us": None, "p99_us": None, "non2xx": 0,
         "socket_errors": 0, "raw": text}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    if m:
        r["p50_us"] = _latency_us(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if m:
        r["p99_us"] = _latency_us(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def wrk_command(threads, connections, duration_s, url, rate=0):
    argv = ["wrk", "-t%d" % threads, "-c%d" % connections,
            "-d%ds" % duration_s, "--latency", "--timeout", "5s"]
    if rate:
        argv += ["-s", str(PERF_DIR / "wrk-rate.lua")]
    return argv + [url]


def wrk_argv(cpus, threads, connections, duration_s, url, rate=0):
    return ["taskset", "-c", cpus] + wrk_command(threads, connections, duration_s, url, rate)


def wrk_env(rate, connections):
    return dict(os.environ, WRK_DELAY_MS=str(rate_delay_ms(rate, connections) if rate else 0))


def rate_delay_ms(rate, connections):
    """Think time per connection for about `rate` requests/s (wrk: whole milliseconds)."""
    return max(1, round(connections * 1000.0 / rate))


def run_wrk(cpus, threads, connections, duration_s, url, rate=0):
    argv = wrk_argv(cpus, threads, connections, duration_s, url, rate)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60,
                       env=wrk_env(rate, connections))
    if r.returncode != 0:
        die("wrk failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    return parse_wrk(r.stdout)


def start_wrk(procs, name, cpus, threads, connections, duration_s, url):
    """wrk as a child of `procs`, so several run at once; wrk_result() once it is done."""
    p = procs.start(name, wrk_command(threads, connections, duration_s, url), cpus,
                    env=wrk_env(0, connections))
    p.wrk_deadline = time.time() + duration_s + 60
    return p


def wrk_result(procs, p):
    """Waits (bounded: the run's duration + 60 s) for a start_wrk() child; its parsed output."""
    try:
        p.wait(max(1.0, p.wrk_deadline - time.time()))
    except subprocess.TimeoutExpired:
        procs.stop(p)
        die("wrk (%s) did not finish in time" % p.name)
    procs.stop(p)
    text = Path(p.log_path).read_text(errors="replace")
    if p.returncode != 0:
        die("wrk failed (%d): %s" % (p.returncode, text[-2000:]))
    return parse_wrk(text)


def all_cpus():
    n = os.cpu_count() or 1
    return "0" if n == 1 else "0-%d" % (n - 1)


# ---------------------------------------------------------------------------------------
# Backends and ZooKeeper

class Backends:
    """Two nginx instances on two ports (one small fixed body on every path; /cached adds
    Cache-Control: max-age=600 and is the only path logged, so its log counts the requests
    a cache let through)."""

    def __init__(self, procs, work_dir, cpus, count=2):
        self.procs, self.dir, self.cpus = procs, Path(work_dir), cpus
        ncpu = len(parse_cpus(cpus))
        workers = max(1, ncpu // count)
        self.ports = []
        self.cached_logs = []
        for i in range(count):
            port = free_port()
            d = self.dir / ("backend%d" % i)
            (d / "tmp").mkdir(parents=True)
            write_body_files(d / "body")
            conf = fill_template("nginx-backend.conf.in", d / "nginx.conf", {
                "WORKERS": workers, "PORT": port, "DIR": d, "BODY": BACKEND_BODY.rstrip("\n"),
                "NAME": "backend%d" % i})
            p = procs.start("backend%d" % i, kit.nginx.argv(d, conf), cpus)
            self.ports.append(port)
            self.cached_logs.append(d / "cached.log")
            wait_port(port, p)
        for port in self.ports:
            wait_http_ok(port, "/")

    def targets(self):
        return ["%s:%d" % (LOOPBACK, p) for p in self.ports]

    def cached_hits(self):
        """Requests for /cached the backends have served so far."""
        n = 0
        for path in self.cached_logs:
            try:
                with open(path, "rb") as f:
                    n += sum(1 for _ in f)
            except FileNotFoundError:
                pass
        return n


# The large-body scenarios' sizes (perf/compare body-256k, body-1m): the backends serve
# /body/<bytes> and /cached-body/<bytes> (max-age=600) from files of exactly that size.
BODY_SIZES = {"256k": 256 * 1024, "1m": 1024 * 1024}


def write_body_files(directory):
    directory.mkdir(parents=True, exist_ok=True)
    line = (BACKEND_BODY * 2)[:63] + "\n"
    for size in BODY_SIZES.values():
        text = (line * (size // len(line) + 1))[:size]
        (directory / str(size)).write_text(text)


class Targets:
    """T targets served by ONE nginx process (one worker) listening on T loopback ports
    (perf/nginx-targets.conf.in): a small fixed 200 body on every path."""

    def __init__(self, procs, work_dir, cpus, count):
        self.dir = Path(work_dir) / "targets"
        (self.dir / "tmp").mkdir(parents=True)
        self.ports = [free_port() for _ in range(count)]
        listens = "\n".join("        listen %s:%d backlog=4096;" % (LOOPBACK, p) for p in self.ports)
        conf = fill_template("nginx-targets.conf.in", self.dir / "nginx.conf", {
            "LISTENS": listens, "DIR": self.dir, "BODY": BACKEND_BODY.rstrip("\n")})
        self.proc = procs.start("targets", kit.nginx.argv(self.dir, conf), cpus)
        for port in self.ports:
            wait_port(port, self.proc)
        wait_http_ok(self.ports[0], "/")

    def targets(self, count=None):
        return ["%s:%d" % (LOOPBACK, p) for p in self.ports[:count]]


four_letter_word = kit.zookeeper.four_letter_word
zk_sessions_recved = kit.zookeeper.sessions_recved


def mntr(port):
    return kit.zookeeper.ZooKeeperServer.mntr_of(port)


class ZooKeeper:
    """One standalone server (kit.zookeeper) in the work directory, pinned to `cpus`, with a
    2 s tick as in production; `proc` is its Popen, registered with `procs` like the rest."""

    def __init__(self, procs, work_dir, cpus, force_sync=False):
        try:
            # The box is shared with the proxy under test: no fsync noise from count writes
            # unless asked (perf/zk-write-rate measures with it too).
            self.server = kit.zookeeper.ZooKeeperServer(
                work_dir, name="zookeeper", tick_ms=2000, min_session_timeout_ms=4000,
                jvm_flags=ZK_JVM_FLAGS, force_sync=force_sync, log_level="WARN",
                wrapper=["taskset", "-c", cpus], new_session=True)
        except AssertionError as e:  # it did not come up
            die("ZooKeeper: %s" % e)
        self.dir = self.server.dir
        self.port = self.server.port
        self.proc = self.server.process.popen
        self.proc.name, self.proc.log_path = "zookeeper", self.server.log_path
        self.proc.argv = self.server.process.argv
        procs.children.append(("zookeeper", self.proc))

    @property
    def connect(self):
        return self.server.connect_string()

    def packets_received(self):
        v = self.server.mntr().get("zk_packets_received")
        if v is None:
            die("mntr gave no zk_packets_received")
        return int(v)


def tcp_ports_by_pid(pids, remote_port):
    """{local port: pid} for the given processes' TCP connections to 127.0.0.1:remote_port."""
    inodes = {}
    for pid in pids:
        try:
            inodes.update(dict.fromkeys(kit.procs.socket_inodes(pid), pid))
        except OSError:
            continue
    out = {}
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        local, remote, inode = f[1], f[2], f[9]
        if int(remote.split(":")[1], 16) == remote_port and inode in inodes:
            out[int(local.split(":")[1], 16)] = inodes[inode]
    return out
