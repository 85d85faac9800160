"""Services (issue 14): one proxy, many services from the config file's [[service]] tables,
routed by Host then the longest path prefix, each with its own targets (static or in
ZooKeeper), counts, cache and content version; 404 when nothing matches; live reload on
SIGHUP and POST /config/reload, under load, with a bad file in between."""

import signal
import subprocess
import threading
import time

from harness import LOOPBACK, HttpConnection, free_port, get, port_accepts, wait_until
from servicelib import (AdminProxy, _backend_of, _get, _service, _write,  # noqa: F401
                        start_config_proxy, start_fleet_of_two)  # (a fixture, used by name)
from zk import zk, zk_server  # noqa: F401  (fixtures are used by name)

FLUSH_INTERVAL_MS = 100
COUNTS_SETTLE_S = 20.0


def test_static_services_route_by_host_then_longest_prefix(start_backend, start_config_proxy):
    api, api_v2, www, assets = (start_backend(n) for n in ("api", "api-v2", "www", "assets"))
    admin, _ = start_config_proxy("".join([
        _service("api", hosts=["api.example.test"], targets=[api]),
        _service("api-v2", hosts=["api.example.test"], prefix="/v2/", targets=[api_v2]),
        _service("www", hosts=["www.example.test", "*.www.example.test"], targets=[www]),
        _service("assets", prefix="/static/", targets=[assets]),
    ]))
    port = admin.proxy.port
    assert _backend_of(port, "api.example.test", "/users") == (200, "api")
    assert _backend_of(port, "API.Example.TEST:8080", "/v2/users") == (200, "api-v2")
    assert _backend_of(port, "www.example.test", "/") == (200, "www")
    assert _backend_of(port, "a.b.www.example.test", "/static/x.css") == (200, "www")
    assert _backend_of(port, "unknown.test", "/static/x.css") == (200, "assets")
    # Nothing matches and no default: 404 from the proxy itself; no backend saw it.
    r = _get(port, "unknown.test", "/private")
    assert r.status == 404 and b"no service matches" in r.body, r
    for b, n in ((api, 1), (api_v2, 1), (www, 2), (assets, 1)):
        b.wait_for_requests(n)
        assert len(b.requests()) == n, (b.name, b.requests())
    m = admin.metrics()
    assert m['ringmaster_service_requests_total{service="www"}'] == 2
    assert m["ringmaster_unrouted_requests_total"] == 1
    services = {s["name"]: s for s in admin.targets()["services"]}
    assert [t["name"] for t in services["assets"]["targets"]] == [assets.addr]


def test_the_flags_service_answers_what_no_service_matches(start_backend, start_config_proxy):
    api, fallback = start_backend("api"), start_backend("fallback")
    # No default-service in the file and --target on the command line: the flags' service.
    admin, _ = start_config_proxy(_service("api", hosts=["api.example.test"], targets=[api]),
                                  target=fallback.addr)
    port = admin.proxy.port
    assert _backend_of(port, "api.example.test", "/") == (200, "api")
    assert _backend_of(port, "other.test", "/") == (200, "fallback")


def _counts(zk, path):
    return {name: int(zk.ctl.get(path + "/" + name) or 0) for name in zk.ctl.ls(path) or []}


