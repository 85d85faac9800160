"""The response cache in static mode (issue 4), shown with real processes on loopback.

What a user of the cache relies on, seen as status, headers and body bytes at the client and
as requests in the backend's log (backend.py's /cacheable endpoint numbers its responses with
X-Serial and echoes the request's Accept-Encoding and Authorization in the body, so a stored
response is told from a fresh one):
  * a second GET is answered without a backend request, with the same status, headers and
    body plus a numeric Age (and the proxy's Via);
  * no-store, private, no-cache, Set-Cookie, Authorization (without public), Vary: *, a
    response already as old as its lifetime, and non-cacheable statuses are not stored;
    Authorization with public is;
  * max-age, s-maxage, Age, Expires and --cache-ttl expire entries when they should, not
    before;
  * Vary: Accept-Encoding keeps variants apart, the Host is part of the key, and requests
    with no-cache, Pragma or Authorization bypass the lookup; a Range request is answered
    from a stored whole response (206, multipart/byteranges for several, 416) and a partial
    response is never stored;
  * HEAD and conditional requests (If-None-Match, If-Modified-Since) are answered from a
    stored GET without a body and without a backend request;
  * a response over --cache-object-max streams completely and is not stored; a response cut
    off by the backend is not stored and the client sees no complete response;
  * 100 concurrent requests for one cold key make exactly one backend request; waiters wait
    a bounded time; a response that turns out not storable does not serialise its waiters;
  * stale-while-revalidate answers at once and refreshes once in the background (304 and
    200), a failed refresh keeps the stale entry, and refreshes per reactor are bounded;
  * POST /cache/purge (all, or ?path=) on the admin listener;
  * filling past --cache-bytes keeps ringmaster_cache_bytes at or under the bound and RSS
    flat; the /metrics counters match the requests made.

Figures measured (RSS, timings) are printed: run with `-s` to see them.
"""

import hashlib
import threading
import time

import pytest

from cachelib import (  # noqa: F401  (start_cache_proxy and cache_proxy are fixtures)
    assert_age, cache_proxy, concurrent_gets, fetch, header_multiset, http_date,
    origin_hits, serial, start_cache_proxy)
from harness import (DEFAULT_HOST, ConnectionClosed, HttpConnection, build_request,
                     pattern_sha256, request_header, wait_until)

LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"


# ---------------------------------------------------------------------------------------
# 1. A hit

def test_second_get_is_served_from_cache_with_identical_headers_and_body(cache_proxy,
                                                                         backend):
    target = ("/cacheable?max_age=60&etag=%%22e1%%22&last_modified=%s&bytes=3000"
              % LAST_MODIFIED.replace(" ", "%20"))
    miss = fetch(cache_proxy.port, target)
    assert miss.status == 200, miss
    assert len(miss.body) == 3000 and miss.body.startswith(b"backend-1 "), miss
    assert len(origin_hits(backend)) == 1

    # A new client connection, then two requests on one kept-alive connection.
    hits = [fetch(cache_proxy.port, target)]
    with HttpConnection(cache_proxy.port) as c:
        hits += [c.request("GET", target), c.request("GET", target)]
    assert len(origin_hits(backend)) == 1, \
        "hits reached the backend: %r" % [e["target"] for e in origin_hits(backend)]
    for hit in hits:
        assert hit.status == 200, hit
        assert hit.body == miss.body
        assert_age(hit, 0, 5)
        # Age grows and X-Request-Id is each request's own (README "Request id").
        own = ("Age", "X-Request-Id")
        assert header_multiset(hit, *own) == header_multiset(miss, *own), \
            "hit headers differ from the miss (beyond Age, X-Request-Id):\nmiss %r\nhit  %r" % (
                miss.headers, hit.headers)
        assert hit.header("Content-Length") == "3000"
        assert hit.header_all("Via") == ["1.1 ringmaster"], hit


# ---------------------------------------------------------------------------------------
# 2. What is stored

NOT_STORED = [
    ("no-store", "cc=no-store", []),
    ("private", "cc=private%2C%20max-age%3D60", []),
    ("no-cache", "cc=no-cache%2C%20max-age%3D60", []),
    ("set-cookie", "max_age=60&set_cookie=1", []),
    ("authorization", "max_age=60", [("Authorization", "Bearer secret")]),
    ("vary-star", "max_age=60&vary=*", []),
    ("age-at-lifetime", "max_age=60&age=60", []),
]


@pytest.mark.parametrize("name,query,first_headers", NOT_STORED,
                         ids=[c[0] for c in NOT_STORED])
def test_response_is_not_stored(cache_proxy, backend, name, query, first_headers):
    target = "/cacheable/%s?%s" % (name, query)
    first = fetch(cache_proxy.port, target, first_headers)
    assert first.status == 200, first
    assert serial(first) == 1
    # Without Authorization the second request could be answered from the cache: it must
    # not be (for the Authorization case that is the whole point: another user's response).
    second = fetch(cache_proxy.port, target)
    assert second.status == 200, second
    assert serial(second) == 2, "a %s response was served from the cache: %r" % (name, second)
    assert len(origin_hits(backend)) == 2
    assert cache_proxy.metric("ringmaster_cache_stores_total") == 0


def test_expires_not_after_date_is_not_stored(cache_proxy, backend):
    now = time.time()
    target = "/cacheable/expired?expires=%s&date=%s" % (
        http_date(now - 10).replace(" ", "%20"), http_date(now).replace(" ", "%20"))
    assert serial(fetch(cache_proxy.port, target)) == 1
    assert serial(fetch(cache_proxy.port, target)) == 2, "an expired response was reused"
    assert cache_proxy.metric("ringmaster_cache_stores_total") == 0


def test_authorization_with_public_is_stored(cache_proxy, backend):
    target = "/cacheable/auth-public?cc=public%2C%20max-age%3D60"
    first = fetch(cache_proxy.port, target, [("Authorization", "Bearer secret")])
    assert first.status == 200 and serial(first) == 1, first
    assert b"auth=yes" in first.body
    second = fetch(cache_proxy.port, target)
    assert second.status == 200, second
    assert second.body == first.body and serial(second) == 1, \
        "a public response to an authorized request was not stored: %r" % second
    assert_age(second)
    assert len(origin_hits(backend)) == 1


STATUSES = [(404, True), (410, True), (301, True), (500, False), (302, False), (201, False)]


@pytest.mark.parametrize("status,stored", STATUSES, ids=[str(s) for s, _ in STATUSES])
def test_opt_in_ttl_applies_only_to_heuristically_cacheable_statuses(start_cache_proxy,
                                                                     backend, status, stored):
    proxy = start_cache_proxy([backend], cache_ttl=120)
    target = "/cacheable/status?status=%d" % status   # no explicit freshness: --cache-ttl
    first = fetch(proxy.port, target)
    assert first.status == status, first
    second = fetch(proxy.port, target)
    assert second.status == status, second
    if stored:
        assert serial(second) == 1 and second.body == first.body, \
            "status %d was not stored: %r" % (status, second)
        assert_age(second)
        assert len(origin_hits(backend)) == 1
    else:
        assert serial(second) == 2, "status %d was served from the cache" % status
        assert len(origin_hits(backend)) == 2


