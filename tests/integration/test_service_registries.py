"""A registry format per service (issue 16 after issue 14; README "Other registries" and
"Services"): [[service]] tables each with their own `targets-format`, against a real ZooKeeper
whose nodes kazoo creates exactly as nerve and Curator do, with real backends and clients:
  * two services by Host, one nerve and one Curator: each request reaches only its service's
    registrations, and the counts are exact under each service's own counts path
    (<fleet-path>/counts/<service name>), with one proxy and with a fleet of two;
  * /targets shows each source's registry summary;
  * a reload that adds a foreign-format service routes to it and counts it.
"""

import pytest

from harness import wait_until
from registrylib import counts_under, curator_register, kz, nerve_register  # noqa: F401  (kz: fixture)
from servicelib import _backend_of, _service, _write, start_config_proxy, start_fleet_of_two  # noqa: F401  (fixture)
from zk import zk, zk_server  # noqa: F401  (fixtures are used by name)

FLUSH_INTERVAL_MS = 100
COUNTS_SETTLE_S = 20.0
NERVE_PATH = "/nerve/services/web/services"
CURATOR_BASE = "/discovery"
CURATOR_PATH = CURATOR_BASE + "/api"


def _foreign(name, host, targets_path, fmt):
    return _service(name, hosts=[host], targets_path=targets_path) + 'targets-format = "%s"\n' % fmt


def _head(zk):
    return 'zk = "%s"\nflush-interval-ms = %d\ndefault-service = "none"\n' % (zk.connect, FLUSH_INTERVAL_MS)


def _only(port, host, backends, n, prefix):
    """n requests for `host`; every one answered by one of `backends`."""
    names = {b.name for b in backends}
    for i in range(n):
        status, backend = _backend_of(port, host, "/%s%d" % (prefix, i))
        assert status == 200 and backend in names, (host, status, backend, names)


def _exact(zk, path, backends, want_each):
    want = {b.addr: want_each(b) for b in backends}
    wait_until(lambda: counts_under(zk.ctl, path) == want, COUNTS_SETTLE_S,
               "counts under %s to be %s" % (path, want))


def test_two_services_in_two_formats_route_and_count_apart(zk, kz, start_backend, start_config_proxy):
    web = [start_backend("web-1"), start_backend("web-2")]
    api = [start_backend("api-1"), start_backend("api-2")]
    for i, b in enumerate(web):
        nerve_register(kz, NERVE_PATH, b, "i-%d" % i)
    for b in api:
        curator_register(kz, CURATOR_BASE, "api", b)
    admin, _ = start_config_proxy(_head(zk) + _foreign("web", "web.example.test", NERVE_PATH, "nerve") +
                                  _foreign("api", "api.example.test", CURATOR_PATH, "curator"))
    wait_until(lambda: len(admin.targets().get("registries", {})) == 2, 10, "both registries read")
    port = admin.proxy.port
    per_service = 20
    _only(port, "web.example.test", web, per_service, "w")
    _only(port, "api.example.test", api, per_service, "a")
    # Counts: persistent nodes of ours, per service, per host:port, exactly what each backend
    # served; nothing in the registrations' own directories.
    _exact(zk, "/ringmaster/counts/web", web, lambda b: len(b.requests()))
    _exact(zk, "/ringmaster/counts/api", api, lambda b: len(b.requests()))
    assert sum(len(b.requests()) for b in web) == per_service
    assert sum(len(b.requests()) for b in api) == per_service
    assert all(not n[0].isdigit() for n in zk.ctl.ls(NERVE_PATH)), zk.ctl.ls(NERVE_PATH)
    # Each source's registry summary.
    registries = admin.targets()["registries"]
    assert registries[NERVE_PATH]["format"] == "nerve"
    assert registries[NERVE_PATH]["routed"] == 2
    assert registries[NERVE_PATH]["counts_path"] == "/ringmaster/counts/web"
    assert registries[CURATOR_PATH]["format"] == "curator"
    assert registries[CURATOR_PATH]["routed"] == 2
    assert registries[CURATOR_PATH]["counts_path"] == "/ringmaster/counts/api"
    metrics = admin.metrics()
    assert metrics['ringmaster_registry_nodes{state="routed"}'] == 4, metrics  # summed over sources
    # A registration leaving one service changes only that service's routing.
    web_only = start_backend("web-3")
    nerve_register(kz, NERVE_PATH, web_only, "i-3")
    wait_until(lambda: admin.targets()["registries"][NERVE_PATH]["routed"] == 3, 10, "web-3 joined")
    _only(port, "api.example.test", api, 10, "b")


