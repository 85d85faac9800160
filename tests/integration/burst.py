"""Thousands of clients on raw sockets, and a backend that counts its connections.

burst_clients(port, total, ...) starts `procs` client processes (a Python process runs out
of time, not descriptors, long before 10,000 sockets); each opens its share of nonblocking
connections at once, sends one GET on each, and reads the answer. The clients then either
close or stay connected, idle, until released (a `Burst` is a context manager), so that the
proxy's memory with N idle keep-alive clients can be sampled.

CountingBackend is a single-threaded selectors server in a subprocess: it answers every
request with a small 200 after `delay_ms` (so that requests pile up) and writes what the
proxy cannot hide from it, the connections it accepted and the most it had open at once,
to a JSON file.
"""

import json
import multiprocessing
import os
import resource
import selectors
import socket
import sys
import time
from pathlib import Path

from harness import LOOPBACK, ManagedProcess, wait_until


def raise_nofile():
    """Raises this process's descriptor limit as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _status_and_complete(buf):
    """(status, complete) for a response with Content-Length in buf; (None, False) if the
    head is not complete yet."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, False
    head = buf[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, len(buf) >= end + 4 + length


def _client_process(port, count, path, deadline_s, hold, conn):
    raise_nofile()
    sel = selectors.DefaultSelector()
    request = ("GET %s HTTP/1.1\r\nHost: burst\r\n\r\n" % path).encode()
    socks = []
    statuses = {}
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((LOOPBACK, port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, [b"", False])
    pending = count
    end = time.monotonic() + deadline_s
    while pending and time.monotonic() < end:
        for key, events in sel.select(timeout=0.2):
            s, state = key.fileobj, key.data
            if events & selectors.EVENT_WRITE and not state[1]:
                try:
                    s.send(request)
                except OSError:
                    statuses["send-error"] = statuses.get("send-error", 0) + 1
                    sel.unregister(s)
                    pending -= 1
                    continue
                state[1] = True
                sel.modify(s, selectors.EVENT_READ, state)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                statuses["closed"] = statuses.get("closed", 0) + 1
                sel.unregister(s)
                pending -= 1
                continue
            state[0] += data
            status, complete = _status_and_complete(state[0])
            if complete:
                statuses[status] = statuses.get(status, 0) + 1
                sel.unregister(s)
                pending -= 1
    statuses["unanswered"] = pending
    conn.send(statuses)
    if hold:
        conn.recv()  # the test says when the clients go
    for s in socks:
        s.close()
    conn.send("closed")


class Burst:
    """`total` clients over `procs` processes, each sending one request at once; with
    hold=True they stay connected (idle) until release() or the end of the with block."""

    def __init__(self, port, total, procs=4, path="/", deadline_s=60.0, hold=False):
        self.hold = hold
        ctx = multiprocessing.get_context("fork")
        self.children = []
        share, extra = divmod(total, procs)
        for i in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_client_process,
                            args=(port, share + (1 if i < extra else 0), path, deadline_s, hold, child),
                            daemon=True)
            p.start()
            self.children.append((p, parent))
        self.deadline_s = deadline_s

    def results(self):
        """Statuses summed over the processes: {200: n, 503: m, "unanswered": k, ...}."""
        total = {}
        for _, conn in self.children:
            if not conn.poll(self.deadline_s + 30):
                raise AssertionError("a client process reported nothing")
            for k, v in conn.recv().items():
                total[k] = total.get(k, 0) + v
        return total

    def release(self):
        for p, conn in self.children:
            if self.hold and p.is_alive():
                conn.send("go")
        for p, conn in self.children:
            if conn.poll(30):
                conn.recv()
            p.join(10)
            if p.is_alive():
                p.kill()
        self.children = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


BACKEND_SOURCE = Path(__file__).with_name("burst.py")


class CountingBackend:
    def __init__(self, tmp_dir, delay_ms=5, name="counting"):
        self.dir = Path(tmp_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stats_path = self.dir / "stats.json"
        ready = self.dir / "port"
        argv = [sys.executable, str(BACKEND_SOURCE), "--serve", str(ready), str(self.stats_path),
                str(delay_ms)]
        self.process = ManagedProcess(argv, self.dir / "stderr.log", name=name)
        wait_until(lambda: ready.exists() or not self.process.alive(), 10, "the counting backend")
        self.port = int(ready.read_text())
        self.addr = "%s:%d" % (LOOPBACK, self.port)

    def stats(self):
        """{"accepted", "open", "max_open", "requests"} as of the last write (every 50 ms)."""
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {"accepted": 0, "open": 0, "max_open": 0, "requests": 0}

    def wait_requests(self, count, timeout=30):
        wait_until(lambda: self.stats()["requests"] >= count, timeout,
                   "%d requests at the counting backend" % count)
        return self.stats()

    def stop(self):
        self.process.stop()


def _serve(ready_path, stats_path, delay_ms):
    raise_nofile()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, 0))
    listener.listen(4096)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    stats = {"accepted": 0, "open": 0, "max_open": 0, "requests": 0}
    body = b"counted\n"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    due = []  # (time, socket) answers waiting for their delay
    bufs = {}
    tmp = stats_path + ".tmp"
    Path(tmp).write_text(json.dumps(stats))
    os.rename(tmp, stats_path)
    tmp_ready = ready_path + ".tmp"
    Path(tmp_ready).write_text(str(listener.getsockname()[1]))
    os.rename(tmp_ready, ready_path)
    next_write = 0.0
    while True:
        now = time.monotonic()
        timeout = 0.05
        if due:
            timeout = max(0.0, min(timeout, due[0][0] - now))
        for key, _ in sel.select(timeout=timeout):
            if key.data is None:
                while True:
                    try:
                        s, _ = listener.accept()
                    except BlockingIOError:
                        break
                    s.setblocking(False)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    stats["accepted"] += 1
                    stats["open"] += 1
                    stats["max_open"] = max(stats["max_open"], stats["open"])
                    bufs[s] = b""
                    sel.register(s, selectors.EVENT_READ, "conn")
                continue
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                del bufs[s]
                s.close()
                stats["open"] -= 1
                continue
            bufs[s] += data
            while b"\r\n\r\n" in bufs[s]:
                _, _, bufs[s] = bufs[s].partition(b"\r\n\r\n")
                stats["requests"] += 1
                due.append((time.monotonic() + delay_ms / 1000.0, s))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, s = due.pop(0)
            if s in bufs:
                try:
                    s.sendall(response)
                except OSError:
                    pass
        if now >= next_write:
            Path(tmp).write_text(json.dumps(stats))
            os.rename(tmp, stats_path)
            next_write = now + 0.05


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
