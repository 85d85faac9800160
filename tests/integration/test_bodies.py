"""Request and response bodies: exact bytes both ways, and 1 GiB streams in bounded memory."""

import hashlib
import json
import random
import subprocess
from pathlib import Path

import pytest

from harness import (PYTHON, HttpConnection, build_request, chunked_encode, pattern_chunks,
                     pattern_sha256)

GIB = 1 << 30
# Peak RSS allowed while 1 GiB streams through. Sanitizer builds keep freed memory in
# quarantine and add shadow memory, so they get a looser bound (still far below 1 GiB).
RSS_BOUND = 200 << 20
RSS_BOUND_SANITIZED = 640 << 20
RSS_SAMPLE_EVERY = 64 << 20


def _data(size, seed):
    return random.Random(seed).randbytes(size)


def test_post_with_content_length_reaches_backend_byte_exact(proxy, backend):
    data = _data(3_000_017, seed=1)
    with HttpConnection(proxy.port) as c:
        r = c.request("POST", "/upload", body=data)
    assert r.status == 200, r
    assert r.json()["len"] == len(data)
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    [entry] = backend.wait_for_requests(1)
    assert entry["method"] == "POST"
    assert entry["body_len"] == len(data)
    assert entry["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_post_with_chunked_body_reaches_backend_byte_exact(proxy, backend):
    data = _data(1_000_003, seed=2)
    body = chunked_encode(data, extension=True, trailers=[("X-Checksum", "whatever")])
    with HttpConnection(proxy.port) as c:
        c.send(build_request("POST", "/upload", [("Transfer-Encoding", "chunked")], body))
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["len"] == len(data)
        assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
        # The connection is still in sync after the chunked body.
        r = c.request("GET", "/after")
        assert r.body == b"backend-1 /after\n", r
    entry = backend.wait_for_requests(2)[0]
    assert entry["body_len"] == len(data)
    assert entry["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_empty_chunked_body_reaches_backend_as_empty_body(proxy, backend):
    with HttpConnection(proxy.port) as c:
        c.send(build_request("POST", "/upload", [("Transfer-Encoding", "chunked")],
                             b"0\r\n\r\n"))
        r = c.read_response()
        assert r.status == 200 and r.json()["len"] == 0, r
        assert c.request("GET", "/after").status == 200


@pytest.mark.parametrize("framing", ["cl", "chunked", "close"])
def test_download_reaches_client_byte_exact(proxy, framing):
    size = 5_000_011
    with HttpConnection(proxy.port) as c:
        r = c.request("GET", "/download?bytes=%d&framing=%s" % (size, framing), timeout=30)
        assert r.status == 200, r
        assert r.complete, r
        assert len(r.body) == size
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(size)
        if r.header("Content-Length") is None and not r.chunked:
            return  # close-delimited to the client too: nothing more on this connection
        r = c.request("GET", "/after")
        assert r.body == b"backend-1 /after\n", r


def _rss_bound(sanitized):
    return RSS_BOUND_SANITIZED if sanitized else RSS_BOUND


@pytest.mark.slow
def test_one_gib_upload_streams_through_in_bounded_memory(start_proxy, backend, sanitized):
    proxy = start_proxy([backend], threads=1, body_bytes_max="2G")
    bound = _rss_bound(sanitized)
    expected_sha = pattern_sha256(GIB)
    peak = 0
    with HttpConnection(proxy.port, timeout=60) as c:
        c.send(build_request("POST", "/upload", [("Content-Length", str(GIB))]))
        sent = 0
        for piece in pattern_chunks(GIB):
            c.send(piece)
            sent += len(piece)
            if sent % RSS_SAMPLE_EVERY == 0:
                peak = max(peak, proxy.rss_bytes())
        r = c.read_response(timeout=120)
    peak = max(peak, proxy.peak_rss_bytes())
    assert r.status == 200, r
    assert r.json()["len"] == GIB
    assert r.json()["sha256"] == expected_sha
    assert peak < bound, "proxy peak RSS %.0f MiB while streaming 1 GiB up (bound %d MiB)" % (
        peak / (1 << 20), bound >> 20)


@pytest.mark.slow
def test_one_gib_download_streams_through_in_bounded_memory(start_proxy, backend, sanitized):
    proxy = start_proxy([backend], threads=1)
    bound = _rss_bound(sanitized)
    expected_sha = pattern_sha256(GIB)
    digest = hashlib.sha256()
    progress = {"bytes": 0, "next_sample": RSS_SAMPLE_EVERY, "peak": 0}

    def sink(view):
        digest.update(view)
        progress["bytes"] += len(view)
        if progress["bytes"] >= progress["next_sample"]:
            progress["next_sample"] += RSS_SAMPLE_EVERY
            progress["peak"] = max(progress["peak"], proxy.rss_bytes())

    with HttpConnection(proxy.port, timeout=60) as c:
        c.send(build_request("GET", "/download?bytes=%d" % GIB))
        r = c.read_response(timeout=180, sink=sink)
    peak = max(progress["peak"], proxy.peak_rss_bytes())
    assert r.status == 200, r
    assert r.complete and r.body_len == GIB, r
    assert digest.hexdigest() == expected_sha
    assert peak < bound, "proxy peak RSS %.0f MiB while streaming 1 GiB down (bound %d MiB)" % (
        peak / (1 << 20), bound >> 20)


def _in_own_netns(ringmaster_bin, tmp_path, *args):
    """slow_reader_netns.py under `unshare --net`: small TCP buffers, so the proxy itself
    holds what a slow side has not taken yet (loopback's 4 MiB buffers would hold it)."""
    argv = ["unshare", "--net", PYTHON, str(Path(__file__).parent / "slow_reader_netns.py"),
            "--bin", str(ringmaster_bin), "--dir", str(tmp_path)] + [str(a) for a in args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["proxy_problems"] == [], result
    return result


# The backend ends its side right after the body while the proxy still holds the tail for a
# slow client: a close-delimited body ends at the backend's EOF, a Content-Length body is
# followed by Connection: close. Every byte must still reach the client.
@pytest.mark.parametrize("query", ["framing=close", "framing=cl&close=1"])
def test_backend_closing_behind_a_slow_client_loses_no_byte(ringmaster_bin, tmp_path, query):
    size = 8 << 20
    result = _in_own_netns(ringmaster_bin, tmp_path, "--bytes", size, "--query", query)
    assert result["status"] == 200, result
    assert result["complete"], result
    assert result["body_len"] == size, result
    assert result["sha256_ok"], result


# The mirror image: a client sends its whole upload and half-closes (as `nc -N` does) while
# the proxy still holds part of the body for a slow backend. The held bytes came before the
# EOF: the backend gets all of them, and the client its answer.
def test_client_half_closing_behind_a_slow_backend_loses_no_byte(ringmaster_bin, tmp_path):
    size = 8 << 20
    result = _in_own_netns(ringmaster_bin, tmp_path, "--bytes", size, "--upload")
    assert result["status"] == 200, result
    assert result["body_len"] == size, result
    assert result["sha256_ok"], result
