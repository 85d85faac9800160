"""Load from real clients: bounded in count and time, every answer recorded.

    LoadClient(port, connections=4, total=N, duration_max=S, rate=R)
        keep-alive connections (one thread each) sending GET `path` (one path, or one per
        request) through kit.http's reader; records (completion time, status, X-Backend)
        per answer, failures with their reason, 200 bodies a `check` refused; answered is
        exact (the tests compare it with counts in ZooKeeper)
    run_wrk(port, args)   wrk's request count and seconds, failing on errors or non-2xx
"""

import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from kit.http import (DEFAULT_HOST, ConnectionClosed, HttpConnection, ProtocolError,
                      build_request)
from kit.procs import LOOPBACK, wait_until



class LoadClient:
    """`connections` keep-alive connections, one thread each, sending GET `path` until
    `total` requests were answered, stop() is called, or `duration_max` seconds pass
    (every loop here is bounded in count and time). Optional `rate` (requests/s, all
    connections together) paces the load.

    Each answered request is recorded as (completion time, status, X-Backend); a request
    that got no complete response (reset, close, timeout) is a failure with its reason.
    `answered` is exact: it is what the test compares with the counts in ZooKeeper.

    `path` is one path for every request, or a function (connection index, sequence number
    on that connection, from 1) -> path, for a path per request. `check(path, response)`
    judges each 200 answer's bytes (kit.http's Response): False records it in `wrong`.
    Times are time.monotonic() values."""

    def __init__(self, port, connections=4, total=None, duration_max=60.0, rate=None,
                 path="/", timeout=10.0, name="load", host=DEFAULT_HOST, check=None):
        self.port = port
        self.connections = connections
        self.total = total if total is not None else 10 ** 9
        self.duration_max = duration_max
        self.rate = rate
        self.timeout = timeout
        self.name = name
        self.path = path
        self.host = host
        self.check = check
        self._lock = threading.Lock()
        self._claimed = 0
        self._stop = threading.Event()
        self.records = []          # (t_done, status, backend)
        self.failures = []         # (t, reason, path)
        self.wrong = []            # (t, path, status, backend, body[:200]): 200s check refused
        self.non_200 = []          # (t, path, status, body[:200])
        self.connects = 0          # connections opened (reconnects included)
        self.started_at = None
        self.finished_at = None
        self._threads = []

    # -- control ----------------------------------------------------------------------
    def start(self):
        self.started_at = time.monotonic()
        self._deadline = self.started_at + self.duration_max
        for i in range(self.connections):
            t = threading.Thread(target=self._run, args=(i,), daemon=True,
                                 name="%s-%d" % (self.name, i))
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        return self.join()

    def join(self, timeout=None):
        limit = time.monotonic() + (timeout if timeout is not None
                                    else self.duration_max + self.timeout + 5)
        for t in self._threads:
            t.join(max(0.0, limit - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "%s threads did not end" % self.name
        self.finished_at = time.monotonic()
        return self

    def run(self):
        """Runs to completion (total or duration_max) and returns self."""
        return self.start().join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- results ----------------------------------------------------------------------
    @property
    def answered(self):
        return len(self.records)

    @property
    def sent(self):
        """Requests attempted: each one is answered (records) or failed (failures)."""
        return self._claimed

    def statuses(self):
        return Counter(status for _, status, _ in self.records)

    def ok(self):
        return sum(1 for r in self.records if r[1] == 200)

    def not_ok(self):
        """Failures plus non-200 answers, as readable strings."""
        bad = ["%s (no response)" % reason for _, reason, _ in self.failures]
        bad += ["status %d from %s" % (s, b) for _, s, b in self.records if s != 200]
        return bad

    def assert_all_ok(self, what=""):
        bad = self.not_ok()
        assert not bad, "%s%d of %d requests failed; first ones: %s" % (
            what + ": " if what else "", len(bad), self.answered + len(self.failures),
            bad[:5])

    def by_backend(self, since=None, until=None):
        out = {}
        for t, status, backend in self.records:
            if (since is None or t >= since) and (until is None or t < until):
                out[backend] = out.get(backend, 0) + 1
        return out

    def count(self):
        """Requests answered so far (any thread)."""
        return len(self.records)

    def first_answer_from(self, backend):
        ts = [t for t, _, b in self.records if b == backend]
        return min(ts) if ts else None

    def wait_answered(self, n, timeout=30.0):
        wait_until(lambda: len(self.records) >= n or self._finished(), timeout,
                   "%s to get %d answers" % (self.name, n))
        assert len(self.records) >= n, "%s ended after %d answers" % (self.name, self.answered)

    def _finished(self):
        return all(not t.is_alive() for t in self._threads)

    # -- the loop ---------------------------------------------------------------------
    def _claim(self):
        with self._lock:
            if self._claimed >= self.total:
                return None
            self._claimed += 1
            return self._claimed

    def _run(self, index):
        conn = None
        seq = 0
        fixed = None if callable(self.path) else build_request("GET", self.path, host=self.host)
        interval = self.connections / self.rate if self.rate else 0.0
        next_at = time.monotonic() + (index * interval / self.connections if interval else 0)
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                next_at = max(next_at + interval, time.monotonic() - interval)
            if self._claim() is None:
                break
            seq += 1
            path = self.path if fixed else self.path(index, seq)
            request = fixed or build_request("GET", path, host=self.host)
            try:
                if conn is None:
                    conn = HttpConnection(self.port, timeout=self.timeout)
                    with self._lock:
                        self.connects += 1
                conn.send(request)
                r = conn.read_response(timeout=self.timeout)
                if not r.complete:
                    raise ConnectionError("closed inside a response body")
            except (OSError, ProtocolError, ConnectionClosed) as e:
                self.failures.append((time.monotonic(), "%s: %s" % (type(e).__name__, e), path))
                if conn is not None:
                    conn.close()
                conn = None
                continue
            t, backend = time.monotonic(), r.header("x-backend")
            if r.status != 200:
                self.non_200.append((t, path, r.status, r.body[:200]))
            elif self.check is not None and not self.check(path, r):
                self.wrong.append((t, path, r.status, backend, r.body[:200]))
            self.records.append((t, r.status, backend))
            if "close" in r.tokens("connection"):
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


def wrk_binary():
    """wrk's path, or None when it is not installed."""
    return shutil.which("wrk")


def run_wrk(port, args, script=None, tmp_dir=None, timeout=60):
    """Runs wrk; returns (requests completed, seconds, output). Fails on socket errors or
    non-2xx answers."""
    wrk = wrk_binary()
    assert wrk, "wrk is not installed (scripts/setup installs it)"
    argv = [wrk] + list(args)
    if script is not None:
        path = Path(tmp_dir) / "wrk.lua"
        path.write_text(script)
        argv += ["-s", str(path)]
    argv.append("http://%s:%d/" % (LOOPBACK, port))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(m?s)", report, re.M)
    assert m, "no request count in wrk output:\n" + report
    seconds = float(m.group(2)) / (1000.0 if m.group(3) == "ms" else 1.0)
    assert "Socket errors" not in report, report
    assert "Non-2xx" not in report, report
    return int(m.group(1)), seconds, report