@pytest.mark.parametrize("status", [201, 302, 500, 503])
def test_any_final_status_with_explicit_freshness_is_stored(cache_proxy, backend, status):
    target = "/cacheable/explicit?status=%d&max_age=60" % status
    first = fetch(cache_proxy.port, target)
    assert first.status == status, first
    second = fetch(cache_proxy.port, target)
    assert second.status == status and serial(second) == 1 and second.body == first.body, \
        "status %d with max-age was not stored: %r" % (status, second)
    assert_age(second)
    assert len(origin_hits(backend)) == 1


def test_default_flags_store_nothing_without_freshness_or_last_modified(cache_proxy, backend):
    target = "/cacheable/plain"
    assert serial(fetch(cache_proxy.port, target)) == 1
    second = fetch(cache_proxy.port, target)
    assert serial(second) == 2 and second.header("Age") is None, \
        "a response stating no freshness was reused with default flags: %r" % second
    assert cache_proxy.metric("ringmaster_cache_stores_total") == 0


def test_heuristic_freshness_is_a_tenth_of_the_time_since_last_modified(cache_proxy, backend):
    # Modified 30 s before its Date: fresh for 3 s, then fetched again.
    now = int(time.time())
    target = "/cacheable/heuristic?date=%s&last_modified=%s" % (
        http_date(now).replace(" ", "%20"), http_date(now - 30).replace(" ", "%20"))
    t0 = time.monotonic()
    assert serial(fetch(cache_proxy.port, target)) == 1
    hit = fetch(cache_proxy.port, target)
    assert serial(hit) == 1, "a response with an old Last-Modified was not stored: %r" % hit
    assert_age(hit, 0, 3)
    # A heuristically cacheable status only: a 500 with the same fields is not stored.
    err = "/cacheable/heuristic-500?status=500&last_modified=%s" % (
        http_date(now - 100).replace(" ", "%20"))
    fetch(cache_proxy.port, err)
    fetch(cache_proxy.port, err)
    assert len(origin_hits(backend, "/cacheable/heuristic-500")) == 2
    # The passage of time is the subject here: poll until the backend is asked again.
    while serial(fetch(cache_proxy.port, target)) == 1:
        assert time.monotonic() - t0 < 6, "still fresh well after 10% of 30 s"
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    assert elapsed >= 2.5, "expired after %.1f s, before its heuristic 3 s" % elapsed


def test_an_age_list_or_an_invalid_age_counts_as_stale(cache_proxy, backend):
    # "Age: 7200, 0" with max-age=3600: not one age, so stale, and not stored (no validator).
    target = "/cacheable/age-list?max_age=3600&age=7200,%200"
    assert serial(fetch(cache_proxy.port, target)) == 1
    assert serial(fetch(cache_proxy.port, target)) == 2, "Age: 7200, 0 was read as 0"
    # An Age that is not a number: not stored either (it might hide an old response).
    target = "/cacheable/age-bad?max_age=3600&age=abc"
    fetch(cache_proxy.port, target)
    second = fetch(cache_proxy.port, target)
    assert second.status == 200 and second.header("Age") == "abc", second  # relayed as sent
    assert len(origin_hits(backend, "/cacheable/age-bad")) == 2, "Age: abc was read as 0"
    assert cache_proxy.metric("ringmaster_cache_stores_total") == 0


# ---------------------------------------------------------------------------------------
# 3. Freshness and expiry

def _expiry_cases():
    def expires_one_second_after_date():
        now = int(time.time())
        return "expires=%s&date=%s" % (http_date(now + 1).replace(" ", "%20"),
                                       http_date(now).replace(" ", "%20"))
    return [
        # id, query (or a function making it), proxy flags, lifetime s, Age of a hit at least
        ("max-age=1", "max_age=1", {}, 1, 0),
        ("s-maxage-over-max-age", "cc=s-maxage%3D1%2C%20max-age%3D600", {}, 1, 0),
        ("age-599-of-600", "max_age=600&age=599", {}, 1, 599),
        ("expires-minus-date-1", expires_one_second_after_date, {}, 1, 0),
        ("cache-ttl-1", "", {"cache_ttl": 1}, 1, 0),
    ]


EXPIRY = _expiry_cases()


@pytest.mark.parametrize("name,query,flags,lifetime,age_min", EXPIRY,
                         ids=[c[0] for c in EXPIRY])
def test_entry_expires_after_its_lifetime_and_not_before(start_cache_proxy, backend, name,
                                                         query, flags, lifetime, age_min):
    proxy = start_cache_proxy([backend], **flags)
    target = "/cacheable/expiry?" + (query() if callable(query) else query)
    t0 = time.monotonic()
    first = fetch(proxy.port, target)
    assert first.status == 200 and serial(first) == 1, first
    hit = fetch(proxy.port, target)
    assert serial(hit) == 1, "not stored at all: %r" % hit
    assert_age(hit, age_min, age_min + lifetime)

    # The passage of time is the subject here: poll until the backend is asked again.
    deadline = lifetime + 3.0
    while True:
        r = fetch(proxy.port, target)
        elapsed = time.monotonic() - t0
        assert r.status == 200, r
        if serial(r) != 1:
            break
        assert_age(r, age_min, age_min + lifetime)
        assert elapsed < deadline, \
            "still served from the cache %.2fs after a %ds lifetime" % (elapsed, lifetime)
        time.sleep(0.05)
    assert elapsed >= lifetime * 0.95, \
        "expired after %.2fs, before its %ds lifetime" % (elapsed, lifetime)
    assert serial(r) == 2 and len(origin_hits(backend)) == 2
    print("%s: expired after %.2fs" % (name, elapsed))
    # The fresh response replaced it.
    again = fetch(proxy.port, target)
    assert serial(again) == 2, again
    assert len(origin_hits(backend)) == 2


# --cache-ttl is honoured up to its maximum (365 days). Seconds were once turned into
# milliseconds in 32 bits: 4294968 s became 704 ms, the maximum about 17 days.
@pytest.mark.parametrize("ttl", [4294968, 31536000], ids=["past-2^32-ms", "365-days"])
def test_long_cache_ttl_keeps_the_response_fresh(start_cache_proxy, backend, ttl):
    proxy = start_cache_proxy([backend], cache_ttl=ttl)
    target = "/cacheable/long-ttl"  # states no freshness: --cache-ttl applies
    t0 = time.monotonic()
    assert serial(fetch(proxy.port, target)) == 1
    # The passage of time is the subject: hits keep coming, well past 704 ms.
    while time.monotonic() - t0 < 2.0:
        hit = fetch(proxy.port, target)
        assert hit.status == 200 and serial(hit) == 1, \
            "refetched %.2fs after storing with --cache-ttl %d: %r" % (
                time.monotonic() - t0, ttl, hit)
        assert_age(hit, 0, 3)
        time.sleep(0.1)
    assert_age(fetch(proxy.port, target), 1, 3)
    assert len(origin_hits(backend)) == 1


# ---------------------------------------------------------------------------------------
# 4. The key: Vary, Host, and requests that bypass the lookup

