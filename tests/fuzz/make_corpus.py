#!/usr/bin/python3
"""Writes the seed corpus of the libFuzzer targets: tests/fuzz/corpus/<target>/<name>.

    tests/fuzz/make_corpus.py        (re)writes every seed; files it does not know are kept
                                     (inputs worth keeping that a run found, say)

The seeds are small, readable and each one names what it exercises. request_fuzz and
response_fuzz inputs start with a configuration byte and piece sizes (fuzz_common.h);
cache_policy_fuzz inputs with 11 bytes of status, flags, clock and TTL
(cache_policy_fuzz.cc).
"""

import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

# Piece-size patterns: () = one byte at a time; others cycle.
WHOLE_ISH = (63,)       # 64-byte pieces
ODD = (2, 6, 0)         # 3, 7, 1, ...
ONES = ()


def fuzz_prefix(pieces=ODD, flags=0):
    assert len(pieces) <= 7
    return bytes([len(pieces) | flags]) + bytes(pieces)


# Request flags (request_fuzz.cc): small head limits, small body limit.
SMALL_HEAD = 0x08
SMALL_BODY = 0x10
# Response flags (response_fuzz.cc).
R_SMALL_HEAD = 0x08
R_HEAD = 0x10
R_CLIENT_10 = 0x20
R_CLIENT_CLOSE = 0x40


def req(line, *fields, body=b"", host="example.test"):
    head = line + "\r\n"
    if host is not None:
        head += "Host: %s\r\n" % host
    head += "".join(f + "\r\n" for f in fields) + "\r\n"
    return head.encode("latin-1") + body