def test_zookeeper_services_each_reach_only_their_targets_and_count_there(
        start_backend, start_config_proxy, zk):
    backends = {name: [start_backend("%s-%d" % (name, i)) for i in (1, 2)]
                for name in ("api", "www", "assets")}
    for name, bs in backends.items():
        for b in bs:
            zk.ctl.create("/services/%s/targets/%s" % (name, b.addr), "0", parents=True)
        zk.ctl.create("/services/%s/version" % name, "v1", parents=True)
    head = ('zk = "%s"\nflush-interval-ms = %d\ncache-bytes = "16M"\ndefault-service = "none"\n'
            % (zk.connect, FLUSH_INTERVAL_MS))
    admin, _ = start_config_proxy(head + "".join([
        _service("api", hosts=["api.example.test"], targets_path="/services/api/targets",
                 version_path="/services/api/version"),
        _service("www", hosts=["www.example.test"], targets_path="/services/www/targets",
                 version_path="/services/www/version"),
        _service("assets", prefix="/static/", targets_path="/services/assets/targets",
                 version_path="/services/assets/version"),
    ]), cache_bytes="16M")  # the harness turns the cache off on the command line otherwise
    port = admin.proxy.port
    requests = {"api": ("api.example.test", "/a"), "www": ("www.example.test", "/w"),
                "assets": ("x.test", "/static/s")}
    per_service = 10
    for name, (host, target) in requests.items():
        for i in range(per_service):
            status, backend = _backend_of(port, host, target + str(i))
            assert status == 200 and backend.startswith(name + "-"), (name, status, backend)
    assert _get(port, "x.test", "/nothing").status == 404
    # Counts land on each service's own nodes, nowhere else.
    for name, bs in backends.items():
        path = "/services/%s/targets" % name
        wait_until(lambda: sum(_counts(zk, path).values()) == per_service, COUNTS_SETTLE_S,
                   "%s's counts in ZooKeeper" % name)
        for b in bs:
            assert len(b.requests()) == _counts(zk, path)[b.addr], (b.name, _counts(zk, path))
    # /targets groups by service.
    services = {s["name"]: s for s in admin.targets()["services"]}
    assert sorted(t["name"] for t in services["www"]["targets"]) == sorted(b.addr for b in backends["www"])

    # Per-service cache invalidation by the service's own content version.
    def serial(host, target):  # which backend's which /cacheable answer
        r = _get(port, host, target)
        return r.header("X-Backend"), r.header("X-Serial")

    api_first = serial("api.example.test", "/cacheable/c?max_age=600")
    www_first = serial("www.example.test", "/cacheable/c?max_age=600")
    assert serial("api.example.test", "/cacheable/c?max_age=600") == api_first
    assert serial("www.example.test", "/cacheable/c?max_age=600") == www_first
    m = admin.metrics()
    assert m['ringmaster_service_cache_hits_total{service="www"}'] == 1, m
    assert m['ringmaster_service_cache_misses_total{service="www"}'] == per_service + 1, m
    assert m['ringmaster_service_cache_bytes{service="www"}'] > 0
    assert m['ringmaster_service_cache_hits_total{service="assets"}'] == 0
    # The admin purge reaches one service's cache.
    r = admin.post("/cache/purge?service=www&path=/cacheable/c")
    assert r.status == 200 and b'"purged":1' in r.body, r
    assert admin.post("/cache/purge?service=nope").status == 404
    assert serial("www.example.test", "/cacheable/c?max_age=600") != www_first
    www_first = serial("www.example.test", "/cacheable/c?max_age=600")
    zk.ctl.set("/services/api/version", "v2")
    wait_until(lambda: serial("api.example.test", "/cacheable/c?max_age=600") != api_first, 10,
               "api's cache to empty on its version change")
    assert serial("www.example.test", "/cacheable/c?max_age=600") == www_first


def test_every_zookeeper_service_routes_from_the_first_request(start_backend, start_config_proxy, zk):
    # Ready (the listen port accepting; READY=1 under systemd) means every service's source
    # was read once: no first request of any service gets a 503 for want of targets. Three
    # proxies on one ZooKeeper, eight services each, asked at once.
    names = ["svc%d" % i for i in range(8)]
    for name in names:
        zk.ctl.create("/services/%s/targets/%s" % (name, start_backend(name).addr), "0", parents=True)
    head = 'zk = "%s"\nflush-interval-ms = %d\ndefault-service = "none"\n' % (zk.connect, FLUSH_INTERVAL_MS)
    text = head + "".join(_service(name, hosts=["%s.example.test" % name],
                                   targets_path="/services/%s/targets" % name) for name in names)
    answers = {}
    for i in range(3):
        port = start_config_proxy(text)[0].proxy.port
        for name in names:
            answers[(i, name)] = _backend_of(port, "%s.example.test" % name, "/first")
    wrong = {key: answer for key, answer in answers.items() if answer != (200, key[1])}
    assert not wrong, "(proxy, service): (status, backend) of first requests that failed: %s" % wrong