def test_vary_accept_encoding_keeps_variants_apart(cache_proxy, backend):
    target = "/cacheable/vary?max_age=60&vary=Accept-Encoding"
    variants = [("gzip", [("Accept-Encoding", "gzip")]),
                ("identity", [("Accept-Encoding", "identity")]),
                ("-", [])]
    first = {}
    for label, headers in variants:
        r = fetch(cache_proxy.port, target, headers)
        assert r.status == 200, r
        assert ("ae=%s " % label).encode() in r.body, r.body
        first[label] = r
    assert len(origin_hits(backend)) == 3, \
        "each Accept-Encoding must be its own variant: %r" % [
            [h for h in e["headers"] if h[0].lower() == "accept-encoding"]
            for e in origin_hits(backend)]
    assert len({r.body for r in first.values()}) == 3
    for _ in range(2):
        for label, headers in variants:
            r = fetch(cache_proxy.port, target, headers)
            assert r.status == 200, r
            assert r.body == first[label].body, \
                "variant %s got %r, stored %r" % (label, r.body, first[label].body)
            assert_age(r)
            assert r.header("Vary") == "Accept-Encoding"
    assert len(origin_hits(backend)) == 3


def test_host_is_part_of_the_key(cache_proxy, backend):
    target = "/cacheable/host?max_age=60"
    a = fetch(cache_proxy.port, target, host="a.example.test")
    b = fetch(cache_proxy.port, target, host="b.example.test")
    assert (serial(a), serial(b)) == (1, 2)
    assert serial(fetch(cache_proxy.port, target, host="a.example.test")) == 1
    assert serial(fetch(cache_proxy.port, target, host="b.example.test")) == 2
    assert len(origin_hits(backend)) == 2


BYPASS = [
    ("cache-control-no-cache", [("Cache-Control", "no-cache")]),
    ("pragma-no-cache", [("Pragma", "no-cache")]),
    ("authorization", [("Authorization", "Bearer x")]),
]


@pytest.mark.parametrize("name,headers", BYPASS, ids=[b[0] for b in BYPASS])
def test_request_bypasses_the_lookup(cache_proxy, backend, name, headers):
    target = "/cacheable/bypass?max_age=60"
    assert serial(fetch(cache_proxy.port, target)) == 1
    assert serial(fetch(cache_proxy.port, target)) == 1   # stored
    r = fetch(cache_proxy.port, target, headers)
    assert r.status in (200, 206), r
    assert len(origin_hits(backend)) == 2, \
        "a request with %s was answered from the cache: %r" % (headers, r)
    assert serial(r) == 2 and r.header("Age") is None, r


def test_range_requests_are_answered_from_a_stored_whole_response(cache_proxy, backend):
    target = "/cacheable/range?max_age=60&etag=%22r1%22&bytes=1000"
    whole = fetch(cache_proxy.port, target)
    assert whole.status == 200 and len(whole.body) == 1000, whole
    cases = [("bytes=0-9", 0, 9), ("bytes=990-", 990, 999), ("bytes=-5", 995, 999),
             ("bytes=900-5000", 900, 999)]
    for spec, first, last in cases:
        r = fetch(cache_proxy.port, target, [("Range", spec)])
        assert r.status == 206, (spec, r)
        assert r.header("Content-Range") == "bytes %d-%d/1000" % (first, last), (spec, r)
        assert r.body == whole.body[first:last + 1], spec
        assert r.header("ETag") == '"r1"' and r.header("Age") is not None, r
    r = fetch(cache_proxy.port, target, [("Range", "bytes=1000-")])
    assert r.status == 416 and r.header("Content-Range") == "bytes */1000" and r.body == b"", r
    # An If-Range that does not match, or overlapping ranges adding up to more than the
    # body: the whole stored response.
    for extra in ([("Range", "bytes=0-1"), ("If-Range", '"old"')], [("Range", "bytes=0-799,200-999")]):
        r = fetch(cache_proxy.port, target, extra)
        assert r.status == 200 and r.body == whole.body, (extra, r)
    assert len(origin_hits(backend)) == 1, "a range request went to the backend"


def _byteranges_parts(resp):
    """The parts of a multipart/byteranges body: [(headers dict, bytes)], checking the
    framing RFC 9110 14.6 and RFC 2046 require on the way."""
    ctype = resp.header("Content-Type")
    prefix = "multipart/byteranges; boundary="
    assert ctype and ctype.startswith(prefix), resp
    delimiter = b"\r\n--" + ctype[len(prefix):].encode()
    body = resp.body
    assert body.startswith(delimiter + b"\r\n") and body.endswith(delimiter + b"--\r\n"), body[:200]
    parts = []
    for chunk in body[:-len(delimiter) - 4].split(delimiter)[1:]:
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((fields, data))
    return parts


def test_several_ranges_are_answered_as_multipart_byteranges(cache_proxy, backend):
    target = "/cacheable/ranges?max_age=60&etag=%22m1%22&bytes=1000"
    whole = fetch(cache_proxy.port, target)
    asked = [(0, 9), (990, 999), (500, 509)]
    r = fetch(cache_proxy.port, target, [("Range", "bytes=0-9, -10,500-509,5000-")])
    assert r.status == 206 and r.header("Content-Range") is None, r
    assert r.header("ETag") == '"m1"' and r.header("Age") is not None, r
    assert int(r.header("Content-Length")) == len(r.body), r
    parts = _byteranges_parts(r)
    assert [p[0]["Content-Range"] for p in parts] == ["bytes %d-%d/1000" % a for a in asked], parts
    assert all(p[0]["Content-Type"] == "text/plain" for p in parts), parts
    assert [p[1] for p in parts] == [whole.body[a:b + 1] for a, b in asked]
    # Range is defined for GET only (RFC 9110 14.2): a HEAD gets the whole response's head.
    h = fetch(cache_proxy.port, target, [("Range", "bytes=0-9,20-29")], method="HEAD")
    assert h.status == 200 and h.body == b"" and h.header("Content-Length") == "1000", h
    # Of several, only one satisfiable: a single 206; none: 416.
    r = fetch(cache_proxy.port, target, [("Range", "bytes=5000-,10-19")])
    assert r.status == 206 and r.header("Content-Range") == "bytes 10-19/1000", r
    assert r.body == whole.body[10:20]
    r = fetch(cache_proxy.port, target, [("Range", "bytes=5000-,6000-")])
    assert r.status == 416 and r.header("Content-Range") == "bytes */1000", r
    assert len(origin_hits(backend)) == 1, "a range request went to the backend"


def test_a_range_request_that_misses_is_relayed_and_not_stored(cache_proxy, backend):
    # The backend answers the whole response even to a Range request: storable, but what
    # answers a range request is not stored.
    target = "/cacheable/range-miss?max_age=60"
    r = fetch(cache_proxy.port, target, [("Range", "bytes=0-9")])
    assert r.status == 200 and serial(r) == 1, r
    assert cache_proxy.metric("ringmaster_cache_stores_total") == 0
    assert serial(fetch(cache_proxy.port, target)) == 2
    assert cache_proxy.metric("ringmaster_cache_stores_total") == 1


# ---------------------------------------------------------------------------------------
# 5. HEAD and conditional requests