REQUESTS = {
    "get-simple": req("GET / HTTP/1.1"),
    "get-fields": req("GET /a/b?c=d&e HTTP/1.1", "User-Agent: fuzz/1.0", "Accept: */*",
                      "Accept-Encoding: gzip, br", "Cookie: a=b; c=d", "X-Empty:",
                      "X-Tab:\tvalue\t"),
    "head": req("HEAD /x HTTP/1.1"),
    "post-content-length": req("POST /upload HTTP/1.1", "Content-Length: 11",
                               body=b"hello world"),
    "post-content-length-zero": req("POST /empty HTTP/1.1", "Content-Length: 0"),
    "post-chunked": req("POST /c HTTP/1.1", "Transfer-Encoding: chunked",
                        body=b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n"
                             b"X-Trailer: t\r\n\r\n"),
    "chunk-extensions-multiple": req("POST /c HTTP/1.1", "Transfer-Encoding: chunked",
                                     body=b"1;a=1;b=2\r\nx\r\n0\r\n\r\n"),
    "chunk-extension-quoted": req("POST /c HTTP/1.1", "Transfer-Encoding: chunked",
                                  body=b"1;name=\"quoted value\"\r\nx\r\n0\r\n\r\n"),
    "put-chunked-leading-zeros": req("PUT /z HTTP/1.1", "Transfer-Encoding: chunked",
                                     body=b"0005\r\nhello\r\n00\r\n\r\n"),
    "post-chunked-uppercase-hex": req("POST /u HTTP/1.1", "Transfer-Encoding: chunked",
                                      body=b"A\r\n0123456789\r\n0\r\n\r\n"),
    "pipelined-gets": req("GET /1 HTTP/1.1") + req("GET /2 HTTP/1.1") + req("GET /3 HTTP/1.1"),
    "pipelined-post-then-get": req("POST /p HTTP/1.1", "Content-Length: 3", body=b"abc")
                               + req("GET /after HTTP/1.1"),
    "pipelined-after-close": req("GET /1 HTTP/1.1", "Connection: close") + req("GET /2 HTTP/1.1"),
    "http10-no-host": req("GET /old HTTP/1.0", host=None),
    "http10-keep-alive": req("GET /ka HTTP/1.0", "Connection: keep-alive"),
    "absolute-form": req("GET http://Other.Example:8080/p?q HTTP/1.1"),
    "absolute-form-query-only": req("GET http://h.example?q=1 HTTP/1.1", host="h.example"),
    "absolute-form-https-root": req("GET https://h.example HTTP/1.1"),
    "options-asterisk": req("OPTIONS * HTTP/1.1"),
    "expect-continue": req("POST /e HTTP/1.1", "Expect: 100-continue", "Content-Length: 2",
                           body=b"ok"),
    "expect-other": req("POST /e HTTP/1.1", "Expect: something", "Content-Length: 2", body=b"ok"),
    "connection-names-field": req("GET / HTTP/1.1", "Connection: X-Hop, keep-alive", "X-Hop: 1",
                                  "X-Keep: 2"),
    "connection-names-content-length": req("POST / HTTP/1.1", "Connection: Content-Length",
                                           "Content-Length: 3", body=b"abc"),
    "forwarded-fields": req("GET / HTTP/1.1", "X-Forwarded-For: 10.0.0.1",
                            "X-Forwarded-For: 10.0.0.2, 10.0.0.3", "X-Forwarded-Proto: https",
                            "Via: 1.1 a, 1.0 b", "Via: 1.1 c"),
    "hop-by-hop": req("GET / HTTP/1.1", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
                      "TE: trailers", "Trailer: X-T", "Upgrade: websocket"),
    "h2c-upgrade": req("GET / HTTP/1.1", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                       "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
    # --- smuggling and framing ---
    "smuggle-cl-te": req("POST / HTTP/1.1", "Content-Length: 6", "Transfer-Encoding: chunked",
                         body=b"0\r\n\r\nG"),
    "smuggle-te-cl": req("POST / HTTP/1.1", "Transfer-Encoding: chunked", "Content-Length: 3",
                         body=b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
    "smuggle-te-xchunked": req("POST / HTTP/1.1", "Transfer-Encoding: xchunked",
                               body=b"0\r\n\r\n"),
    "smuggle-te-space-before-colon": req("POST / HTTP/1.1", "Transfer-Encoding : chunked",
                                         body=b"0\r\n\r\n"),
    "smuggle-te-chunked-identity": req("POST / HTTP/1.1", "Transfer-Encoding: chunked, identity",
                                       body=b"0\r\n\r\n"),
    "smuggle-te-gzip-chunked": req("POST / HTTP/1.1", "Transfer-Encoding: gzip, chunked",
                                   body=b"0\r\n\r\n"),
    "smuggle-te-twice": req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                            "Transfer-Encoding: identity", body=b"0\r\n\r\n"),
    "smuggle-te-tab": req("POST / HTTP/1.1", "Transfer-Encoding:\tchunked", body=b"0\r\n\r\n"),
    "smuggle-te-http10": req("POST / HTTP/1.0", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "duplicate-content-length": req("POST / HTTP/1.1", "Content-Length: 3", "Content-Length: 3",
                                    body=b"abc"),
    "content-length-list": req("POST / HTTP/1.1", "Content-Length: 3, 3", body=b"abc"),
    "content-length-plus": req("POST / HTTP/1.1", "Content-Length: +3", body=b"abc"),
    "content-length-negative": req("POST / HTTP/1.1", "Content-Length: -1"),
    "content-length-huge": req("POST / HTTP/1.1", "Content-Length: 99999999999999999999999"),
    "content-length-over-small-limit": req("POST / HTTP/1.1", "Content-Length: 101",
                                           body=b"x" * 20),
    "chunk-size-overflow": req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                               body=b"fffffffffffffffff1\r\nx\r\n0\r\n\r\n"),
    "chunk-over-small-limit": req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                  body=b"40\r\n" + b"y" * 64 + b"\r\n40\r\n" + b"z" * 64 + b"\r\n0\r\n\r\n"),
    "chunk-extension-long": req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                body=b"1;" + b"e" * 300 + b"\r\nx\r\n0\r\n\r\n"),
    "chunk-missing-crlf": req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                              body=b"3\r\nabcX\r\n0\r\n\r\n"),
    "chunk-bare-lf": req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                         body=b"3\nabc\n0\n\n"),
    "trailer-framing-field": req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                 body=b"1\r\nx\r\n0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "obs-fold": req("GET / HTTP/1.1", "X-Folded: a", " b"),
    "bare-lf-request-line": b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    "bare-lf-end": b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    "nul-in-value": req("GET / HTTP/1.1", "X-Nul: a\x00b"),
    "control-in-value": req("GET / HTTP/1.1", "X-Ctl: a\x01b\x7f"),
    "obs-text-in-value": req("GET / HTTP/1.1", "X-Latin: caf\xe9"),
    "space-before-colon": req("GET / HTTP/1.1", "X-Sp : v"),
    "empty-field-name": req("GET / HTTP/1.1", ": no-name"),
    "version-12": req("GET / HTTP/1.2"),
    "version-20": req("GET / HTTP/2.0"),
    "version-09": b"GET /\r\n\r\n",
    "version-lowercase": req("GET / http/1.1"),
    "missing-host": req("GET / HTTP/1.1", host=None),
    "duplicate-host": req("GET / HTTP/1.1", "Host: other.test"),
    "bad-host": req("GET / HTTP/1.1", host="a b"),
    "host-userinfo": req("GET http://user@h.example/ HTTP/1.1"),
    "connect": req("CONNECT h.example:443 HTTP/1.1", host="h.example:443"),
    "unknown-method": req("FOO / HTTP/1.1"),
    "lowercase-method": req("get / HTTP/1.1"),
    "target-fragment": req("GET /a#frag HTTP/1.1"),
    "double-space-request-line": req("GET  / HTTP/1.1"),
    "long-request-line": req("GET /" + "a" * 100 + " HTTP/1.1"),
    "many-fields": req("GET / HTTP/1.1", *["X-%d: %d" % (i, i) for i in range(12)]),
}

