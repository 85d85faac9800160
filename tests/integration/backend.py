#!/usr/bin/python3
"""Test backend for ringmaster's integration tests.

A small HTTP/1.1 origin server on raw sockets and one thread per connection (not
http.server: the tests need to control, and to see, the exact bytes). It is started as a
separate process by the test harness:

    backend.py --port P --name NAME --log FILE [--ready-file FILE]

`--port 0` binds a free port; the chosen port is written to --ready-file (atomically) and
printed as `ready PORT` on stdout once the socket listens.

Every accepted connection, every request received and every closed connection is written
as one JSON line to --log, so a test can assert exactly what the backend saw:

    {"event": "connect", "conn": 1, "peer": "127.0.0.1:40000", "t": ...}
    {"event": "request", "conn": 1, "seq": 1, "method": "GET", "target": "/", "version":
     "HTTP/1.1", "headers": [["Host", "x"], ...], "body_len": 0, "body_sha256": "...",
     "trailers": [], "parse_error": null, "t": ...}
    {"event": "close", "conn": 1, "bytes_in": 123, "requests": 1, "t": ...}

A request head the backend cannot parse is still logged (with "parse_error" and "raw_head")
and answered with 400: the point is to notice anything that reached it.

Endpoints (query parameters in brackets):
    /echo                     JSON of what was received (method, target, headers, body...)
    /upload [read_pause_ms=N] consumes the body while hashing it; JSON {"len", "sha256"};
                              pausing N ms after each piece read (any path takes it)
    /download [bytes=N, chunked=0|1, framing=cl|chunked|close, chunk=N, close=1]
                              N bytes of the deterministic pattern (see pattern_bytes);
                              close=1: Connection: close, and the connection closes after
    /status [code=N]          that status; 204 and 304 carry no body (304 announces a
                              Content-Length of the representation, as RFC 9110 allows)
    /slow [ms=N]              waits N ms, then answers like /
    /hang                     reads the request, never answers (until the peer closes)
    /truncate                 announces Content-Length 1000, sends 100 bytes, closes
    /headers                  a response carrying hop-by-hop headers plus X-Normal
    /close                    answers like / with Connection: close, then closes
    /cacheable[/ANY] [cc=V, max_age=N, vary=V, etag=V, last_modified=V, expires=V, date=V,
                age=N, set_cookie=1, status=N, bytes=N, delay_ms=N, gate=NAME]
                              a response for cache tests: the header values given (cc is
                              Cache-Control verbatim, max_age appends max-age=N to it;
                              set_cookie=1 adds Set-Cookie), after delay_ms, with the body
                              "NAME TARGET n=SERIAL ae=ACCEPT-ENCODING auth=yes|no\n"
                              padded with '.' to `bytes` bytes; SERIAL counts /cacheable
                              requests (1, 2, ...) and is also sent as X-Serial, so a test
                              tells a stored response from a fresh one; gate=NAME
                              holds the answer (the request is logged) until a file
                              gate-NAME exists next to --log (30 s at most)
    anything else             200 "NAME <target>\\n"

Every response carries `X-Backend: NAME`. HEAD gets the headers of the GET without a body.
`Expect: 100-continue` gets an interim `100 Continue` before the body is read.
"""

import hashlib
import json
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# The origin-server core shared with evil_backend.py lives in the test kit.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kit import origin  # noqa: E402
from kit.origin import BadRequest  # noqa: E402

# ---------------------------------------------------------------------------------------
# Deterministic data. The pattern has a prime period so that no buffer size in the proxy
# lines up with it: a dropped, duplicated or reordered buffer changes the checksum.
PATTERN_PERIOD = 65521
_SPAN_MAX = 1 << 20


def _make_block():
    out = bytearray()
    digest = b"ringmaster-pattern"
    while len(out) < PATTERN_PERIOD:
        digest = hashlib.sha256(digest).digest()
        out += digest
    return bytes(out[:PATTERN_PERIOD])