def test_head_on_a_cached_get_gets_headers_only_without_a_backend_request(cache_proxy,
                                                                          backend):
    target = "/cacheable/head?max_age=60&bytes=5000"
    get_resp = fetch(cache_proxy.port, target)
    assert get_resp.status == 200 and len(get_resp.body) == 5000, get_resp
    with HttpConnection(cache_proxy.port) as c:
        head = c.request("HEAD", target)
        assert head.status == 200, head
        assert head.header("Content-Length") == "5000", head
        own = ("Age", "X-Request-Id")  # each request's own (README "Request id")
        assert header_multiset(head, *own) == header_multiset(get_resp, *own)
        assert_age(head)
        # No body bytes followed the HEAD response: the next response on the connection
        # parses from its first byte.
        after = c.request("GET", target)
        assert after.status == 200 and after.body == get_resp.body, after
        head2 = c.request("HEAD", target)
        assert head2.status == 200 and head2.header("Content-Length") == "5000", head2
        after2 = c.request("GET", "/cacheable/head-other?max_age=60")
        assert after2.status == 200, after2
        assert after2.body.startswith(b"backend-1 /cacheable/head-other"), after2
    assert [e["target"] for e in origin_hits(backend)] == \
        [target, "/cacheable/head-other?max_age=60"], "HEAD went to the backend"


CONDITIONAL_TARGET = ("/cacheable/cond?max_age=60&etag=%%22e1%%22&last_modified=%s&bytes=777"
                      % LAST_MODIFIED.replace(" ", "%20"))
CONDITIONALS = [
    # id, request headers, expected status
    ("inm-match", [("If-None-Match", '"e1"')], 304),
    ("inm-weak-match", [("If-None-Match", 'W/"e1"')], 304),
    ("inm-list", [("If-None-Match", '"zz", "e1"')], 304),
    ("inm-star", [("If-None-Match", "*")], 304),
    ("inm-other", [("If-None-Match", '"other"')], 200),
    ("ims-after", [("If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT")], 304),
    ("ims-equal", [("If-Modified-Since", LAST_MODIFIED)], 304),
    ("ims-before", [("If-Modified-Since", "Sun, 31 Dec 2023 00:00:00 GMT")], 200),
    # If-None-Match takes precedence over If-Modified-Since (RFC 9110 13.2.2).
    ("inm-other-with-ims-after", [("If-None-Match", '"other"'),
                                  ("If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT")], 200),
]


@pytest.mark.parametrize("name,headers,expected", CONDITIONALS,
                         ids=[c[0] for c in CONDITIONALS])
def test_conditional_request_on_a_fresh_hit(cache_proxy, backend, name, headers, expected):
    stored = fetch(cache_proxy.port, CONDITIONAL_TARGET)
    assert stored.status == 200 and len(stored.body) == 777, stored
    with HttpConnection(cache_proxy.port) as c:
        r = c.request("GET", CONDITIONAL_TARGET, headers)
        assert r.status == expected, "%s: expected %d, got %r" % (name, expected, r)
        if expected == 304:
            assert r.header("ETag") == '"e1"', r
            assert r.header("Transfer-Encoding") is None, r
            assert r.header("Content-Length") in (None, "777"), r
        else:
            assert r.body == stored.body
            assert_age(r)
        # A 304 carries no body: the next response on this connection parses cleanly.
        after = c.request("GET", CONDITIONAL_TARGET)
        assert after.status == 200 and after.body == stored.body, after
    assert len(origin_hits(backend)) == 1, "the conditional request reached the backend"


# ---------------------------------------------------------------------------------------
# 6, 7. Oversized and cut-off responses

def _download_sha(port, target):
    h = hashlib.sha256()
    with HttpConnection(port, timeout=20) as c:
        c.send(build_request("GET", target))
        r = c.read_response(sink=h.update, timeout=20)
    return r, h.hexdigest()


def test_oversized_response_streams_completely_and_is_not_stored(start_cache_proxy,
                                                                 backend):
    # /download states no freshness: the opt-in lifetime makes it storable but for its size.
    proxy = start_cache_proxy([backend], cache_object_max="64K", cache_ttl=120)
    size = 1 << 20
    for framing in ("cl", "chunked"):
        target = "/download?bytes=%d&framing=%s" % (size, framing)
        for attempt in (1, 2):
            r, sha = _download_sha(proxy.port, target)
            assert r.status == 200 and r.complete, (framing, attempt, r)
            assert r.body_len == size and sha == pattern_sha256(size), \
                "%s attempt %d: %d bytes, sha mismatch=%s" % (framing, attempt, r.body_len,
                                                               sha != pattern_sha256(size))
            assert r.header("Age") is None, "served from the cache: %r" % r
            assert len(origin_hits(backend, target)) == attempt, \
                "%s attempt %d did not reach the backend: the 1 MiB response was stored" % (
                    framing, attempt)
    # A response under the limit is stored (the limit, not the endpoint, kept those out).
    small = "/download?bytes=60000"
    for attempt in (1, 2):
        r, sha = _download_sha(proxy.port, small)
        assert r.status == 200 and r.body_len == 60000 and sha == pattern_sha256(60000), r
    assert len(origin_hits(backend, small)) == 1
    m = proxy.metrics()
    assert m["ringmaster_cache_stores_total"] == 1, m
    assert m["ringmaster_cache_bytes"] < 64 * 1024 + 4096, m


def test_response_cut_off_by_backend_is_not_stored(cache_proxy, backend):
    outcomes = []
    for attempt in (1, 2):
        with HttpConnection(cache_proxy.port) as c:
            c.send(build_request("GET", "/truncate"))
            try:
                r = c.read_response(timeout=10)
            except ConnectionClosed:
                r = None
            if r is not None:
                assert not (r.status == 200 and r.complete), \
                    "attempt %d: the client got a complete 200 for a cut-off response: %r" % (
                        attempt, r)
                assert r.header("Age") is None, "served from the cache: %r" % r
            assert c.wait_closed(10), "attempt %d: the client connection stayed open" % attempt
            outcomes.append("no response head" if r is None else
                            "%d, %d of %s body bytes%s" % (
                                r.status, r.body_len, r.header("Content-Length"),
                                "" if r.complete else ", cut off"))
        hits = len(origin_hits(backend, "/truncate"))
        assert hits >= attempt, "attempt %d did not reach the backend (%d requests)" % (
            attempt, hits)
    print("cut-off response as the client saw it: %s" % outcomes)
    assert cache_proxy.metric("ringmaster_cache_stores_total") == 0
    # The proxy is fine afterwards.
    assert fetch(cache_proxy.port, "/cacheable/after?max_age=60").status == 200


# ---------------------------------------------------------------------------------------
# 8. Miss collapsing

