"""Harness for ringmaster's integration tests: the ringmaster-specific pieces on top of the
test kit (tests/kit, shared with perf/ and scripts/demo), re-exported here so that test
modules keep importing one name:

  * from kit.procs: free_port(), ReservedPort, wait_until(), port_accepts(),
    connect_refused(), ManagedProcess (children with their output in a file, killed with us);
  * from kit.http: HttpConnection / send_raw() / get() / build_request() ... (HTTP/1.1 over
    raw sockets, so tests see the bytes on the wire);
  * from kit.metrics: parse_metrics() (the reference Prometheus parser);
  * here: Backend (the test origin server, backend.py, as a process with the JSON log of
    what it received) and Proxy (the real ringmaster binary, stderr in a file, RSS from
    /proc).

ZooKeeper servers, ensembles, zkctl and agents are in zk.py (fixtures) and kit.zookeeper.
"""

import json
import os
import signal
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BACKEND_PY = HERE / "backend.py"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO_ROOT / "tests"))
import backend as backend_module  # noqa: E402  (pattern helpers shared with the backend)
from kit.http import *  # noqa: E402,F401,F403
from kit.http import DEFAULT_HOST  # noqa: E402,F401
from kit.metrics import parse_metrics  # noqa: E402,F401
from kit.procs import *  # noqa: E402,F401,F403
from kit.procs import (LOOPBACK, PYTHON, ManagedProcess, _describe_exit,  # noqa: E402,F401
                       _die_with_parent,
                       free_port, port_accepts, wait_until)

pattern_bytes = backend_module.pattern_bytes
pattern_chunks = backend_module.pattern_chunks
pattern_sha256 = backend_module.pattern_sha256


class Backend:
    """backend.py as a separate process. `requests()` is what it received, from its log."""

    def __init__(self, tmp_dir, name="backend-1", port=0):
        self.name = name
        self.dir = Path(tmp_dir) / ("backend-" + name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "requests.jsonl"
        self.log_path.touch()
        ready = self.dir / "ready"
        if ready.exists():
            ready.unlink()
        argv = [PYTHON, BACKEND_PY, "--port", port, "--name", name, "--log", self.log_path,
                "--ready-file", ready]
        self.process = ManagedProcess(argv, self.dir / "output.log", name="backend " + name)
        wait_until(lambda: ready.exists() or not self.process.alive(), 15,
                   "backend %s to listen" % name)
        if not self.process.alive():
            raise AssertionError("backend %s exited (%s):\n%s" % (
                name, self.process.returncode, self.process.output_tail()))
        self.port = int(ready.read_text().strip())
        self.addr = "%s:%d" % (LOOPBACK, self.port)

    def events(self):
        out = []
        with open(self.log_path, "r", encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line))
        return out

    def requests(self):
        return [e for e in self.events() if e["event"] == "request"]

    def connections(self):
        return [e for e in self.events() if e["event"] == "connect"]

    def wait_for_requests(self, count, timeout=10.0):
        """Polls until the backend logged at least `count` requests; returns them all."""
        return wait_until(lambda: (lambda r: r if len(r) >= count else None)(self.requests()),
                          timeout, "backend %s to log %d request(s)" % (self.name, count))

    def stop(self):
        return self.process.stop(signal.SIGKILL, timeout=5)


def default_threads():
    """--threads for a proxy whose test names none: 2, or RINGMASTER_TEST_THREADS. The
    suite runs the cache and proxying tests once more with 80 (tests/CMakeLists.txt,
    `integration_many_reactors`): more reactors than this machine has CPUs, so that no
    per-reactor limit hides behind a small test machine."""
    return int(os.environ.get("RINGMASTER_TEST_THREADS", "2"))


def track(request, proc):
    """Shows `proc`'s output (anything with name, pid, argv, output_tail()) in the report of
    the test `request` belongs to, should it fail (conftest.py's report hook)."""
    request.node.__dict__.setdefault("_ringmaster_processes", []).append(proc)


def launcher(request, kind, make):
    """The body of a start_<kind> fixture (`yield from launcher(...)`): yields start(*args,
    **flags), which makes one wrapper with make(*args, name=..., **flags) (a Proxy, an
    Agent: anything with .process and .teardown_problems()), named "<kind>", "<kind>-2", ...
    unless the caller names it, and tracks its process; at teardown every wrapper's problems
    fail the test together."""
    started = []

    def start(*args, name=None, **flags):
        name = name or (kind if not started else "%s-%d" % (kind, len(started) + 1))
        p = make(*args, name=name, **flags)
        started.append(p)
        track(request, p.process)
        return p

    yield start
    problems = []
    for p in started:
        problems += p.teardown_problems()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def request_header(entry, name):
    """All values of header `name` (case-insensitive) in a backend log request entry."""
    return [v for k, v in entry["headers"] if k.lower() == name.lower()]


def binary_is_sanitized(path):
    """True when the binary was built with ASan or TSan (their RSS is not comparable)."""
    markers = (b"__asan_init", b"__tsan_init")
    tail = b""
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    return False
                if any(m in tail + block for m in markers):
                    return True
                tail = block[-32:]
    except OSError:
        return False


