#!/usr/bin/python3
"""A scriptable, misbehaving origin server for ringmaster's hardening tests.

Unlike backend.py, which is a correct HTTP/1.1 server, this one answers with exactly the
bytes a test asks for, however wrong: ambiguous framing, bad status lines, control bytes in
header values, bodies cut short, bodies after HEAD/204/304, a second response appended to
the first... It is started as a separate process by the tests:

    evil_backend.py --port P --log FILE [--ready-file FILE] [--name NAME]

`--port 0` binds a free port; the chosen port is written to --ready-file (atomically) and
printed as `ready PORT` on stdout once the socket listens.

Per accepted connection it reads one request head at a time (and the body the head
announces, so that a well-framed request is consumed), then answers according to the path:

    /r/<name>[?...]   the canned response RESPONSES[<name>]: its byte parts sent in order
                      (a float part is a pause in seconds, a deliberate delay), then the
                      connection is kept reading ("keep"), closed ("close"), or held open
                      without ever answering again ("hang")
    anything else     a correct, uncacheable 200 whose body is "ok <target>\\n" and which
                      names the connection in X-Evil-Conn (HEAD: the head only)

After a canned response the connection keeps serving requests ("keep") exactly like any
other: if the proxy reuses a connection that it should have dropped, the next request shows
up in the log on the same connection id, and the proxy reads whatever stray bytes the canned
response left behind as the next response.

Each event is one JSON line in --log:

    {"event": "connect", "conn": 1, "peer": "127.0.0.1:40000", "t": ...}
    {"event": "request", "conn": 1, "seq": 1, "method": "GET", "target": "/r/x",
     "headers": [["Host", "x"], ...], "body_len": 0, "response": "x", "t": ...}
    {"event": "sent", "conn": 1, "seq": 1, "response": "x", "t": ...}   (every part sent)
    {"event": "close", "conn": 1, "requests": 1, "t": ...}
"""

import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

# The origin-server core shared with backend.py lives in the test kit.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kit import origin  # noqa: E402

# A complete response that must never reach a client: it is what a desynchronised proxy
# would read as "the next response" if it reused a connection after a stray body.
POISON = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n"
          b"X-Poison: 1\r\n\r\npoisoned\n")


def _resp(head_lines, body=b""):
    return ("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1") + body


class Canned:
    def __init__(self, *parts, then="keep"):
        assert then in ("keep", "close", "hang")
        self.parts = parts
        self.then = then