def test_hundred_concurrent_requests_for_one_cold_key_make_one_backend_request(
        start_cache_proxy, backend):
    proxy = start_cache_proxy([backend], threads=2)
    target = "/cacheable/herd?max_age=60&delay_ms=500&bytes=2000"
    results, elapsed = concurrent_gets(proxy.port, target, 100)
    bad = [(i, r) for i, r in enumerate(results)
           if isinstance(r, Exception) or r.status != 200]
    assert not bad, "%d of 100 failed, e.g. %r" % (len(bad), bad[:3])
    bodies = {r.body for r in results}
    assert len(bodies) == 1, "clients got %d different bodies" % len(bodies)
    requests = origin_hits(backend)
    assert len(requests) == 1, \
        "100 concurrent misses made %d backend requests" % len(requests)
    m = proxy.metrics()
    print("100 concurrent cold requests: %.2fs, 1 backend request, collapsed waits %d, "
          "hits %d, misses %d" % (elapsed, m["ringmaster_cache_collapsed_waits_total"],
                                  m["ringmaster_cache_hits_total"],
                                  m["ringmaster_cache_misses_total"]))
    assert m["ringmaster_cache_stores_total"] == 1, m
    assert m["ringmaster_cache_hits_total"] == 99, m
    assert m["ringmaster_cache_collapsed_waits_total"] >= 1, m
    assert elapsed < 5.0, "waiters were not woken when the response arrived (%.2fs)" % elapsed


def test_purge_under_load_sends_no_thundering_herd(start_cache_proxy, backend):
    proxy = start_cache_proxy([backend], threads=2)
    target = "/cacheable/herd-after-purge?max_age=60&delay_ms=300"
    assert serial(fetch(proxy.port, target)) == 1
    assert proxy.purge().status == 200
    results, _ = concurrent_gets(proxy.port, target, 100)
    assert all(not isinstance(r, Exception) and r.status == 200 for r in results), \
        [r for r in results if isinstance(r, Exception) or r.status != 200][:3]
    assert {serial(r) for r in results} == {2}, "some clients got the purged response"
    assert len(origin_hits(backend)) == 2, \
        "100 concurrent requests after a purge made %d backend requests" % (
            len(origin_hits(backend)) - 1)


def test_collapsed_waiters_go_upstream_themselves_after_the_lock_timeout(
        start_cache_proxy, backend):
    proxy = start_cache_proxy([backend], threads=2, cache_lock_timeout_ms=300)
    target = "/cacheable/slow-owner?max_age=60&delay_ms=1500"
    results, elapsed = concurrent_gets(proxy.port, target, 5)
    assert all(not isinstance(r, Exception) and r.status == 200 for r in results), results
    requests = origin_hits(backend)
    # The owner's request plus one per waiter that stopped waiting after 300 ms.
    assert len(requests) == 5, "%d backend requests" % len(requests)
    assert elapsed < 3.0 + 1.5, elapsed
    print("5 waiters with a 300 ms lock timeout: %d backend requests, %.2fs" % (
        len(requests), elapsed))


def test_waiters_for_a_response_that_is_not_stored_are_not_serialised(start_cache_proxy,
                                                                      backend):
    proxy = start_cache_proxy([backend], threads=2)
    n, delay = 10, 0.4
    target = "/cacheable/herd-no-store?cc=no-store&delay_ms=%d" % (delay * 1000)
    results, elapsed = concurrent_gets(proxy.port, target, n)
    assert all(not isinstance(r, Exception) and r.status == 200 for r in results), results
    assert len({r.body for r in results}) == len(origin_hits(backend))
    print("%d concurrent requests for a no-store key: %d backend requests, %.2fs" % (
        n, len(origin_hits(backend)), elapsed))
    # One after the other would take n * delay = 4 s.
    assert elapsed < n * delay * 0.6, \
        "waiters for a not-storable response were served one at a time (%.2fs)" % elapsed


# ---------------------------------------------------------------------------------------
# 9. Admin purge

def test_admin_purge_all_and_by_path(cache_proxy, backend):
    keys = [("/cacheable/a?max_age=60", DEFAULT_HOST),
            ("/cacheable/a?max_age=60&q=2", DEFAULT_HOST),
            ("/cacheable/a?max_age=60", "other.example.test"),
            ("/cacheable/b?max_age=60", DEFAULT_HOST)]
    first = {k: serial(fetch(cache_proxy.port, k[0], host=k[1])) for k in keys}
    assert sorted(first.values()) == [1, 2, 3, 4]
    assert {k: serial(fetch(cache_proxy.port, k[0], host=k[1])) for k in keys} == first
    assert len(origin_hits(backend)) == 4

    r = cache_proxy.purge("/cacheable/a")
    assert r.status == 200, r
    assert r.json() == {"purged": 3}, r.body
    after = {k: serial(fetch(cache_proxy.port, k[0], host=k[1])) for k in keys}
    for k in keys[:3]:
        assert after[k] > 4, "%s was not purged by ?path=/cacheable/a" % (k,)
    assert after[keys[3]] == first[keys[3]], "/cacheable/b was purged by ?path=/cacheable/a"
    assert len(origin_hits(backend)) == 7

    r = cache_proxy.purge()
    assert r.status == 200, r
    assert r.json() == {"purged": "all"}, r.body
    again = {k: serial(fetch(cache_proxy.port, k[0], host=k[1])) for k in keys}
    for k in keys:
        assert again[k] > 7, "%s survived POST /cache/purge" % (k,)
    assert len(origin_hits(backend)) == 11
    # And they are stored again.
    assert {k: serial(fetch(cache_proxy.port, k[0], host=k[1])) for k in keys} == again
    assert len(origin_hits(backend)) == 11

    assert cache_proxy.purge("nonsense").status == 400


def test_purge_all_while_a_fill_is_in_flight_does_not_store_the_old_response(cache_proxy,
                                                                           backend):
    target = "/cacheable/inflight?max_age=60&delay_ms=800"
    box = {}
    t = threading.Thread(target=lambda: box.update(r=fetch(cache_proxy.port, target)))
    t.start()
    wait_until(lambda: origin_hits(backend), 5, "the slow request to reach the backend")
    assert cache_proxy.purge().status == 200
    t.join(10)
    assert box["r"].status == 200 and serial(box["r"]) == 1, box
    r = fetch(cache_proxy.port, target)
    assert serial(r) == 2, \
        "a response fetched before the purge was stored after it and served: %r" % r


# ---------------------------------------------------------------------------------------
# 9b. Invalidation after unsafe requests (RFC 9111 4.4)

def _stored(proxy, backend, target):
    """Fetches target twice; True when the second answer came from the cache."""
    before = len(origin_hits(backend, target))
    fetch(proxy.port, target)
    second = fetch(proxy.port, target)
    return len(origin_hits(backend, target)) == before + 1 and second.header("Age") is not None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_successful_unsafe_request_invalidates_its_target(cache_proxy, backend, method):
    target = "/cacheable/inv-%s?max_age=60" % method
    assert _stored(cache_proxy, backend, target)
    with HttpConnection(cache_proxy.port) as c:
        r = c.request(method, target, body=b"changed")
    assert r.status == 200, r
    after = fetch(cache_proxy.port, target)
    assert after.header("Age") is None and len(origin_hits(backend, target)) == 3, \
        "the stored answer outlived a successful %s to its URI: %r" % (method, after)
    assert cache_proxy.metric("ringmaster_cache_invalidated_total") == 1


