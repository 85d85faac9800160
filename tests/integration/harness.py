"""Harness for ringmaster's integration tests.

Everything here talks to real processes over loopback (127.0.0.1) only:
  * free_port(), ReservedPort, wait_until(): ports and polling with deadlines (no sleeps
    as synchronisation);
  * Backend: the test origin server (backend.py) as a separate process, with the JSON log
    of what it received;
  * Proxy: the real ringmaster binary, its stderr captured to a file, RSS from /proc;
  * HttpConnection / send_raw(): HTTP/1.1 over raw sockets, so tests see the bytes on the
    wire (framing, interim responses, whether the peer closed).

Later issues add ZooKeeper servers, agents and fleets of proxies; they follow the same
pattern: a class wrapping a ManagedProcess, started and stopped by a factory fixture in
conftest.py.
"""

import atexit
import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BACKEND_PY = HERE / "backend.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
LOOPBACK = "127.0.0.1"
DEFAULT_HOST = "example.test"

sys.path.insert(0, str(HERE))
import backend as backend_module  # noqa: E402  (pattern helpers shared with the backend)

pattern_bytes = backend_module.pattern_bytes
pattern_chunks = backend_module.pattern_chunks
pattern_sha256 = backend_module.pattern_sha256


# ---------------------------------------------------------------------------------------
# Ports and polling

def free_port():
    """A port that was free a moment ago (bind to port 0, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class ReservedPort:
    """A port bound but never listening: connecting to it is refused, and no other process
    can take it while this object is open. Use it as a target with nothing listening."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self.port = self._sock.getsockname()[1]
        self.addr = "%s:%d" % (LOOPBACK, self.port)

    def close(self):
        self._sock.close()


def parse_metrics(text):
    """{'name{labels}': value} from the Prometheus text format (GET /metrics)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


def wait_until(predicate, timeout, message=None, interval_max=0.05):
    """Polls predicate() until it returns a truthy value (returned) or `timeout` seconds
    pass (AssertionError naming `message`)."""
    deadline = time.monotonic() + timeout
    interval = 0.002
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, message or getattr(predicate, "__name__", "?")))
        time.sleep(min(interval, deadline - now))
        interval = min(interval * 2, interval_max)


def port_accepts(port, host=LOOPBACK):
    """True when a TCP connect to host:port succeeds (the connection is closed at once)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def connect_refused(port, host=LOOPBACK):
    """True when a TCP connect to host:port is actively refused (nobody listening)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------
# Processes

_live_processes = []


def _die_with_parent():
    # The kernel kills the child when the test runner dies, even by SIGKILL or a
    # faulthandler timeout, so no backend or proxy outlives a crashed test run.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@atexit.register
def _kill_leftovers():
    for p in list(_live_processes):
        p.kill()


SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
    "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer",
)


class ManagedProcess:
    """A child process whose stdout+stderr go to a file; killed at the latest at exit."""

    def __init__(self, argv, output_path, env=None, name=None):
        self.argv = [str(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self.output_path = Path(output_path)
        self._output = open(self.output_path, "wb")
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                      stdout=self._output, stderr=subprocess.STDOUT,
                                      env=env, preexec_fn=_die_with_parent)
        self.signalled_by_us = None
        _live_processes.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def output(self):
        try:
            return self.output_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def output_tail(self, lines=80):
        text = self.output().splitlines()
        return "\n".join(text[-lines:])

    def send_signal(self, sig):
        if self.alive():
            self.signalled_by_us = sig
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signals, waits up to `timeout`, then SIGKILLs. Returns the exit code."""
        if self.alive():
            self.send_signal(sig)
            if self.wait(timeout) is None:
                self.kill()
        self._release()
        return self.popen.returncode

    def kill(self):
        if self.alive():
            self.signalled_by_us = signal.SIGKILL
            self.popen.kill()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._release()

    def _release(self):
        if self in _live_processes and not self.alive():
            _live_processes.remove(self)
            self._output.close()

    def sanitizer_report(self):
        text = self.output()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                start = text.rfind("\n", 0, max(0, i - 200)) + 1
                return text[start:start + 6000]
        return None


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

    def __init__(self, binary, tmp_dir, targets, threads=2, name="proxy", env=None,
                 extra_args=(), **flags):
        self.binary = Path(binary)
        self.name = name
        self.dir = Path(tmp_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.targets = [t if isinstance(t, str) else t.addr for t in targets]
        self.threads = threads
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


def _describe_exit(code):
    if code < 0:
        try:
            return "signal %s" % signal.Signals(-code).name
        except ValueError:
            return "signal %d" % -code
    return "exit code %d" % code


# ---------------------------------------------------------------------------------------
# HTTP on raw sockets

def build_request(method="GET", target="/", headers=None, body=b"", version="HTTP/1.1",
                  host=DEFAULT_HOST):
    """Request bytes. Host is added first unless host is None or headers has one;
    Content-Length is added for a non-empty body unless headers frame it already."""
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    if host is not None and "host" not in names:
        headers.insert(0, ("Host", host))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + bytes(body)


def chunked_encode(data, sizes=(1, 7, 100, 4096, 65521), trailers=None, extension=False):
    """`data` as chunked transfer coding, cycling through chunk `sizes`."""
    out = bytearray()
    offset = 0
    i = 0
    while offset < len(data):
        size = min(sizes[i % len(sizes)], len(data) - offset)
        ext = b";name=value" if extension and i % 2 else b""
        out += b"%x%s\r\n" % (size, ext) + data[offset:offset + size] + b"\r\n"
        offset += size
        i += 1
    out += b"0\r\n"
    for k, v in (trailers or []):
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    out += b"\r\n"
    return bytes(out)


class ProtocolError(AssertionError):
    pass


class ConnectionClosed(AssertionError):
    """The peer closed (or reset) the connection before a complete response head."""


class HttpResponse:
    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)] in wire order
        self.raw_head = raw_head
        self.body = b""
        self.body_len = 0               # also counts bytes given to a sink
        self.complete = True            # False: the peer closed inside the body
        self.chunked = False
        self.interim = []               # 1xx responses received before this one

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def tokens(self, name):
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HttpResponse %s %s %r body=%d bytes%s>" % (
            self.status, self.reason, self.headers, self.body_len,
            "" if self.complete else " INCOMPLETE")


