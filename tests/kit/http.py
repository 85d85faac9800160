"""HTTP/1.1 on raw sockets: the one response reader every test, benchmark and tool uses.

    build_request(), chunked_encode()   request bytes exactly as written
    HttpReader                          incremental response parser (Content-Length,
                                        chunked, to EOF, 1xx interim, HEAD/204/304)
    HttpConnection                      one client connection with the reader on top
    BytesReader                         the reader over bytes already received
    send_raw(), get()                   one exchange on a new connection
    http_get(port, path)                (status, {lower-case name: value}, body) for tools
"""

import errno
import json
import socket
import time

from kit.procs import LOOPBACK

DEFAULT_HOST = "example.test"

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


def header_value(headers, name):
    """The first value of header `name` (case-insensitive) in [(name, value)], or None."""
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def header_tokens(headers, name):
    """The comma-separated tokens of every `name` header, lower-cased, in order."""
    name = name.lower()
    out = []
    for k, v in headers:
        if k.lower() == name:
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
    return out


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
        return header_value(self.headers, name)

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def tokens(self, name):
        return header_tokens(self.headers, name)

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


def http_get(port, path="/", timeout=5.0, host=LOOPBACK):
    """One GET on a fresh connection (Connection: close): (status, {lower-case header:
    value}, body); the last value wins for a repeated header. A peer that answers no HTTP
    gives (0, {}, b"") and socket errors raise OSError, as tools polling for readiness want."""
    try:
        with HttpConnection(port, host=host, timeout=timeout) as c:
            r = c.request("GET", path, [("Connection", "close")], timeout=timeout,
                          host="%s:%d" % (host, port))
    except (ProtocolError, ConnectionClosed):
        return 0, {}, b""
    return r.status, {k.lower(): v for k, v in r.headers}, r.body