def test_a_fleet_counts_each_foreign_service_under_its_own_path(zk, kz, start_backend, start_config_proxy):
    # Followers send their book keys (full count node paths beyond the default source); the
    # leader writes them, created on demand, in its ledgered multi.
    web, api = start_backend("web"), start_backend("api")
    nerve_register(kz, NERVE_PATH, web, "i-web")
    curator_register(kz, CURATOR_BASE, "api", api)
    text = (_head(zk) + _foreign("web", "web.example.test", NERVE_PATH, "nerve") +
            _foreign("api", "api.example.test", CURATOR_PATH, "curator"))
    proxies = start_fleet_of_two(start_config_proxy, text)
    per_proxy = 15
    for p in proxies:
        _only(p.proxy.port, "web.example.test", [web], per_proxy, "w")
        _only(p.proxy.port, "api.example.test", [api], per_proxy, "a")
    _exact(zk, "/ringmaster/counts/web", [web], lambda b: 2 * per_proxy)
    _exact(zk, "/ringmaster/counts/api", [api], lambda b: 2 * per_proxy)
    relayed = sum(p.metrics().get("ringmaster_fleet_relayed_requests_total", 0) for p in proxies)
    assert relayed > 0, "the leader wrote the follower's requests"


def test_a_reload_adds_a_foreign_format_service(zk, kz, start_backend, start_config_proxy):
    web, api = start_backend("web"), start_backend("api")
    nerve_register(kz, NERVE_PATH, web, "i-web")
    curator_register(kz, CURATOR_BASE, "api", api)
    first = _head(zk) + _foreign("web", "web.example.test", NERVE_PATH, "nerve")
    admin, path = start_config_proxy(first)
    port = admin.proxy.port
    _only(port, "web.example.test", [web], 5, "w")
    assert _backend_of(port, "api.example.test", "/a")[0] == 404
    _write(path, first, [_foreign("api", "api.example.test", CURATOR_PATH, "curator")])
    r = admin.reload()
    assert r.status == 200 and b"reloaded" in r.body, r
    _only(port, "api.example.test", [api], 10, "a")
    _only(port, "web.example.test", [web], 5, "x")
    _exact(zk, "/ringmaster/counts/api", [api], lambda b: 10)
    _exact(zk, "/ringmaster/counts/web", [web], lambda b: 10)
    assert admin.targets()["registries"][CURATOR_PATH]["format"] == "curator"
    # And removed again: no longer routed, its counts stay where they were written.
    _write(path, first, [])
    r = admin.reload()
    assert r.status == 200 and b"reloaded" in r.body, r
    assert _backend_of(port, "api.example.test", "/a")[0] == 404
    wait_until(lambda: CURATOR_PATH not in admin.targets().get("registries", {}), 10, "the api source forgotten")
    assert counts_under(zk.ctl, "/ringmaster/counts/api") == {api.addr: 10}


@pytest.mark.parametrize("bad,expected", [
    ('targets-format = "eureka"\n', 'service "api": targets-format: must be ringmaster, nerve, serverset or curator'),
    ('targets-format = "curator"\ncounts-path = "/discovery/api/c"\n',
     'service "api": counts-path: must not be targets-path'),
    ('targets-format = "curator"\ncounts-path = "/ringmaster/counts/web"\n',
     'counts-path: "/ringmaster/counts/web" overlaps the counts path of service'),
])
def test_a_bad_per_service_format_is_refused_on_reload(zk, start_config_proxy, bad, expected):
    first = _head(zk) + _foreign("web", "web.example.test", NERVE_PATH, "nerve")
    admin, path = start_config_proxy(first)
    _write(path, first, [_service("api", hosts=["api.example.test"], targets_path=CURATOR_PATH) + bad])
    r = admin.reload()
    assert r.status != 200 and b"nothing changed" in r.body and expected.encode() in r.body, r