def test_location_and_content_location_of_the_same_origin_are_invalidated(cache_proxy,
                                                                          backend):
    created, described, foreign = ("/cacheable/created?max_age=60",
                                   "/cacheable/described?max_age=60",
                                   "/cacheable/foreign?max_age=60")
    for t in (created, described, foreign):
        assert _stored(cache_proxy, backend, t)
    # A failed POST naming them changes nothing ...
    failed = "/cacheable/form?status=500&location=%s" % created.replace("?", "%3F")
    with HttpConnection(cache_proxy.port) as c:
        assert c.request("POST", failed, body=b"x").status == 500
    assert fetch(cache_proxy.port, created).header("Age") is not None, "a failed POST invalidated"
    # ... a successful one invalidates Location (absolute, same host) and Content-Location
    # (path-relative), but never a URI of another origin.
    ok = "/cacheable/form?status=201&location=%s&content_location=%s" % (
        ("http://%s%s" % (DEFAULT_HOST, created)).replace("?", "%3F"),
        described.split("/")[-1].replace("?", "%3F"))
    with HttpConnection(cache_proxy.port) as c:
        assert c.request("POST", ok, body=b"x").status == 201
    with HttpConnection(cache_proxy.port) as c:
        other = "/cacheable/form?status=201&location=%s" % (
            "http://other.example" + foreign).replace("?", "%3F")
        assert c.request("POST", other, body=b"x").status == 201
    assert fetch(cache_proxy.port, created).header("Age") is None
    assert fetch(cache_proxy.port, described).header("Age") is None
    assert fetch(cache_proxy.port, foreign).header("Age") is not None, \
        "another origin's URI was invalidated"


# ---------------------------------------------------------------------------------------
# 9c. Revalidation (RFC 9111 4.3)

def _conditionals(entry):
    return (request_header(entry, "If-None-Match"), request_header(entry, "If-Modified-Since"))


def test_stale_entry_is_revalidated_and_a_304_freshens_it(cache_proxy, backend):
    # max-age=0: stale as soon as stored, kept for its ETag.
    target = "/cacheable/reval?max_age=0&etag=%22v1%22&revalidate=1&bytes=2000"
    first = fetch(cache_proxy.port, target)
    assert first.status == 200 and serial(first) == 1 and len(first.body) == 2000, first
    assert _conditionals(origin_hits(backend)[0]) == ([], [])
    second = fetch(cache_proxy.port, target)
    sent = origin_hits(backend)
    assert len(sent) == 2 and _conditionals(sent[1]) == (['"v1"'], []), \
        "the stale entry was not revalidated with its ETag: %r" % sent[1]
    # The client gets the stored body with the fields the 304 brought (X-Serial 2).
    assert second.status == 200 and second.body == first.body, second
    assert serial(second) == 2 and second.header("ETag") == '"v1"', second
    assert_age(second, 0, 1)
    assert cache_proxy.metric("ringmaster_cache_revalidated_total") == 1
    # HEAD revalidates the same way and gets the head only.
    head = fetch(cache_proxy.port, target, method="HEAD")
    assert head.status == 200 and head.body == b"" and serial(head) == 3, head
    assert head.header("Content-Length") == "2000", head


def test_revalidation_by_last_modified_and_a_200_replaces_the_entry(cache_proxy, backend):
    lm = LAST_MODIFIED.replace(" ", "%20")
    # no-cache: stored, but used only after asking; without revalidate=1 the origin always
    # answers 200, and that response replaces the stored one.
    target = "/cacheable/reval-lm?cc=no-cache&last_modified=%s" % lm
    assert serial(fetch(cache_proxy.port, target)) == 1
    second = fetch(cache_proxy.port, target)
    sent = origin_hits(backend)
    assert _conditionals(sent[1]) == ([], [LAST_MODIFIED]), sent[1]
    assert second.status == 200 and serial(second) == 2 and b"n=2" in second.body, second
    third = fetch(cache_proxy.port, target)
    assert serial(third) == 3 and b"n=3" in third.body, "a no-cache entry was served unasked"
    # With revalidate=1 the origin says 304 and the (replaced) entry is served.
    target304 = target + "&revalidate=1"
    body = fetch(cache_proxy.port, target304).body
    again = fetch(cache_proxy.port, target304)
    assert again.body == body and again.header("Age") is not None, again


def test_a_clients_own_conditional_request_goes_upstream_unchanged(cache_proxy, backend):
    target = "/cacheable/reval-own?max_age=0&etag=%22v1%22&revalidate=1"
    fetch(cache_proxy.port, target)
    r = fetch(cache_proxy.port, target, [("If-None-Match", '"other"')])
    sent = origin_hits(backend)
    assert _conditionals(sent[1]) == (['"other"'], []), sent[1]
    assert r.status == 200 and serial(r) == 2, r
    # ... and a 304 answering the client's own validator is relayed, not stored.
    r = fetch(cache_proxy.port, target, [("If-None-Match", '"v1"')])
    assert r.status == 304 and r.body == b"", r
    assert _conditionals(origin_hits(backend)[2]) == (['"v1"'], [])


def test_concurrent_requests_for_a_stale_entry_make_one_conditional_request(start_cache_proxy,
                                                                            backend):
    proxy = start_cache_proxy([backend], threads=2)
    target = "/cacheable/reval-herd?max_age=2&etag=%22h%22&revalidate=1&delay_ms=300"
    first = fetch(proxy.port, target)
    # The passage of time is the subject (any request would refresh the entry): let it age
    # past its 2 s.
    time.sleep(2.2)
    before = len(origin_hits(backend))
    results, _ = concurrent_gets(proxy.port, target, 20)
    assert all(not isinstance(x, Exception) and x.status == 200 and x.body == first.body
               for x in results), results
    assert len(origin_hits(backend)) == before + 1, \
        "20 requests for a stale entry made %d conditional requests" % (
            len(origin_hits(backend)) - before)


# ---------------------------------------------------------------------------------------
# 9c2. Surrogate-Control (W3C Edge Architecture)

def test_surrogate_control_for_ringmaster_overrides_cache_control(cache_proxy, backend):
    # Cache-Control: no-store is for the caches after us; Surrogate-Control's max-age,
    # targeted at ringmaster's token, is for us.
    target = "/cacheable/sc?cc=no-store&surrogate_control=max-age%3D60%3Bringmaster"
    first = fetch(cache_proxy.port, target)
    assert first.header("Surrogate-Control") == "max-age=60;ringmaster", first  # relayed on a miss
    hit = fetch(cache_proxy.port, target)
    assert serial(hit) == 1 and hit.header("Age") is not None, hit
    assert hit.header("Surrogate-Control") is None, "a hit replayed Surrogate-Control: %r" % hit
    sent = origin_hits(backend)
    assert request_header(sent[0], "Surrogate-Capability") == ['ringmaster="Surrogate/1.0"'], sent[0]
    # no-store for surrogates wins over Cache-Control's lifetime; other targets are ignored.
    no_store = "/cacheable/sc-ns?max_age=600&surrogate_control=no-store"
    fetch(cache_proxy.port, no_store)
    assert serial(fetch(cache_proxy.port, no_store)) == 3
    other = "/cacheable/sc-other?max_age=600&surrogate_control=no-store%3Bsomeone-else"
    fetch(cache_proxy.port, other)
    assert fetch(cache_proxy.port, other).header("Age") is not None


