"""The services tests' helpers (README "Services"): config files with [[service]] tables,
a proxy started from one with its admin listener, requests by Host.

    _service(name, ...)           one [[service]] table
    _write(path, head, services)  the whole config file at once (a reload never reads half)
    _get, _backend_of             a request with a Host header; (status, X-Backend)
    start_config_proxy            fixture: start(config_text, **flags) -> (AdminProxy, path)
    start_fleet_of_two(start_config_proxy, text)  two proxies, one leading
"""

import json

import pytest

import harness
from harness import LOOPBACK, HttpConnection, free_port, get, port_accepts, wait_until


def _toml_list(items):
    return "[" + ", ".join('"%s"' % i for i in items) + "]"


def _service(name, hosts=None, prefix=None, targets=None, targets_path=None, version_path=None,
             cache=None):
    lines = ["[[service]]", 'name = "%s"' % name]
    if hosts is not None:
        lines.append("hosts = " + _toml_list(hosts))
    if prefix is not None:
        lines.append('path-prefix = "%s"' % prefix)
    if targets is not None:
        lines.append("target = " + _toml_list(t.addr for t in targets))
    if targets_path is not None:
        lines.append('targets-path = "%s"' % targets_path)
    if version_path is not None:
        lines.append('cache-version-path = "%s"' % version_path)
    if cache is not None:
        lines.append("cache = %s" % ("true" if cache else "false"))
    return "\n".join(lines) + "\n"


def _write(path, head, services):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(head + "".join(services), encoding="utf-8")
    tmp.replace(path)  # whole file at once: a reload never reads half of it


def _get(port, host, target):
    return get(port, target, headers=[("Host", host)])


def _backend_of(port, host, target):
    r = _get(port, host, target)
    return r.status, r.header("X-Backend")


class AdminProxy:
    def __init__(self, proxy, admin_port):
        self.proxy = proxy
        self.admin_port = admin_port

    def metrics(self):
        return harness.parse_metrics(get(self.admin_port, "/metrics").body.decode())

    def targets(self):
        return json.loads(get(self.admin_port, "/targets").body)

    def post(self, target):
        with HttpConnection(self.admin_port, timeout=10.0) as c:
            return c.request("POST", target, timeout=10.0)

    def reload(self):
        return self.post("/config/reload")


@pytest.fixture
def start_config_proxy(start_proxy, tmp_path):
    def start(config_text, **flags):
        path = tmp_path / "ringmaster.toml"
        path.write_text(config_text, encoding="utf-8")
        admin_port = free_port()
        p = start_proxy([], config=str(path), admin="%s:%d" % (LOOPBACK, admin_port), **flags)
        wait_until(lambda: port_accepts(admin_port) or not p.alive(), 10, "admin listener")
        assert p.alive(), p.stderr()
        return AdminProxy(p, admin_port), path

    return start


def start_fleet_of_two(start_config_proxy, text):
    """Two proxies on one configuration, once one leads and the other follows."""
    proxies = [start_config_proxy(text)[0] for _ in range(2)]

    def roles():
        return sorted(p.metrics().get("ringmaster_fleet_leader", -1) for p in proxies)
    wait_until(lambda: roles() == [0, 1], 20, "one leader and one follower")
    return proxies