# Which configuration each request seed is fed with (default: odd pieces, no flags).
REQUEST_CONFIG = {
    "get-simple": fuzz_prefix(ONES),
    "pipelined-gets": fuzz_prefix(WHOLE_ISH),
    "post-chunked": fuzz_prefix(ONES),
    "content-length-over-small-limit": fuzz_prefix(ODD, SMALL_BODY),
    "chunk-over-small-limit": fuzz_prefix(ODD, SMALL_BODY),
    "long-request-line": fuzz_prefix(ODD, SMALL_HEAD),
    "many-fields": fuzz_prefix(ODD, SMALL_HEAD),
}


def resp(line, *fields, body=b""):
    return (line + "\r\n" + "".join(f + "\r\n" for f in fields) + "\r\n").encode("latin-1") + body


RESPONSES = {
    "content-length": resp("HTTP/1.1 200 OK", "Content-Type: text/plain", "Content-Length: 5",
                           body=b"hello"),
    "chunked": resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                    body=b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"),
    "close-delimited": resp("HTTP/1.1 200 OK", "Content-Type: text/plain", body=b"until close"),
    "http10-close-delimited": resp("HTTP/1.0 200 OK", body=b"old style"),
    "http10-keep-alive": resp("HTTP/1.0 200 OK", "Connection: keep-alive", "Content-Length: 2",
                              body=b"ok"),
    "continue-then-200": resp("HTTP/1.1 100 Continue") + resp("HTTP/1.1 200 OK", "Content-Length: 1",
                                                              body=b"x"),
    "early-hints-then-200": resp("HTTP/1.1 103 Early Hints", "Link: </s.css>; rel=preload")
                            + resp("HTTP/1.1 200 OK", "Content-Length: 0"),
    "switching-protocols": resp("HTTP/1.1 101 Switching Protocols", "Upgrade: h2c"),
    "no-content-with-body": resp("HTTP/1.1 204 No Content", "Content-Length: 5", body=b"hello")
                            + resp("HTTP/1.1 200 OK", "Content-Length: 0"),
    "not-modified-with-length": resp("HTTP/1.1 304 Not Modified", "ETag: \"v1\"",
                                     "Content-Length: 1234"),
    "head-content-length": resp("HTTP/1.1 200 OK", "Content-Length: 1234"),
    "head-chunked": resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"),
    "content-length-and-chunked": resp("HTTP/1.1 200 OK", "Content-Length: 5",
                                       "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "duplicate-content-length": resp("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6",
                                     body=b"hello!"),
    "gzip-chunked": resp("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
    "chunked-not-last": resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip",
                             body=b"0\r\n\r\n"),
    "status-two-digits": resp("HTTP/1.1 20 OK", "Content-Length: 0"),
    "status-600": resp("HTTP/1.1 600 Weird", "Content-Length: 0"),
    "status-no-reason": resp("HTTP/1.1 200", "Content-Length: 0"),
    "status-empty-reason": resp("HTTP/1.1 299 ", "Content-Length: 0"),
    "status-unknown": resp("HTTP/1.1 599 Custom Thing", "Content-Length: 0"),
    "reason-control": resp("HTTP/1.1 200 O\x01K", "Content-Length: 0"),
    "version-2": resp("HTTP/2.0 200 OK", "Content-Length: 0"),
    "obs-fold": resp("HTTP/1.1 200 OK", "X-Folded: a", " b", "Content-Length: 0"),
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "nul-in-value": resp("HTTP/1.1 200 OK", "X-Nul: a\x00b", "Content-Length: 0"),
    "connection-close": resp("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 3", body=b"bye"),
    "connection-names-field": resp("HTTP/1.1 200 OK", "Connection: X-Hop", "X-Hop: 1", "X-Keep: 2",
                                   "Keep-Alive: timeout=5", "Upgrade: foo", "Proxy-Connection: x",
                                   "Content-Length: 0"),
    "via-and-special": resp("HTTP/1.1 200 OK", "Via: 1.1 origin", "Via: 1.0 cdn", "Host: kept",
                            "Expect: kept", "X-Forwarded-For: kept", "Content-Length: 0"),
    "pipelined": resp("HTTP/1.1 200 OK", "Content-Length: 1", body=b"a")
                 + resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"1\r\nb\r\n0\r\n\r\n")
                 + resp("HTTP/1.1 204 No Content")
                 + resp("HTTP/1.1 404 Not Found", "Content-Length: 2", body=b"no"),
    "truncated-content-length": resp("HTTP/1.1 200 OK", "Content-Length: 1000", body=b"x" * 100),
    "truncated-chunked": resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"10\r\nabc"),
    "chunk-size-overflow": resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                                body=b"10000000000000000\r\nx\r\n0\r\n\r\n"),
    "empty-values": resp("HTTP/1.1 200 OK", "X-Empty:", "X-Spaces:   ", "Content-Length: 0"),
    "many-fields": resp("HTTP/1.1 200 OK", *["X-%d: %d" % (i, i) for i in range(12)],
                        "Content-Length: 0"),
}

