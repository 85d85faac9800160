"""The core of the test origin servers (tests/integration/backend.py, the correct one, and
evil_backend.py, the scriptable misbehaving one): raw sockets, one thread per connection,
every event one JSON line in a log file, so a test can assert exactly what reached the
origin.

    Log                  the JSON-lines event log ({"event": ..., "t": ...})
    Request              a parsed request head (+ trailers, body length)
    Connection           reading heads, lines, exact byte counts and bodies (Content-Length
                         or chunked with trailers); subclasses answer in _serve_one()
    main(parser, run)    the shared command line: --port (0: a free one) --host --name --log
                         --ready-file; binds, writes the port to --ready-file (atomically),
                         prints `ready PORT`, then run(listener, args, log)
    serve_forever()      the accept loop
"""

import argparse
import json
import os
import re
import socket
import threading
import time

from kit.http import header_tokens, header_value

HEAD_BYTES_MAX = 1 << 20
LINE_BYTES_MAX = 65536
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class PeerClosed(Exception):
    pass


class BadRequest(Exception):
    pass


class Log:
    def __init__(self, path):
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8") if path else None

    def write(self, **entry):
        entry["t"] = time.time()
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file:
                self._file.write(line)
                self._file.flush()


class Request:
    def __init__(self):
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = []
        self.trailers = []
        self.body_len = 0

    def header(self, name):
        return header_value(self.headers, name)

    def header_tokens(self, name):
        return header_tokens(self.headers, name)


def parse_head(head, req=None):
    """A Request from a raw head (without its blank line); BadRequest when it is not a
    strictly well-formed HTTP/1.x head."""
    req = req or Request()
    lines = head.decode("latin-1").split("\r\n")
    if any("\n" in line or "\r" in line for line in lines):
        raise BadRequest("bare CR or LF in head")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line")
    req.method, req.target, req.version = parts
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise BadRequest("obs-fold")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line")
        req.headers.append([name, value.strip(" \t")])
    return req


class Connection:
    """One accepted connection. Subclasses implement _serve_one() (False: close)."""

    def __init__(self, sock, peer, conn_id, log):
        self.sock = sock
        self.peer = peer
        self.id = conn_id
        self.log = log
        self.buf = bytearray()
        self.bytes_in = 0
        self.requests = 0
        self.scratch = bytearray(1 << 20)

    # --- input -------------------------------------------------------------------------
    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise PeerClosed()
        self.bytes_in += len(data)
        self.buf += data

    def _read_head(self):
        """The raw head (without the blank line), or None on a clean close before a byte."""
        while True:
            m = _HEAD_END.search(self.buf)
            if m:
                head = bytes(self.buf[:m.start()])
                del self.buf[:m.end()]
                return head
            if len(self.buf) > HEAD_BYTES_MAX:
                raise BadRequest("head too large")
            try:
                self._fill()
            except PeerClosed:
                if self.buf:
                    raise
                return None

    def _read_line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line.rstrip(b"\r\n")
            if len(self.buf) > LINE_BYTES_MAX:
                raise BadRequest("line too long")
            self._fill()

    def _read_exact_into(self, n, sink):
        take = min(n, len(self.buf))
        if take:
            sink(memoryview(self.buf)[:take])
            del self.buf[:take]
            n -= take
        view = memoryview(self.scratch)
        while n:
            got = self.sock.recv_into(view[:min(n, len(view))])
            if got == 0:
                raise PeerClosed()
            self.bytes_in += got
            sink(view[:got])
            n -= got

    def _expect_crlf(self):
        if self._read_line():
            raise BadRequest("chunk data not followed by CRLF")

    def _read_body(self, req, sink):
        """Consumes the body the head announces (chunked: trailers into req.trailers),
        passing its bytes to sink(memoryview)."""
        te = req.header_tokens("transfer-encoding")
        if te:
            if te[-1] != "chunked":
                raise BadRequest("unsupported transfer-encoding")
            while True:
                size_line = self._read_line()
                size_text = size_line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadRequest("bad chunk size %r" % size_line) from None
                if size == 0:
                    break
                self._read_exact_into(size, sink)
                self._expect_crlf()
            while True:  # trailer section
                line = self._read_line()
                if not line:
                    break
                name, _, value = line.decode("latin-1").partition(":")
                req.trailers.append([name, value.strip()])
            return
        cl = req.header("content-length")
        if cl is not None:
            if not cl.strip().isdigit():
                raise BadRequest("bad content-length")
            self._read_exact_into(int(cl), sink)

    # --- the request loop --------------------------------------------------------------
    def serve(self):
        self.log.write(event="connect", conn=self.id, peer="%s:%d" % self.peer)
        try:
            while self._serve_one():
                pass
        except (PeerClosed, OSError, BadRequest):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.log.write(event="close", conn=self.id, bytes_in=self.bytes_in,
                           requests=self.requests)

    def _serve_one(self):
        raise NotImplementedError


def serve_forever(listener, make_connection):
    """Accepts forever; make_connection(sock, peer, conn_id) -> Connection, served on a
    thread of its own. Connection ids count from 1."""
    next_id = 0
    while True:
        sock, peer = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        next_id += 1
        threading.Thread(target=make_connection(sock, peer, next_id).serve,
                         daemon=True).start()


def main(description, default_name, run):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default=default_name)
    ap.add_argument("--log", default=None)
    ap.add_argument("--ready-file", default=None)
    args = ap.parse_args()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(1024)
    port = listener.getsockname()[1]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.ready_file)
    print("ready %d" % port, flush=True)
    try:
        run(listener, args, Log(args.log))
    except KeyboardInterrupt:
        pass
    return 0