# Every canned response is cacheable by default rules if the proxy mistook it for a good
# one (a 200 without Cache-Control), so a test can also check that nothing of it is stored.
RESPONSES = {
    # --- controls: correct responses ---------------------------------------------------
    "good": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 5"], b"hello")),
    "good_chunked": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"],
                                 b"5\r\nhello\r\n0\r\n\r\n")),

    # --- ambiguous or invalid framing ----------------------------------------------------
    "cl_te": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 5",
                           "Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n")),
    "te_cl": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                           "Content-Length: 5"], b"5\r\nhello\r\n0\r\n\r\n")),
    "two_cl": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6"],
                           b"hello!")),
    "cl_list": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 1,1"], b"x")),
    "cl_plus": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: +5"], b"hello")),
    "cl_negative": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: -1"], b"hello")),
    "cl_hex": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 0x5"], b"hello")),
    "te_gzip": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: gzip"],
                            b"\x1f\x8b\x08\x00not-really-gzip"), then="close"),
    "te_chunked_then_x": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                                       "Transfer-Encoding: x"], b"5\r\nhello\r\n0\r\n\r\n")),

    # --- status lines --------------------------------------------------------------------
    "status_2000": Canned(_resp(["HTTP/1.1 2000 OK", "Content-Length: 2"], b"ok")),
    "status_abc": Canned(_resp(["HTTP/1.1 abc", "Content-Length: 2"], b"ok")),
    "status_icy": Canned(_resp(["ICY 200 OK", "Content-Length: 2"], b"ok")),
    "status_http2": Canned(_resp(["HTTP/2 200", "Content-Length: 2"], b"ok")),
    "status_lowercase": Canned(_resp(["http/1.1 200 OK", "Content-Length: 2"], b"ok")),
    "status_http09": Canned(b"just a body, no status line\n", then="close"),
    # Lenient-but-valid forms (RFC 9112 4: the reason phrase may be empty).
    "status_no_reason": Canned(_resp(["HTTP/1.1 200", "Content-Length: 2"], b"ok")),
    "status_empty_reason": Canned(_resp(["HTTP/1.1 200 ", "Content-Length: 2"], b"ok")),

    # --- header fields -------------------------------------------------------------------
    "value_cr": Canned(_resp(["HTTP/1.1 200 OK", "X-A: a\rb", "Content-Length: 2"], b"ok")),
    "value_lf": Canned(_resp(["HTTP/1.1 200 OK", "X-A: a\nSet-Cookie: injected=1",
                              "Content-Length: 2"], b"ok")),
    "value_nul": Canned(_resp(["HTTP/1.1 200 OK", "X-A: a\x00b", "Content-Length: 2"], b"ok")),
    "obs_fold": Canned(_resp(["HTTP/1.1 200 OK", "X-A: a", " folded", "Content-Length: 2"],
                             b"ok")),
    "space_before_colon": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length : 5"],
                                       b"hello" + POISON)),
    "bare_lf_head": Canned(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),

    # --- bodies cut short or broken mid-stream ------------------------------------------
    "cut_close": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 100"], b"0123456789"),
                        then="close"),
    "cut_hang": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 100"], b"0123456789"),
                       then="hang"),
    "chunked_cut_close": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"],
                                      b"5\r\nhello\r\n"), then="close"),
    "chunk_bad_size": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"],
                                   b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")),
    "chunk_size_overflow": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"],
                                        b"5\r\nhello\r\nffffffffffffffffffff\r\nworld\r\n"
                                        b"0\r\n\r\n")),
    "chunk_missing_crlf": Canned(_resp(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"],
                                       b"5\r\nhelloXX0\r\n\r\n")),

    # --- bodies where none may be (the stray body is itself a complete response) --------
    "head_with_body": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: %d" % len(POISON)],
                                   POISON)),
    "204_with_body": Canned(_resp(["HTTP/1.1 204 No Content"], POISON)),
    "204_with_cl_body": Canned(_resp(["HTTP/1.1 204 No Content",
                                      "Content-Length: %d" % len(POISON)], POISON)),
    "304_with_body": Canned(_resp(["HTTP/1.1 304 Not Modified", 'ETag: "e1"',
                                   "Content-Length: %d" % len(POISON)], POISON)),

    # --- more bytes after a complete response -------------------------------------------
    "extra_response": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 5"], b"hello")
                             + POISON),
    # The poison arrives while the connection sits idle in the proxy's pool.
    "late_extra_response": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 5"], b"hello"),
                                  0.2, POISON),
    "extra_garbage": Canned(_resp(["HTTP/1.1 200 OK", "Content-Length: 5"], b"hello")
                            + b"garbage\r\n\r\n"),

    # --- interim responses (valid): 103 Early Hints and a 100 before the final response -
    "early_hints": Canned(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                          b"HTTP/1.1 100 Continue\r\n\r\n"
                          + _resp(["HTTP/1.1 200 OK", "Content-Length: 5"], b"hello")),

    # --- a protocol switch nobody asked for ---------------------------------------------
    "switching": Canned(_resp(["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                               "Connection: Upgrade"], b"\x81\x05hello")),
}

class Connection(origin.Connection):
    def _serve_one(self):
        head = self._read_head()
        if head is None:
            return False
        self.requests += 1
        req = origin.parse_head(head)  # the proxy's heads are well-formed
        method, target, headers = req.method, req.target, req.headers

        def count(view):
            req.body_len += len(view)
        self._read_body(req, count)
        body_len = req.body_len
        path = urlsplit(target).path
        name = path[len("/r/"):] if path.startswith("/r/") else None
        canned = RESPONSES.get(name) if name else None
        self.log.write(event="request", conn=self.id, seq=self.requests, method=method,
                       target=target, headers=headers, body_len=body_len,
                       response=name if canned else "normal")
        if canned is None:
            body = ("ok %s\n" % target).encode("latin-1")
            out = _resp(["HTTP/1.1 200 OK", "Content-Type: text/plain",
                         "Cache-Control: no-store", "X-Evil-Conn: %d" % self.id,
                         "Content-Length: %d" % len(body)])
            self.sock.sendall(out if method == "HEAD" else out + body)
            self.log.write(event="sent", conn=self.id, seq=self.requests, response="normal")
            return True
        for part in canned.parts:
            if isinstance(part, float):
                time.sleep(part)  # the deliberate delay this response is about
            else:
                self.sock.sendall(part)
        self.log.write(event="sent", conn=self.id, seq=self.requests, response=name)
        if canned.then == "close":
            self.sock.shutdown(socket.SHUT_WR)
            return False
        if canned.then == "hang":
            while True:  # hold the connection, answer nothing, until the peer goes away
                self._fill()
        return True


def main():
    return origin.main(__doc__.split("\n")[0], "evil", lambda listener, _args, log:
                       origin.serve_forever(listener, lambda sock, peer, conn_id:
                                            Connection(sock, peer, conn_id, log)))


if __name__ == "__main__":
    sys.exit(main())