RESPONSE_CONFIG = {
    "head-content-length": fuzz_prefix(ODD, R_HEAD),
    "head-chunked": fuzz_prefix(ODD, R_HEAD),
    "not-modified-with-length": fuzz_prefix(ONES),
    "chunked": fuzz_prefix(ONES),
    "close-delimited": fuzz_prefix(ODD, R_CLIENT_10),
    "http10-keep-alive": fuzz_prefix(ODD, R_CLIENT_10),
    "connection-close": fuzz_prefix(ODD, R_CLIENT_CLOSE),
    "pipelined": fuzz_prefix(WHOLE_ISH),
    "many-fields": fuzz_prefix(ODD, R_SMALL_HEAD),
}


def cache_input(status, fields, request_fields=(), target="/page?q=1", get=True, later=False,
                clock_s=0, ttl_ms=120000):
    head = struct.pack("<HBII", status - 100, (1 if get else 0) | (2 if later else 0), clock_s,
                       ttl_ms)
    text = "\n".join(fields) + "\n\n" + "\n".join(request_fields) + "\n\n" + target
    return head + text.encode("latin-1")


DATE = "Tue, 14 Nov 2023 22:13:20 GMT"  # the fuzzer's clock at offset 0
CACHE = {
    "max-age": cache_input(200, ["Cache-Control: public, max-age=60"]),
    "s-maxage-over-max-age": cache_input(200, ["Cache-Control: max-age=0, s-maxage=30"]),
    "max-age-huge": cache_input(200, ["Cache-Control: max-age=99999999999999999999"]),
    "max-age-quoted": cache_input(200, ["Cache-Control: max-age=\"60\""]),
    "expires-date": cache_input(200, ["Date: " + DATE, "Expires: Tue, 14 Nov 2023 23:13:20 GMT"]),
    "expires-rfc850": cache_input(200, ["Expires: Tuesday, 14-Nov-23 23:13:20 GMT"]),
    "expires-asctime": cache_input(200, ["Expires: Tue Nov 14 23:13:20 2023"]),
    "expires-invalid": cache_input(200, ["Expires: 0"]),
    "age-header": cache_input(200, ["Cache-Control: max-age=100", "Age: 30"], later=True),
    "age-huge": cache_input(200, ["Cache-Control: max-age=100", "Age: 18446744073709551616"]),
    "no-store": cache_input(200, ["Cache-Control: no-store"]),
    "private-no-cache": cache_input(200, ["Cache-Control: private, no-cache=\"Set-Cookie\""]),
    "set-cookie": cache_input(200, ["Set-Cookie: a=b", "Cache-Control: max-age=60"]),
    "vary": cache_input(200, ["Vary: Accept-Encoding, accept-language", "Cache-Control: max-age=60"],
                        ["Accept-Encoding: gzip", "Accept-Language: en", "Accept-Encoding: br"]),
    "vary-star": cache_input(200, ["Vary: *"]),
    "etag-if-none-match": cache_input(200, ["ETag: W/\"v1\"", "Cache-Control: max-age=60"],
                                      ["If-None-Match: \"v0\", W/\"v1\""]),
    "if-none-match-star": cache_input(200, ["ETag: \"v1\""], ["If-None-Match: *"]),
    "last-modified": cache_input(200, ["Last-Modified: Mon, 13 Nov 2023 00:00:00 GMT"],
                                 ["If-Modified-Since: " + DATE]),
    "authorization-public": cache_input(200, ["Cache-Control: public"], ["Authorization: Basic eA=="]),
    "authorization-must-revalidate": cache_input(200, ["Cache-Control: must-revalidate, max-age=5"],
                                                 ["Authorization: Bearer t"]),
    "request-no-cache": cache_input(200, ["Cache-Control: max-age=60"],
                                    ["Cache-Control: no-cache", "Pragma: no-cache"]),
    "request-range": cache_input(200, ["Cache-Control: max-age=60"], ["Range: bytes=0-1"]),
    "head-request": cache_input(200, ["Cache-Control: max-age=60"], get=False),
    "status-404": cache_input(404, []),
    "status-302": cache_input(302, ["Cache-Control: max-age=60"]),
    "status-206": cache_input(206, ["Cache-Control: max-age=60"]),
    "304-fields": cache_input(200, ["ETag: \"e\"", "Cache-Control: max-age=9", "Expires: " + DATE,
                                    "Vary: A", "Content-Location: /x", "Date: " + DATE,
                                    "Last-Modified: " + DATE, "Connection: X-Drop", "X-Drop: 1"]),
}


def write(target, seeds, configs=None):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        prefix = b"" if configs is None else configs.get(name, fuzz_prefix())
        (d / name).write_bytes(prefix + data)
    print("%s: %d seeds in %s" % (target, len(seeds), d))


if __name__ == "__main__":
    write("request_fuzz", REQUESTS, REQUEST_CONFIG)
    write("response_fuzz", RESPONSES, RESPONSE_CONFIG)
    write("cache_policy_fuzz", CACHE)