def find_ringmaster_bin():
    """RINGMASTER_BIN, else $RINGMASTER_BUILD_DIR/src/ringmaster, else build/src/ringmaster."""
    candidates = []
    if os.environ.get("RINGMASTER_BIN"):
        return Path(os.environ["RINGMASTER_BIN"])
    if os.environ.get("RINGMASTER_BUILD_DIR"):
        candidates.append(Path(os.environ["RINGMASTER_BUILD_DIR"]) / "src" / "ringmaster")
    candidates.append(REPO_ROOT / "build" / "src" / "ringmaster")
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


class Proxy:
    """The real ringmaster binary in static mode (`proxy --target ...`).

    Flags are keyword arguments with underscores for dashes: header_timeout_ms=1000 gives
    `--header-timeout-ms 1000`; True gives a bare flag. Ready = the listen port accepts."""

    START_TIMEOUT_S = 20.0
    # Teardown's grace after SIGTERM (the harness passes a short --shutdown-timeout-ms).
    STOP_TIMEOUT_S = 10.0
    # The response cache is off unless a test asks for it (cache_bytes=...): tests of the
    # proxying path must see every request reach the backend.
    DEFAULT_FLAGS = {"shutdown_timeout_ms": 3000, "cache_bytes": 0}

    def __init__(self, binary, tmp_dir, targets, threads=None, name="proxy", env=None,
                 extra_args=(), **flags):
        self.binary = Path(binary)
        self.name = name
        self.dir = Path(tmp_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.targets = [t if isinstance(t, str) else t.addr for t in targets]
        self.threads = default_threads() if threads is None else threads
        merged = dict(self.DEFAULT_FLAGS)
        merged.update(flags)
        self.flags = merged
        self.extra_args = list(extra_args)
        self.env = env
        self.process = None
        for attempt in range(3):  # a port picked by free_port() can be taken meanwhile
            self.port = free_port()
            self._launch(attempt)
            if self._wait_ready():
                break
            if "in use" not in self.process.output().lower():
                self.process.kill()
                raise AssertionError("ringmaster did not start listening on %d (exit code "
                                     "%s); command: %s\n--- its output ---\n%s"
                                     % (self.port, self.process.returncode,
                                        " ".join(self.process.argv),
                                        self.process.output_tail()))
        else:
            raise AssertionError("ringmaster: listen port in use three times in a row")
        self.addr = "%s:%d" % (LOOPBACK, self.port)

    def argv(self):
        argv = [self.binary, "proxy", "--listen", "%s:%d" % (LOOPBACK, self.port)]
        for t in self.targets:
            argv += ["--target", t]
        if self.threads is not None:
            argv += ["--threads", self.threads]
        for key, value in self.flags.items():
            if value is None or value is False:
                continue
            argv.append("--" + key.replace("_", "-"))
            if value is not True:
                argv.append(value)
        return argv + self.extra_args

    def _launch(self, attempt):
        if self.process is not None:
            self.process.kill()
        out = self.dir / ("stderr.log" if attempt == 0 else "stderr.%d.log" % attempt)
        self.process = ManagedProcess(self.argv(), out, env=self.env, name=self.name)

    def _wait_ready(self):
        try:
            wait_until(lambda: port_accepts(self.port) or not self.process.alive(),
                       self.START_TIMEOUT_S, "ringmaster to accept on port %d" % self.port)
        except AssertionError as e:
            self.process.kill()
            raise AssertionError("%s; command: %s\n--- its output ---\n%s" % (
                e, " ".join(self.process.argv), self.process.output_tail())) from None
        return self.process.alive()

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.alive()

    def stderr(self):
        return self.process.output()

    def _proc_status(self, field):
        with open("/proc/%d/status" % self.pid, "r", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("%s not in /proc/%d/status" % (field, self.pid))

    def rss_bytes(self):
        """Current resident set size (VmRSS)."""
        return self._proc_status("VmRSS")

    def peak_rss_bytes(self):
        """Peak resident set size since start (VmHWM)."""
        return self._proc_status("VmHWM")

    def terminate(self, timeout=None):
        """SIGTERM; returns the exit code, or None if it did not exit within `timeout`
        (the process is then still running; teardown kills it)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(self.STOP_TIMEOUT_S if timeout is None else timeout)

    def teardown_problems(self):
        """Stops the proxy and returns what should fail the test: a crash while the test
        ran, or a sanitizer report."""
        problems = []
        died_on_its_own = not self.alive() and self.process.signalled_by_us is None
        code = self.process.returncode
        if died_on_its_own and code is not None and code != 0:
            problems.append("%s exited by itself during the test with %s" % (
                self.name, _describe_exit(code)))
        if self.alive():
            self.process.stop(signal.SIGTERM, self.STOP_TIMEOUT_S)
        report = self.process.sanitizer_report()
        if report:
            problems.append("%s: sanitizer report:\n%s" % (self.name, report))
        return problems
