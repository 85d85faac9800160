"""Zero-downtime upgrade (--upgrade-socket): a new process takes the listening sockets over
from the running one, which drains and exits; under continuous load no connection is
refused and no request fails."""

import os
import signal
import subprocess

import pytest

from harness import LOOPBACK, ManagedProcess, free_port, get, port_accepts, wait_until
from upgradelib import Load, stop_and_check_sanitizer_reports


@pytest.fixture
def upgrade_run(ringmaster_bin, backend, tmp_path):
    started = []
    sock = str(tmp_path / "upgrade.sock")
    port = free_port()

    def start(name, listen=None):
        argv = [ringmaster_bin, "proxy", "--listen", listen or "%s:%d" % (LOOPBACK, port),
                "--target", backend.addr, "--threads", "2", "--upgrade-socket", sock,
                "--shutdown-timeout-ms", "5000", "--cache-bytes", "0"]
        p = ManagedProcess(argv, tmp_path / ("%s.log" % name), name=name)
        started.append(p)
        return p

    start.port = port
    yield start
    stop_and_check_sanitizer_reports(started)


def test_three_takeovers_under_load_lose_nothing(upgrade_run):
    first = upgrade_run("proxy-0")
    wait_until(lambda: port_accepts(upgrade_run.port) or not first.alive(), 20, "first proxy")
    assert first.alive(), first.output_tail()
    load = Load(upgrade_run.port)
    load.start()
    try:
        old = first
        for round_ in range(1, 4):
            served_before = load.ok
            new = upgrade_run("proxy-%d" % round_)
            # The old one drains what it holds (slow requests included) and exits 0.
            assert old.wait(20) == 0, "old process: %s\n%s" % (old.returncode, old.output_tail())
            assert "took over 2 listeners" in new.output(), new.output_tail()
            assert "handed the listener over" in old.output()
            assert new.alive(), new.output_tail()
            # Traffic goes on through the new process.
            wait_until(lambda: load.ok >= served_before + 50, 20, "requests after round %d"
                       % round_)
            old = new
    finally:
        load.stop()
    assert load.failures == [], "%d failures, first: %s" % (len(load.failures),
                                                           load.failures[:5])
    assert load.ok > 150 and load.slow_ok > 3
    assert get(upgrade_run.port).status == 200


def test_takeover_on_a_different_address_is_refused_and_the_old_one_keeps_serving(
        upgrade_run, ringmaster_bin):
    first = upgrade_run("proxy-0")
    wait_until(lambda: port_accepts(upgrade_run.port) or not first.alive(), 20, "first proxy")
    wrong = upgrade_run("proxy-1", listen="%s:%d" % (LOOPBACK, free_port()))
    assert wrong.wait(20) == 2
    lines = [line for line in wrong.output().splitlines() if line.strip()]
    assert any("--listen" in line and "differs" in line for line in lines), lines
    assert first.alive()
    assert get(upgrade_run.port).status == 200


def test_without_upgrade_socket_an_occupied_port_still_exits_2(upgrade_run, ringmaster_bin,
                                                                 backend):
    first = upgrade_run("proxy-0")
    wait_until(lambda: port_accepts(upgrade_run.port) or not first.alive(), 20, "first proxy")
    out = subprocess.run([str(ringmaster_bin), "proxy", "--listen",
                          "%s:%d" % (LOOPBACK, upgrade_run.port), "--target", backend.addr],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "in use" in out.stderr
    assert first.alive()


def test_after_a_takeover_a_reload_does_not_report_threads(ringmaster_bin, backend, tmp_path):
    """The new process runs one reactor per listener handed over (2 here) whatever its
    --threads (3): a reload compares the file with the file and applies without naming
    threads as a setting that waits for a restart."""
    sock = str(tmp_path / "upgrade.sock")
    port = free_port()
    config = tmp_path / "ringmaster.toml"
    config.write_text('target = ["%s"]\ncache-bytes = 0\n' % backend.addr, encoding="utf-8")
    started = []

    def start(name, threads):
        argv = [ringmaster_bin, "proxy", "--listen", "%s:%d" % (LOOPBACK, port), "--config", str(config),
                "--threads", str(threads), "--upgrade-socket", sock, "--shutdown-timeout-ms", "5000"]
        p = ManagedProcess(argv, tmp_path / ("%s.log" % name), name=name)
        started.append(p)
        return p

    try:
        old = start("proxy-0", 2)
        wait_until(lambda: port_accepts(port) or not old.alive(), 20, "first proxy")
        new = start("proxy-1", 3)
        assert old.wait(20) == 0, old.output_tail()
        assert "took over 2 listeners" in new.output(), new.output_tail()
        os.kill(new.popen.pid, signal.SIGHUP)
        wait_until(lambda: "reloaded " in new.output() or not new.alive(), 10, "the reload")
        line = [x for x in new.output().splitlines() if "reloaded " in x][-1]
        assert "not applied" not in line, line
        assert get(port).status == 200
    finally:
        for p in started:
            if p.alive():
                p.stop()