# ---------------------------------------------------------------------------------------
# 9d. Serving stale when no target answers (RFC 9111 4.2.4)

def test_stale_entry_answers_when_every_target_is_down(start_cache_proxy, start_backend):
    b1, b2 = start_backend("backend-1"), start_backend("backend-2")
    proxy = start_cache_proxy([b1, b2])
    allowed, forbidden = "/cacheable/sie?max_age=1", "/cacheable/sie-mr?cc=must-revalidate&max_age=1"
    stored = fetch(proxy.port, allowed)
    assert stored.status == 200, stored
    fetch(proxy.port, forbidden)
    b1.stop()
    b2.stop()
    time.sleep(1.2)  # the passage of time is the subject: both entries are now stale
    r = fetch(proxy.port, allowed)
    assert r.status == 200 and r.body == stored.body, \
        "with every target down a stale entry did not answer: %r" % r
    assert_age(r, 1, 5)  # its true age, past its 1 s lifetime
    assert fetch(proxy.port, forbidden).status == 502, "must-revalidate was served stale"
    assert proxy.metric("ringmaster_cache_stale_served_total") == 1


SWR = "cc=max-age%3D1%2C%20stale-while-revalidate%3D60"


def _gate(backend, name, is_open):
    """Opens or closes the backend's gate NAME (backend.py: a gate=NAME request is held,
    logged but unanswered, while its gate is closed)."""
    path = backend.dir / ("gate-" + name)
    if is_open:
        path.touch()
    elif path.exists():
        path.unlink()


def _store_then_let_go_stale(proxy, backend, targets, gate):
    _gate(backend, gate, True)
    stored = {t: fetch(proxy.port, t) for t in targets}
    assert all(r.status == 200 for r in stored.values()), stored
    _gate(backend, gate, False)
    time.sleep(1.2)  # the passage of time is the subject: past the 1 s lifetime
    return stored


@pytest.mark.parametrize("origin_says", ["304", "200"])
def test_stale_while_revalidate_answers_at_once_and_refreshes_once_in_the_background(
        start_cache_proxy, backend, origin_says):
    """Within stale-while-revalidate every request gets the stale entry at once, and the
    proxy asks the origin once, with no client waiting for it: the answers arrive while the
    backend holds that one request (its gate closed), so none of them waited for it. Once
    the backend answers, the next request gets what it said (a 304 freshens the entry, a
    200 replaces it) without another backend request."""
    proxy = start_cache_proxy([backend], threads=2)
    revalidate = "&revalidate=1" if origin_says == "304" else ""
    target = "/cacheable/swr-bg-%s?%s&etag=%%22e1%%22&gate=swr%s" % (origin_says, SWR, revalidate)
    stored = _store_then_let_go_stale(proxy, backend, [target], "swr")[target]
    first = fetch(proxy.port, target, timeout=5.0)
    others, _ = concurrent_gets(proxy.port, target, 10, timeout=5.0)
    others += [fetch(proxy.port, target, timeout=5.0) for _ in range(3)]
    for r in [first] + others:
        assert not isinstance(r, Exception) and r.status == 200, r
        assert r.body == stored.body and serial(r) == 1, "not the stale entry: %r" % r
        assert_age(r, 1)
    # The refresh reaches the backend on its own time; the proxy counts what it started.
    sent = backend.wait_for_requests(2)
    assert len(sent) == 2, "%d requests reached the backend during the window" % len(sent)
    refresh = sent[1]
    assert _conditionals(refresh) == (['"e1"'], []), refresh
    assert request_header(refresh, "X-Request-Id") == [first.header("X-Request-Id")], \
        "the refresh does not carry the id of the request that started it: %r" % refresh
    assert proxy.metric("ringmaster_cache_refreshes_started_total") == 1
    assert proxy.metric("ringmaster_cache_stale_served_total") == 14
    _gate(backend, "swr", True)
    proxy.wait_metrics({"ringmaster_cache_refreshes_succeeded_total": 1})
    fresh = fetch(proxy.port, target)
    assert fresh.status == 200 and serial(fresh) == 2, fresh
    assert_age(fresh, 0, 1)
    if origin_says == "304":
        assert fresh.body == stored.body, fresh  # the stored body, the 304's fields
        assert proxy.metric("ringmaster_cache_revalidated_total") == 1
    else:
        assert b"n=2" in fresh.body, fresh
    assert len(origin_hits(backend)) == 2
    assert proxy.metric("ringmaster_cache_refreshes_failed_total") == 0


def test_a_failed_background_refresh_keeps_the_stale_entry(start_cache_proxy, backend):
    """A refresh the origin answers 503 (a request field the refresh carries from the client
    asks the backend for it) stores nothing: the stale entry keeps answering, and the next
    request starts another refresh."""
    proxy = start_cache_proxy([backend], threads=1)
    target = "/cacheable/swr-fail?%s&etag=%%22f%%22&gate=swr-fail" % SWR
    stored = _store_then_let_go_stale(proxy, backend, [target], "swr-fail")[target]
    _gate(backend, "swr-fail", True)
    r = fetch(proxy.port, target, [("X-Backend-Status", "503")])
    assert r.status == 200 and r.body == stored.body, r
    proxy.wait_metrics({"ringmaster_cache_refreshes_failed_total": 1})
    again = fetch(proxy.port, target)
    assert again.status == 200 and again.body == stored.body and serial(again) == 1, again
    proxy.wait_metrics({"ringmaster_cache_refreshes_started_total": 2,
                        "ringmaster_cache_refreshes_succeeded_total": 1})
    assert serial(fetch(proxy.port, target)) == 3  # the second refresh's 200 replaced it
    assert len(origin_hits(backend)) == 3


def test_a_refresh_in_flight_does_not_hold_up_shutdown(start_cache_proxy, backend):
    """SIGTERM while a refresh waits on the backend: the drain ends it at its deadline
    (the stale entry simply stays) and the proxy exits cleanly."""
    proxy = start_cache_proxy([backend], threads=1, shutdown_timeout_ms=500)
    target = "/cacheable/swr-drain?%s&gate=swr-drain" % SWR
    stored = _store_then_let_go_stale(proxy, backend, [target], "swr-drain")[target]
    r = fetch(proxy.port, target)
    assert r.status == 200 and r.body == stored.body, r
    backend.wait_for_requests(2)
    assert proxy.terminate(timeout=10) == 0, proxy.stderr()


def test_background_refreshes_per_reactor_are_bounded(start_cache_proxy, backend):
    """kBackgroundRefreshesMax (64) refreshes in flight per reactor: one stale key more is
    served stale without starting a refresh, counted as refused."""
    limit = 64
    proxy = start_cache_proxy([backend], threads=1)
    targets = ["/cacheable/swr-many-%d?%s&gate=swr-many" % (i, SWR) for i in range(limit + 1)]
    stored = _store_then_let_go_stale(proxy, backend, targets, "swr-many")
    for t in targets:
        r = fetch(proxy.port, t, timeout=5.0)
        assert r.status == 200 and r.body == stored[t].body, r
    backend.wait_for_requests(2 * limit + 1)
    assert proxy.metric("ringmaster_cache_refreshes_started_total") == limit
    assert proxy.metric("ringmaster_cache_refreshes_refused_total") == 1
    assert len(origin_hits(backend)) == 2 * limit + 1
    _gate(backend, "swr-many", True)
    proxy.wait_metrics({"ringmaster_cache_refreshes_succeeded_total": limit}, timeout=10.0)
    # The refused key refreshes on its next request, now that there is room.
    r = fetch(proxy.port, targets[-1])
    assert r.status == 200 and serial(r) == limit + 1, r
    proxy.wait_metrics({"ringmaster_cache_refreshes_succeeded_total": limit + 1})


