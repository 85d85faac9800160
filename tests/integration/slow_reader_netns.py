#!/usr/bin/python3
"""A slow client downloading through the proxy, inside a network namespace of its own.

    unshare -n slow_reader_netns.py --bin RINGMASTER --dir DIR --bytes N --query Q

On loopback the kernel's socket buffers (up to 4 MiB a side) absorb what the proxy would
otherwise hold for a slow client, so the proxy's own backpressure is hardly reached. Here the
namespace gets small TCP buffers (net.ipv4.tcp_wmem/tcp_rmem are per namespace), so the
bytes pile up in the proxy while the backend finishes and closes. Backend, proxy and client
all run inside; the result is one JSON line on stdout:
    {"status": 200, "complete": true, "body_len": N, "sha256_ok": true}
"""

import argparse
import fcntl
import hashlib
import json
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import HttpConnection, build_request, pattern_sha256  # noqa: E402

# Small enough that the proxy's own queue (kOutSoftLimit, 256 KiB) is the biggest buffer.
TCP_BUFFER_BYTES = "4096 16384 65536"
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def upload(proxy, args):
    """The client sends a whole request, shuts its side (as `nc -N` or an HTTP/1.0 client
    may) while the proxy still holds part of the body, then reads the answer."""
    with HttpConnection(proxy.port, timeout=args.timeout_s) as c:
        c.send(build_request("POST", "/upload?read_pause_ms=1", [("Content-Length", str(args.bytes))]))
        for piece in harness.pattern_chunks(args.bytes):
            c.send(piece)
        c.sock.shutdown(socket.SHUT_WR)
        try:
            r = c.read_response(timeout=args.timeout_s)
        except harness.ConnectionClosed as e:
            return {"status": None, "error": str(e)}
    body = r.json() if r.status == 200 else {}
    return {"status": r.status, "complete": r.complete, "body_len": body.get("len"),
            "sha256_ok": body.get("sha256") == pattern_sha256(args.bytes)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--query", default="")
    ap.add_argument("--pause-ms", type=float, default=1.0)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    ap.add_argument("--upload", action="store_true",
                    help="POST --bytes to /upload, half-close, and read the backend's digest")
    args = ap.parse_args()

    loopback_up()
    for key in ("tcp_wmem", "tcp_rmem"):
        Path("/proc/sys/net/ipv4", key).write_text(TCP_BUFFER_BYTES)

    tmp = Path(tempfile.mkdtemp(dir=args.dir))
    backend = harness.Backend(tmp, "backend-1")
    proxy = harness.Proxy(args.bin, tmp, [backend], threads=1)
    digest = hashlib.sha256()
    size = {"n": 0}

    def sink(view):
        digest.update(view)
        size["n"] += len(view)
        time.sleep(args.pause_ms / 1000.0)  # the slow reader

    result = {}
    try:
        if args.upload:
            result = upload(proxy, args)
            return

        with HttpConnection(proxy.port, timeout=args.timeout_s,
                            sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]) as c:
            c.send(build_request("GET", "/download?bytes=%d&%s" % (args.bytes, args.query)))
            r = c.read_response(timeout=args.timeout_s, sink=sink)
        result = {"status": r.status, "complete": r.complete, "body_len": size["n"],
                  "sha256_ok": digest.hexdigest() == pattern_sha256(args.bytes)}
    finally:
        result["proxy_problems"] = proxy.teardown_problems()
        backend.stop()
        print(json.dumps(result))


if __name__ == "__main__":
    main()