def test_a_fleet_writes_every_services_counts_through_its_leader(
        start_backend, start_config_proxy, zk):
    # Two proxies, one configuration: one leads and writes, in its ledgered multi, the
    # follower's batches for every service too (keyed by full node path beyond the default).
    backends = {name: start_backend(name) for name in ("api", "www")}
    for name, b in backends.items():
        zk.ctl.create("/services/%s/targets/%s" % (name, b.addr), "0", parents=True)
    head = 'zk = "%s"\nflush-interval-ms = %d\ndefault-service = "none"\n' % (zk.connect, FLUSH_INTERVAL_MS)
    text = head + "".join(_service(name, hosts=["%s.example.test" % name],
                                   targets_path="/services/%s/targets" % name) for name in backends)
    proxies = start_fleet_of_two(start_config_proxy, text)
    per_proxy = 15
    for p in proxies:
        for name in backends:
            for i in range(per_proxy):
                assert _backend_of(p.proxy.port, "%s.example.test" % name, "/f%d" % i) == (200, name)
    for name, b in backends.items():
        path = "/services/%s/targets" % name
        wait_until(lambda: _counts(zk, path) == {b.addr: 2 * per_proxy}, COUNTS_SETTLE_S,
                   "%s's count from both proxies (%s)" % (name, _counts(zk, path)))
    ledger = zk.ctl.get("/ringmaster/ledger")
    assert ledger, "the counts went through the fleet's ledger"
    relayed = sum(p.metrics().get("ringmaster_fleet_relayed_requests_total", 0) for p in proxies)
    assert relayed > 0, "the leader wrote the follower's requests"


def test_reload_follows_each_file_under_load_with_no_failed_request(
        start_backend, start_config_proxy, ringmaster_bin, zk):
    api, www, extra, assets, assets2 = (start_backend(n) for n in ("api", "www", "extra", "assets",
                                                                    "assets2"))
    for name, b in (("api", api), ("www", www), ("extra", extra), ("www-moved", www)):
        zk.ctl.create("/services/%s/targets/%s" % (name, b.addr), "0", parents=True)
    head = 'zk = "%s"\nflush-interval-ms = %d\ndefault-service = "none"\n' % (zk.connect, FLUSH_INTERVAL_MS)
    stable = [_service("api", hosts=["api.example.test"], targets_path="/services/api/targets"),
              _service("www", hosts=["www.example.test"], targets_path="/services/www/targets")]
    # www moved to another targets path (same backend): no request of it may fail meanwhile.
    moved = [stable[0], _service("www", hosts=["www.example.test"],
                                 targets_path="/services/www-moved/targets")]
    admin, path = start_config_proxy(head + "".join(stable))
    port = admin.proxy.port

    failures, sent, stop = [], [0], threading.Event()

    def load():
        deadline = time.monotonic() + 120  # bounded in time and in count
        with HttpConnection(port, timeout=10.0) as c:
            while not stop.is_set() and time.monotonic() < deadline and sent[0] < 200000:
                for host, want in (("api.example.test", "api"), ("www.example.test", "www")):
                    r = c.request("GET", "/load", [("Host", host)], timeout=10.0)
                    sent[0] += 1
                    if r.status != 200 or r.header("X-Backend") != want:
                        failures.append((host, r.status, r.header("X-Backend")))

    loader = threading.Thread(target=load)
    loader.start()
    try:
        variants = [
            # (the services, a probe: (host, target, expected backend or status))
            (stable + [_service("extra", hosts=["extra.example.test"], targets_path="/services/extra/targets")],
             ("extra.example.test", "/e", "extra")),
            (stable + [_service("assets", prefix="/static/", targets=[assets])], ("x.test", "/static/a", "assets")),
            (moved + [_service("assets", prefix="/files/", targets=[assets])], ("x.test", "/files/a", "assets")),
            (stable + [_service("assets", prefix="/files/", targets=[assets2])], ("x.test", "/files/a", "assets2")),
            (stable, ("extra.example.test", "/e", 404)),
        ]
        reloads = 0
        for round_ in range(4):
            for services, (host, target, want) in variants:
                if reloads == 20:
                    break
                use_sighup = reloads % 2 == 0
                _write(path, head, services)
                if use_sighup:
                    admin.proxy.process.send_signal(signal.SIGHUP)
                    # SIGHUP is asynchronous: the next file must not be written before this
                    # one was read.
                    wait_until(lambda: admin.metrics()['ringmaster_config_reloads_total{result="ok"}']
                               == reloads + 1, 5, "SIGHUP reload %d applied" % (reloads + 1))
                else:
                    r = admin.reload()
                    assert r.status == 200 and b"reloaded" in r.body, r
                reloads += 1

                def routed():
                    r = _get(port, host, target)
                    return (r.status == want) if isinstance(want, int) else \
                        (r.status == 200 and r.header("X-Backend") == want)
                # Within a second of the reload being applied (answered, or counted for SIGHUP).
                wait_until(routed, 1.0, "routing to follow reload %d (%s%s -> %s)" % (reloads, host, target, want))
            # A bad file in between: refused, nothing changes.
            _write(path, head, stable + ['[[service]]\nname = "broken"\nhosts = ["a b"]\n'])
            r = admin.reload()
            assert r.status == 400 and b"hosts" in r.body, r
            assert admin.proxy.alive()
        assert reloads == 20
    finally:
        stop.set()
        loader.join(30)
    assert sent[0] > 0 and failures == [], (sent[0], failures[:5])
    # Every request counted on its service's node, also those routed to "extra" just before
    # a reload removed it (the coordinator writes them before it forgets the source).
    for name, b in (("api", api), ("extra", extra)):
        path = "/services/%s/targets" % name
        wait_until(lambda: _counts(zk, path) == {b.addr: len(b.requests())}, COUNTS_SETTLE_S,
                   "%s's count to match its backend (%s, %d)" % (name, _counts(zk, path), len(b.requests())))

    def www_counts():  # www's requests, on whichever path routed them
        return sum(_counts(zk, "/services/%s/targets" % n).get(www.addr, 0) for n in ("www", "www-moved"))
    wait_until(lambda: www_counts() == len(www.requests()), COUNTS_SETTLE_S,
               "www's counts on both paths to match its backend (%d, %d)" % (www_counts(), len(www.requests())))
    m = admin.metrics()
    assert m['ringmaster_config_reloads_total{result="ok"}'] == 20
    assert m['ringmaster_config_reloads_total{result="error"}'] == 4


