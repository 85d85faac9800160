"""X-Request-Id end to end (README "Request id"): every request has one id, the client's
when it sent a sane one, else made by the proxy; the backend receives exactly that one, the
client gets it back, and the access log line carries it, for proxied requests, cache hits
and the proxy's own errors alike."""

import json
import re
import threading

import pytest

from harness import (LOOPBACK, HttpConnection, free_port, get, port_accepts, request_header,
                     send_raw, wait_until)

GENERATED = re.compile(r"[0-9a-f]{32}\Z")
REQUESTS_PER_CLIENT = 125
CLIENTS = 8  # 1000 requests over eight connections, spread over --threads 4


def log_lines(path, count):
    """The access log's lines once it holds `count` (the writer runs every 10 ms)."""
    def read():
        try:
            with open(path, encoding="utf-8") as f:
                lines = [json.loads(x) for x in f.read().splitlines()]
        except FileNotFoundError:
            return None
        return lines if len(lines) >= count else None
    lines = wait_until(read, 20, "%d access log lines in %s" % (count, path))
    assert len(lines) == count, lines
    return lines


@pytest.fixture
def start_id_proxy(start_proxy, tmp_path):
    def start(targets, **flags):
        admin_port = free_port()
        flags.setdefault("access_log", tmp_path / ("access-%d.log" % admin_port))
        p = start_proxy(targets, admin="%s:%d" % (LOOPBACK, admin_port), **flags)
        wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10, "the admin listener")
        p.log = flags["access_log"]
        return p
    return start


def backend_ids(backend, target):
    """The X-Request-Id values the backend received with the request for `target`."""
    [entry] = [e for e in backend.requests() if e["target"] == target]
    return request_header(entry, "X-Request-Id")


def test_valid_client_id_is_kept_end_to_end(start_id_proxy, backend):
    proxy = start_id_proxy([backend])
    client_id = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    r = get(proxy.port, "/echo?kept", headers=[("X-Request-Id", client_id)])
    assert r.status == 200
    assert r.header_all("X-Request-Id") == [client_id]
    backend.wait_for_requests(1)
    assert backend_ids(backend, "/echo?kept") == [client_id]
    [line] = log_lines(proxy.log, 1)
    assert line["id"] == client_id


@pytest.mark.parametrize("sent", [
    [("X-Request-Id", "has space")],
    [("X-Request-Id", "x" * 129)],              # over kRequestIdBytesMax
    [("X-Request-Id", "a,b")],                  # a list
    [("X-Request-Id", "one"), ("X-Request-Id", "two")],
    [],                                          # none at all
], ids=["space", "too-long", "list", "twice", "absent"])
def test_missing_or_invalid_id_is_replaced(start_id_proxy, backend, sent):
    proxy = start_id_proxy([backend])
    r = get(proxy.port, "/echo?replaced", headers=sent)
    assert r.status == 200
    [echoed] = r.header_all("X-Request-Id")
    assert GENERATED.match(echoed), echoed
    backend.wait_for_requests(1)
    assert backend_ids(backend, "/echo?replaced") == [echoed]  # one id, never the client's too
    [line] = log_lines(proxy.log, 1)
    assert line["id"] == echoed


def test_cache_hits_and_local_errors_have_their_own_ids(start_id_proxy, backend, dead_port):
    # The backend's answers state no freshness of their own: --cache-ttl makes them storable.
    proxy = start_id_proxy([backend], cache_bytes="16M", cache_ttl=120)
    miss = get(proxy.port, "/cacheable", headers=[("X-Request-Id", "fill-1")])
    hit = get(proxy.port, "/cacheable", headers=[("X-Request-Id", "hit-2")])
    fresh_hit = get(proxy.port, "/cacheable")
    bad = send_raw(proxy.port, b"GET / HTTP/1.1\r\nX-Request-Id: bad-3\r\n\r\n")  # no Host: 400
    assert miss.status == 200 and miss.header_all("X-Request-Id") == ["fill-1"]
    # A hit echoes its own request's id, never the stored one of the request that filled it.
    assert hit.header("Age") is not None and hit.header_all("X-Request-Id") == ["hit-2"]
    [generated] = fresh_hit.header_all("X-Request-Id")
    assert GENERATED.match(generated)
    # The head never parsed, so the client's id is unknown: the proxy's own.
    assert bad.status == 400
    [bad_id] = [v for k, v in bad.headers if k.lower() == "x-request-id"]
    assert GENERATED.match(bad_id) and bad_id != generated

    lines = log_lines(proxy.log, 4)
    by_id = {line["id"]: line for line in lines}
    assert by_id["fill-1"]["cache"] == "miss"
    assert by_id["hit-2"]["cache"] == "hit"
    assert by_id[generated]["cache"] == "hit"
    assert by_id[bad_id]["status"] == 400

    down = start_id_proxy([dead_port])
    r = get(down.port, "/", headers=[("X-Request-Id", "to-a-dead-backend")])
    assert r.status == 502 and r.header_all("X-Request-Id") == ["to-a-dead-backend"]
    [line] = log_lines(down.log, 1)
    assert line["id"] == "to-a-dead-backend" and line["status"] == 502


def test_ids_are_distinct_across_reactors(start_id_proxy, backend):
    proxy = start_id_proxy([backend], threads=4)
    echoed = {}  # target -> the id the client got back
    errors = []

    def client(n):
        try:
            # One connection per client: SO_REUSEPORT spreads them over the reactors.
            with HttpConnection(proxy.port) as c:
                for i in range(REQUESTS_PER_CLIENT):
                    target = "/echo?c=%d&i=%d" % (n, i)
                    r = c.request("GET", target)
                    assert r.status == 200
                    [rid] = r.header_all("X-Request-Id")
                    echoed[target] = rid
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    total = CLIENTS * REQUESTS_PER_CLIENT
    assert len(echoed) == total
    assert len(set(echoed.values())) == total
    assert all(GENERATED.match(v) for v in echoed.values())
    # The backend saw one id per request, the one echoed; the log holds the same set.
    received = backend.wait_for_requests(total)
    seen = {e["target"]: request_header(e, "X-Request-Id") for e in received}
    assert seen == {target: [rid] for target, rid in echoed.items()}
    assert {line["id"] for line in log_lines(proxy.log, total)} == set(echoed.values())
    # Several reactors answered: their random prefixes (the first 16 digits) differ.
    assert len({v[:16] for v in echoed.values()}) > 1