PATTERN_BLOCK = _make_block()
_PATTERN_BUF = PATTERN_BLOCK * (_SPAN_MAX // PATTERN_PERIOD + 2)


def pattern_bytes(offset, size):
    """The `size` (<= 1 MiB) pattern bytes starting at stream offset `offset`."""
    if size > _SPAN_MAX:
        raise ValueError("pattern_bytes: size over 1 MiB, iterate with pattern_chunks")
    start = offset % PATTERN_PERIOD
    return memoryview(_PATTERN_BUF)[start:start + size]


def pattern_chunks(total, chunk_size=_SPAN_MAX):
    """Yields memoryviews covering the first `total` pattern bytes, chunk_size at most."""
    offset = 0
    while offset < total:
        size = min(chunk_size, total - offset)
        yield pattern_bytes(offset, size)
        offset += size


_sha_cache = {}


def pattern_sha256(total):
    """Hex sha256 of the first `total` pattern bytes (cached per size)."""
    if total not in _sha_cache:
        h = hashlib.sha256()
        for piece in pattern_chunks(total):
            h.update(piece)
        _sha_cache[total] = h.hexdigest()
    return _sha_cache[total]


# Chunk sizes used by chunked downloads unless chunk=N is given: small and odd ones to
# exercise the proxy's chunk parser, large ones to keep big transfers fast.
CHUNK_SIZES = (1, 10, 100, 4096, 65521, 1 << 20)

HOP_BY_HOP_RESPONSE_HEADERS = [
    ("Connection", "X-Custom"),
    ("X-Custom", "1"),
    ("Keep-Alive", "timeout=5, max=100"),
    ("Upgrade", "foo/1"),
    ("Proxy-Connection", "keep-alive"),
    ("X-Normal", "yes"),
]

class Request(origin.Request):
    def __init__(self):
        super().__init__()
        self.body_kept = bytearray()
        self.hasher = hashlib.sha256()


class Connection(origin.Connection):
    KEEP_BODY_MAX = 1 << 20

    def __init__(self, sock, peer, conn_id, server):
        super().__init__(sock, peer, conn_id, server.log)
        self.server = server

    # --- output ------------------------------------------------------------------------
    def _send_head(self, status, reason, headers, keep_alive):
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        lines.append("X-Backend: %s" % self.server.name)
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _respond(self, req, status, body, headers=(), keep_alive=True, reason=None,
                 content_length=True):
        headers = list(headers)
        if content_length:
            headers.append(("Content-Length", str(len(body))))
        head = self._send_head(status, reason or REASONS.get(status, "Status"), headers,
                               keep_alive)
        if req.method == "HEAD":
            body = b""
        self.sock.sendall(head + body)

    # --- the request loop --------------------------------------------------------------
    def _parse_head(self, head):
        return origin.parse_head(head, Request())

    def _serve_one(self):
        log = self.server.log
        head = self._read_head()
        if head is None:
            return False
        self.requests += 1
        try:
            req = self._parse_head(head)
        except BadRequest as e:
            log.write(event="request", conn=self.id, seq=self.requests, method=None,
                      target=None, version=None, headers=[], body_len=0, body_sha256=None,
                      trailers=[], parse_error=str(e),
                      raw_head=head[:65536].decode("latin-1"))
            self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
            return False

        has_body = bool(req.header_tokens("transfer-encoding")) or \
            req.header("content-length") not in (None, "0")
        if has_body and "100-continue" in req.header_tokens("expect"):
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        # read_pause_ms=N: a slow reader, N ms after each piece of the body it takes.
        read_pause_s = float(parse_qs(urlsplit(req.target).query)
                             .get("read_pause_ms", ["0"])[-1]) / 1000.0

        def sink(view):
            req.body_len += len(view)
            req.hasher.update(view)
            room = self.KEEP_BODY_MAX - len(req.body_kept)
            if room > 0:
                req.body_kept += view[:room]
            if read_pause_s:
                time.sleep(read_pause_s)

        parse_error = None
        try:
            self._read_body(req, sink)
        except BadRequest as e:
            parse_error = str(e)
        log.write(event="request", conn=self.id, seq=self.requests, method=req.method,
                  target=req.target, version=req.version, headers=req.headers,
                  body_len=req.body_len, body_sha256=req.hasher.hexdigest(),
                  trailers=req.trailers, parse_error=parse_error)
        if parse_error:
            self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
            return False

        conn_tokens = req.header_tokens("connection")
        if req.version == "HTTP/1.0":
            keep_alive = "keep-alive" in conn_tokens
        else:
            keep_alive = "close" not in conn_tokens
        return self._route(req, keep_alive) and keep_alive

    def _route(self, req, keep_alive):
        """Answers req; returns False when the connection must not be reused."""
        name = self.server.name
        url = urlsplit(req.target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        extra = [("Connection", "keep-alive")] if keep_alive and req.version == "HTTP/1.0" \
            else []

        if path == "/echo":
            body = json.dumps({
                "backend": name, "method": req.method, "target": req.target,
                "version": req.version, "headers": req.headers, "trailers": req.trailers,
                "body_len": req.body_len, "body_sha256": req.hasher.hexdigest(),
                "body": bytes(req.body_kept).decode("latin-1"),
            }).encode()
            self._respond(req, 200, body, extra + [("Content-Type", "application/json")],
                          keep_alive)
        elif path == "/upload":
            body = json.dumps({"backend": name, "len": req.body_len,
                               "sha256": req.hasher.hexdigest()}).encode()
            self._respond(req, 200, body, extra + [("Content-Type", "application/json")],
                          keep_alive)
        elif path == "/download":
            return self._download(req, query, keep_alive, extra)
        elif path == "/status":
            code = int(query.get("code", "200"))
            if code in (204, 304) or 100 <= code < 200:
                headers = extra
                if code == 304:
                    headers = extra + [("ETag", '"v1"'), ("Content-Length", "12")]
                head = self._send_head(code, REASONS.get(code, "Status"), headers,
                                       keep_alive)
                self.sock.sendall(head)
            else:
                self._respond(req, code, b"status %d\n" % code, extra, keep_alive)
        elif path == "/slow":
            time.sleep(int(query.get("ms", "1000")) / 1000.0)
            self._respond(req, 200, ("%s %s\n" % (name, req.target)).encode(), extra,
                          keep_alive)
        elif path == "/hang":
            while True:  # never answer; hold the connection until the peer goes away
                self._fill()
        elif path == "/truncate":
            head = self._send_head(200, "OK", [("Content-Length", "1000")], True)
            self.sock.sendall(head + b"t" * 100)
            self.sock.shutdown(socket.SHUT_WR)
            return False
        elif path == "/headers":
            self._respond(req, 200, b"headers\n", HOP_BY_HOP_RESPONSE_HEADERS, keep_alive)
        elif path == "/cacheable" or path.startswith("/cacheable/"):
            self._cacheable(req, query, keep_alive, extra)
        elif path == "/close":
            self._respond(req, 200, ("%s %s\n" % (name, req.target)).encode(),
                          keep_alive=False)
            return False
        else:
            self._respond(req, 200, ("%s %s\n" % (name, req.target)).encode(),
                          extra + [("Content-Type", "text/plain")], keep_alive)
        return True

    def _cacheable(self, req, query, keep_alive, extra):
        if "delay_ms" in query:
            time.sleep(int(query["delay_ms"]) / 1000.0)
        if "gate" in query:
            self.server.wait_gate(query["gate"])
        serial = self.server.next_serial()
        cc = [query["cc"]] if query.get("cc") else []
        if "max_age" in query:
            cc.append("max-age=%d" % int(query["max_age"]))
        headers = list(extra) + [("Content-Type", "text/plain"), ("X-Serial", str(serial))]
        if cc:
            headers.append(("Cache-Control", ", ".join(cc)))
        for key, name in (("vary", "Vary"), ("etag", "ETag"), ("last_modified", "Last-Modified"),
                          ("expires", "Expires"), ("date", "Date"), ("age", "Age"),
                          ("location", "Location"), ("content_location", "Content-Location"),
                          ("surrogate_control", "Surrogate-Control")):
            if key in query:
                headers.append((name, query[key]))
        if query.get("set_cookie") == "1":
            headers.append(("Set-Cookie", "session=%d; Path=/" % serial))
        # revalidate=1: a conditional request whose validator matches gets a 304 (with the
        # same fields, X-Serial counting on) instead of the body.
        if query.get("revalidate") == "1" and (
                ("etag" in query and req.header("if-none-match") == query["etag"]) or
                ("last_modified" in query and
                 req.header("if-modified-since") == query["last_modified"])):
            self.sock.sendall(self._send_head(304, "Not Modified", headers, keep_alive))
            return
        body = ("%s %s n=%d ae=%s auth=%s\n" % (
            self.server.name, req.target, serial, req.header("accept-encoding") or "-",
            "yes" if req.header("authorization") is not None else "no")).encode("latin-1")
        size = int(query.get("bytes", "0"))
        if size > len(body):
            body += b"." * (size - len(body))
        # X-Backend-Status (a request header, not part of the cache key) overrides ?status.
        status = int(req.header("x-backend-status") or query.get("status", "200"))
        self._respond(req, status, body, headers, keep_alive)

    def _download(self, req, query, keep_alive, extra):
        total = int(query.get("bytes", "0"))
        framing = query.get("framing") or ("chunked" if query.get("chunked") == "1" else "cl")
        chunk = int(query["chunk"]) if "chunk" in query else None
        head_only = req.method == "HEAD"
        if query.get("close") == "1":
            keep_alive = False
        if framing == "cl":
            head = self._send_head(200, "OK", extra + [("Content-Length", str(total))],
                                   keep_alive)
            self.sock.sendall(head)
            if not head_only:
                for piece in pattern_chunks(total):
                    self.sock.sendall(piece)
            return keep_alive
        if framing == "close":
            self.sock.sendall(self._send_head(200, "OK", [], False))
            if not head_only:
                for piece in pattern_chunks(total):
                    self.sock.sendall(piece)
            self.sock.shutdown(socket.SHUT_WR)
            return False
        # chunked
        head = self._send_head(200, "OK", extra + [("Transfer-Encoding", "chunked")],
                               keep_alive)
        self.sock.sendall(head)
        if head_only:
            return True
        offset = 0
        i = 0
        while offset < total:
            size = min(chunk or CHUNK_SIZES[i % len(CHUNK_SIZES)], total - offset)
            i += 1
            self.sock.sendall(b"%x\r\n" % size)
            self.sock.sendall(pattern_bytes(offset, size))
            self.sock.sendall(b"\r\n")
            offset += size
        self.sock.sendall(b"0\r\n\r\n")
        return True


REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 404: "Not Found",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}


class Server:
    GATE_WAIT_MAX_S = 30.0

    def __init__(self, name, log, gate_dir):
        self.name = name
        self.log = log
        self.gate_dir = gate_dir
        self._lock = threading.Lock()
        self._serial = 0

    def next_serial(self):
        with self._lock:
            self._serial += 1
            return self._serial

    def wait_gate(self, name):
        """Returns once the file gate-NAME exists in the log's directory (or after 30 s)."""
        gate = self.gate_dir / ("gate-" + name)
        deadline = time.monotonic() + self.GATE_WAIT_MAX_S
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def connection(self, sock, peer, conn_id):
        return Connection(sock, peer, conn_id, self)


def main():
    def run(listener, args, log):
        gate_dir = Path(args.log).resolve().parent if args.log else Path.cwd()
        return origin.serve_forever(listener, Server(args.name, log, gate_dir).connection)
    return origin.main(__doc__.split("\n")[0], "backend", run)


if __name__ == "__main__":
    sys.exit(main())