def test_check_validates_services(ringmaster_bin, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('listen = "127.0.0.1:8080"\n[[service]]\nname = "a"\ntarget = ["127.0.0.1:1"]\n'
                    '[[service]]\nname = "a"\ntarget = ["127.0.0.1:2"]\n', encoding="utf-8")
    out = subprocess.run([str(ringmaster_bin), "check", "--config", str(path)], capture_output=True,
                         text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr == 'ringmaster: %s:5: service "a": name: duplicate service name\n' % path, out
    path.write_text('listen = "127.0.0.1:8080"\ndefault-service = "a"\n[[service]]\nname = "a"\n'
                    'target = ["127.0.0.1:1"]\n', encoding="utf-8")
    out = subprocess.run([str(ringmaster_bin), "check", "--config", str(path)], capture_output=True,
                         text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert (out.returncode, out.stdout) == (0, "%s: ok\n" % path), out


def test_sighup_without_config_rereads_nothing(start_backend, start_proxy):
    b = start_backend("b")
    p = start_proxy([b])
    p.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "nothing to reload" in p.stderr() or not p.alive(), 5, "SIGHUP logged")
    assert p.alive() and get(p.port, "/").status == 200


def test_reload_reports_settings_it_cannot_apply_live(start_backend, start_config_proxy):
    a, b = start_backend("a"), start_backend("b")
    admin, path = start_config_proxy(_service("s", targets=[a]))
    path.write_text("header-timeout-ms = 5000\n" + _service("s", targets=[b]), encoding="utf-8")
    r = admin.reload()
    assert r.status == 200, r
    assert b"not applied until a restart: timeouts" in r.body, r.body
    assert "not applied until a restart: timeouts" in admin.proxy.stderr()
    # The services were applied all the same: the static target changed.
    wait_until(lambda: _backend_of(admin.proxy.port, "x.test", "/") == (200, "b"), 1.0, "the new target")


def test_reload_without_config_file_is_refused_by_the_admin_endpoint(start_backend, start_proxy):
    b = start_backend("b")
    admin_port = free_port()
    p = start_proxy([b], admin="%s:%d" % (LOOPBACK, admin_port))
    wait_until(lambda: port_accepts(admin_port), 10, "admin listener")
    r = AdminProxy(p, admin_port).reload()
    assert r.status == 409 and b"nothing to reload" in r.body, r
