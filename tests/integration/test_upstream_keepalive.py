"""Pooled upstream keep-alive connections: reused while in use, closed by the proxy once unused
for --upstream-idle-timeout-ms (or a service's upstream-idle-timeout-ms), as the backend sees
it (its open connections, counted by the backend itself)."""

import time

import pytest

from burst import CountingBackend
from harness import get, wait_until

IDLE_MS = 1500
# Slack for a loaded machine: the proxy sweeps within 100 ms of a deadline, the counting
# backend writes its figures every 50 ms.
CLOSE_SLACK_S = 5.0


@pytest.fixture
def counting_backends(tmp_path):
    made = []

    def make(name="counting"):
        b = CountingBackend(tmp_path, delay_ms=1, name=name)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def _get_200(port, host="x", path="/"):
    r = get(port, path, headers=[("Host", host)])
    assert r.status == 200, r
    return r


def test_a_pooled_connection_is_reused_until_idle_for_the_timeout_then_closed(start_proxy,
                                                                              counting_backends):
    backend = counting_backends()
    proxy = start_proxy([backend], threads=1, upstream_idle_timeout_ms=IDLE_MS)
    # Requests every IDLE_MS / 3 for twice the timeout: each finds the connection the one
    # before left in the pool, so the backend sees one connection, never closed meanwhile.
    spacing_s = IDLE_MS / 3000
    for i in range(7):
        _get_200(proxy.port, path="/busy/%d" % i)
        if i < 6:
            time.sleep(spacing_s)  # the scenario's pace, not a synchronisation
    last_answer = time.monotonic()
    seen = backend.wait_requests(7)
    assert seen["accepted"] == 1 and seen["open"] == 1, seen
    # Then unused: the proxy closes it at its deadline, not before.
    wait_until(lambda: backend.stats()["open"] == 0, IDLE_MS / 1000 + CLOSE_SLACK_S,
               "the idle connection to close")
    idle_s = time.monotonic() - last_answer
    assert idle_s >= IDLE_MS / 1000 - 0.1, idle_s
    assert backend.stats()["accepted"] == 1
    # The next request opens a fresh connection.
    _get_200(proxy.port, path="/after")
    assert backend.wait_requests(8)["accepted"] == 2


def test_each_service_closes_its_idle_connections_after_its_own_timeout(start_proxy, tmp_path,
                                                                        counting_backends):
    quick, patient = counting_backends("quick"), counting_backends("patient")
    config = tmp_path / "ringmaster.toml"
    config.write_text("\n".join([
        "[[service]]", 'name = "quick"', 'hosts = ["quick"]', 'target = ["%s"]' % quick.addr,
        "upstream-idle-timeout-ms = %d" % IDLE_MS,
        "[[service]]", 'name = "patient"', 'hosts = ["patient"]', 'target = ["%s"]' % patient.addr,
        ""]), encoding="utf-8")
    # The flag is every service's default: "patient" keeps its connection for a minute.
    proxy = start_proxy([], threads=1, config=str(config), upstream_idle_timeout_ms=60000)
    _get_200(proxy.port, host="quick")
    _get_200(proxy.port, host="patient")
    assert quick.wait_requests(1)["open"] == 1
    assert patient.wait_requests(1)["open"] == 1
    wait_until(lambda: quick.stats()["open"] == 0, IDLE_MS / 1000 + CLOSE_SLACK_S,
               "quick's idle connection to close")
    assert patient.stats()["open"] == 1, patient.stats()