@pytest.mark.parametrize("opt_in", [False, True], ids=["default", "cache-stale-on-5xx"])
def test_a_5xx_is_replaced_by_a_stale_entry_only_when_allowed(start_cache_proxy, backend,
                                                              opt_in):
    flags = {"cache_stale_on_5xx": True} if opt_in else {}
    proxy = start_cache_proxy([backend], **flags)
    plain, sie = "/cacheable/5xx?max_age=1", "/cacheable/5xx-sie?cc=max-age%3D1%2C%20stale-if-error%3D60"
    stored = {t: fetch(proxy.port, t) for t in (plain, sie)}
    time.sleep(1.2)  # the passage of time is the subject: both entries are now stale
    failing = [("X-Backend-Status", "503")]
    r = fetch(proxy.port, sie, failing)
    assert r.status == 200 and r.body == stored[sie].body, "stale-if-error was not honoured: %r" % r
    r = fetch(proxy.port, plain, failing)
    if opt_in:
        assert r.status == 200 and r.body == stored[plain].body, r
    else:
        assert r.status == 503, "a 503 was replaced by a stale entry without permission: %r" % r
    assert proxy.metric("ringmaster_cache_stale_served_total") == (2 if opt_in else 1)


def test_serving_stale_can_be_switched_off(start_cache_proxy, backend):
    proxy = start_cache_proxy([backend], cache_serve_stale=0)
    target = "/cacheable/sie-off?max_age=1"
    fetch(proxy.port, target)
    backend.stop()
    time.sleep(1.2)  # past the 1 s lifetime
    assert fetch(proxy.port, target).status == 502
    assert proxy.metric("ringmaster_cache_stale_served_total") == 0


# ---------------------------------------------------------------------------------------
# 10. The memory bound

def test_filling_past_cache_bytes_stays_within_the_bound(start_cache_proxy, backend,
                                                         sanitized):
    bound = 1 << 20
    proxy = start_cache_proxy([backend], threads=2, cache_bytes="1M")
    assert proxy.metric("ringmaster_cache_capacity_bytes") == bound
    body = 10 * 1024
    total = 1500
    max_bytes = 0
    rss = []
    with HttpConnection(proxy.port) as c:
        for i in range(total):
            r = c.request("GET", "/cacheable/fill/%d?max_age=600&bytes=%d" % (i, body))
            assert r.status == 200 and len(r.body) == body, (i, r)
            if i % 3 == 0 or i < 200:
                cache_bytes = proxy.metric("ringmaster_cache_bytes")
                max_bytes = max(max_bytes, cache_bytes)
                assert cache_bytes <= bound, \
                    "after %d responses of %d bytes ringmaster_cache_bytes is %d > %d" % (
                        i + 1, body, cache_bytes, bound)
            if i in (200, total - 1):
                rss.append(proxy.rss_bytes())
    m = proxy.metrics()
    print("1 MiB cache, %d x %d B bodies: cache bytes max %d, entries %d, evictions %d, "
          "RSS after 200 %.1f MiB, after %d %.1f MiB, peak %.1f MiB" % (
              total, body, max_bytes, m["ringmaster_cache_entries"],
              m["ringmaster_cache_evictions_total"], rss[0] / 2**20, total, rss[1] / 2**20,
              proxy.peak_rss_bytes() / 2**20))
    assert m["ringmaster_cache_evictions_total"] > 0, m
    assert m["ringmaster_cache_stores_total"] == total, m
    assert m["ringmaster_cache_entries"] <= bound // body, m
    assert max_bytes > bound // 2, "the cache never filled (max %d bytes)" % max_bytes
    # Still a working cache: the newest key is a hit, the oldest was evicted.
    n = len(origin_hits(backend))
    assert serial(fetch(proxy.port, "/cacheable/fill/%d?max_age=600&bytes=%d" % (
        total - 1, body))) == total
    assert len(origin_hits(backend)) == n
    assert serial(fetch(proxy.port, "/cacheable/fill/0?max_age=600&bytes=%d" % body)) > total
    if not sanitized:
        # 15 MiB passed through a 1 MiB cache: evicted entries must be freed.
        assert rss[1] - rss[0] < 8 << 20, \
            "RSS grew by %.1f MiB while the cache stayed at 1 MiB" % ((rss[1] - rss[0]) / 2**20)


# ---------------------------------------------------------------------------------------
# 11. Metrics

def test_metrics_count_hits_misses_stores_and_not_modified(cache_proxy, backend):
    port = cache_proxy.port
    cache_proxy.wait_metrics({"ringmaster_cache_hits_total": 0,
                              "ringmaster_cache_misses_total": 0,
                              "ringmaster_cache_stores_total": 0,
                              "ringmaster_cache_capacity_bytes": 64 << 20,
                              "ringmaster_cache_entries": 0,
                              "ringmaster_cache_bytes": 0})
    a = "/cacheable/m1?max_age=60&etag=%22m1%22"
    b = "/cacheable/m2?max_age=60"
    c = "/cacheable/m3?cc=no-store"
    for _ in range(3):
        assert fetch(port, a).status == 200      # miss, store, hit, hit
    for _ in range(2):
        assert fetch(port, b).status == 200      # miss, store, hit
    for _ in range(2):
        assert fetch(port, c).status == 200      # miss, not stored, miss, not stored
    assert fetch(port, a, [("If-None-Match", '"m1"')]).status == 304   # hit, not modified
    assert fetch(port, a, method="HEAD").status == 200                  # hit
    assert len(origin_hits(backend)) == 4
    cache_proxy.wait_metrics({
        "ringmaster_cache_hits_total": 5,
        "ringmaster_cache_misses_total": 4,
        "ringmaster_cache_stores_total": 2,
        "ringmaster_cache_not_modified_total": 1,
        "ringmaster_cache_collapsed_waits_total": 0,
        "ringmaster_cache_evictions_total": 0,
        "ringmaster_cache_invalidations_total": 0,
        "ringmaster_cache_purged_total": 0,
        "ringmaster_cache_entries": 2,
    })
    assert cache_proxy.metric("ringmaster_cache_bytes") > 0
    # The first no-store response is counted; the second request for that key went
    # upstream as a "pass" (hit-for-pass), which the implementation counts or not.
    assert cache_proxy.metric("ringmaster_cache_not_stored_total") in (1, 2)
    assert cache_proxy.purge().status == 200
    assert cache_proxy.purge("/cacheable/m2").status == 200
    cache_proxy.wait_metrics({"ringmaster_cache_invalidations_total": 1})