class HttpReader:
    """Incremental HTTP/1.x response parser over a byte source (see HttpConnection)."""

    def __init__(self):
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def _fill(self, deadline):  # appends to self.buf; False on EOF
        raise NotImplementedError

    def _recv_into(self, view, deadline):  # bulk reads that bypass self.buf; 0 on EOF
        if not self.buf and not self._fill(deadline):
            return 0
        n = min(len(view), len(self.buf))
        view[:n] = self.buf[:n]
        del self.buf[:n]
        return n

    def _read_until(self, delim, deadline, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("no %r within %d bytes" % (delim, limit))
            if not self._fill(deadline):
                return None

    def read_response(self, method="GET", timeout=10.0, sink=None, skip_interim=True):
        """The next response. 1xx responses are collected in .interim unless skip_interim
        is False. With `sink`, body bytes are passed to sink(memoryview) instead of kept.
        A response cut short by the peer has complete=False."""
        deadline = time.monotonic() + timeout
        interim = []
        while True:
            resp = self._read_one(method, deadline, sink)
            if skip_interim and 100 <= resp.status < 200 and resp.status != 101:
                interim.append(resp)
                continue
            resp.interim = interim
            return resp

    def _read_one(self, method, deadline, sink):
        head = self._read_until(b"\r\n\r\n", deadline)
        if head is None:
            raise ConnectionClosed("connection closed before a response head (%s; got %r)"
                                   % ("reset" if self.reset else "EOF", bytes(self.buf[:300])))
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError("bad header line %r" % line)
            headers.append((name, value.strip(" \t")))
        resp = HttpResponse(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "",
                            headers, head)
        kept = bytearray()

        def take(view):
            resp.body_len += len(view)
            if sink is None:
                kept.extend(view)
            else:
                sink(view)

        if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
            pass
        elif "chunked" in resp.tokens("transfer-encoding"):
            resp.chunked = True
            resp.complete = self._read_chunked(deadline, take)
        elif resp.header("content-length") is not None:
            resp.complete = self._read_exact(int(resp.header("content-length")), deadline,
                                             take)
        else:
            self._read_to_eof(deadline, take)
        resp.body = bytes(kept)
        return resp

    def _read_exact(self, n, deadline, take):
        scratch = memoryview(bytearray(min(n, 1 << 20) or 1))
        while n:
            got = self._recv_into(scratch[:min(n, len(scratch))], deadline)
            if got == 0:
                return False
            take(scratch[:got])
            n -= got
        return True

    def _read_chunked(self, deadline, take):
        while True:
            line = self._read_until(b"\r\n", deadline)
            if line is None:
                return False
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError("bad chunk size line %r" % line) from None
            if size == 0:
                while True:  # trailers
                    line = self._read_until(b"\r\n", deadline)
                    if line is None:
                        return False
                    if not line:
                        return True
            if not self._read_exact(size, deadline, take):
                return False
            crlf = self._read_until(b"\r\n", deadline)
            if crlf is None:
                return False
            if crlf:
                raise ProtocolError("chunk not followed by CRLF: %r" % crlf[:50])

    def _read_to_eof(self, deadline, take):
        while True:
            if self.buf:
                take(memoryview(bytes(self.buf)))
                del self.buf[:]
            if not self._fill(deadline):
                return


class BytesReader(HttpReader):
    """Parses responses out of bytes already received (e.g. by send_raw)."""

    def __init__(self, data):
        super().__init__()
        self.buf += data

    def _fill(self, deadline):
        self.eof = True
        return False


class HttpConnection(HttpReader):
    """One client TCP connection with an HTTP response parser on top.

        with HttpConnection(proxy.port) as c:
            c.send(build_request("GET", "/"))
            r = c.read_response()
    """

    def __init__(self, port, host=LOOPBACK, timeout=10.0, sockopts=()):
        """sockopts: (level, option, value) set before connecting (SO_RCVBUF must be, or
        the window already offered lets far more through)."""
        super().__init__()
        if sockopts:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            for level, option, value in sockopts:
                self.sock.setsockopt(level, option, value)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        self.sock.sendall(data)

    def request(self, method="GET", target="/", headers=None, body=b"", timeout=10.0,
                **kw):
        """Sends one request and reads its response."""
        self.send(build_request(method, target, headers, body, **kw))
        return self.read_response(method, timeout)

    def _settimeout_for(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed waiting for the peer")
        self.sock.settimeout(remaining)

    def _fill(self, deadline):
        if self.eof:
            return False
        self._settimeout_for(deadline)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("no data from the peer before the deadline "
                               "(buffered: %r)" % bytes(self.buf[:300])) from None
        except ConnectionResetError:
            data = b""
            self.reset = True
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _recv_into(self, view, deadline):
        if self.buf or self.eof:
            return super()._recv_into(view, deadline)
        self._settimeout_for(deadline)
        try:
            got = self.sock.recv_into(view)
        except socket.timeout:
            raise TimeoutError("no data from the peer before the deadline") from None
        except ConnectionResetError:
            got = 0
            self.reset = True
        if got == 0:
            self.eof = True
        return got

    def read_until_close(self, timeout=10.0):
        """Everything until the peer closes; TimeoutError if it does not within timeout."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        out = bytes(self.buf)
        del self.buf[:]
        return out

    def wait_closed(self, timeout):
        """True if the peer closes (EOF or reset) within `timeout` seconds; any bytes it
        sends meanwhile stay in self.buf."""
        try:
            self.read_until_close_keep(timeout)
            return True
        except TimeoutError:
            return False

    def read_until_close_keep(self, timeout):
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass

    def sent_nothing_and_open(self, timeout):
        """True if, for `timeout` seconds, the peer neither sends nor closes."""
        try:
            self._fill(time.monotonic() + timeout)
        except TimeoutError:
            return not self.buf and not self.eof
        return False


class RawResult:
    def __init__(self, raw, closed, method):
        self.raw = raw
        self.closed = closed
        try:
            self.response = BytesReader(raw).read_response(method) if raw else None
        except (ProtocolError, ConnectionClosed):
            self.response = None
        r = self.response
        self.status = r.status if r else None
        self.headers = r.headers if r else []
        self.body = r.body if r else b""

    def __iter__(self):
        """status, headers, body, closed = send_raw(...)"""
        return iter((self.status, self.headers, self.body, self.closed))

    def __repr__(self):
        return "<RawResult status=%s closed=%s raw=%r>" % (self.status, self.closed,
                                                          self.raw[:400])


def send_raw(port, data, timeout=5.0, method="GET"):
    """Connects, sends `data` (the peer may close before taking it all), reads until the
    peer closes or `timeout` passes. Returns RawResult: status/headers/body of the first
    response (status None if there was none), closed (the peer closed within the
    deadline), raw (every byte received)."""
    conn = HttpConnection(port, timeout=timeout)
    try:
        try:
            conn.send(data, timeout=timeout)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET):
                raise
        closed = conn.wait_closed(timeout)
        return RawResult(bytes(conn.buf), closed, method)
    finally:
        conn.close()


def get(port, target="/", headers=None, timeout=10.0, **kw):
    """One GET on a new connection; returns the response."""
    with HttpConnection(port, timeout=timeout) as c:
        return c.request("GET", target, headers, timeout=timeout, **kw)
