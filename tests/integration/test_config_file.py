"""`ringmaster proxy --config FILE` and `ringmaster check --config FILE` (issue 14), with the
real binary: a proxy configured by its file alone serves, caches and survives SIGHUP; check
answers like `nginx -t`: exit 0, or 2 with one line "FILE:LINE: KEY: reason"."""

import signal
import subprocess

from harness import (LOOPBACK, ManagedProcess, free_port, get, port_accepts, wait_until)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _check(ringmaster_bin, *args, cwd=None):
    return subprocess.run([str(ringmaster_bin), "check"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
                          cwd=cwd)


def test_proxy_runs_from_its_config_file_alone(ringmaster_bin, backend, tmp_path):
    port = free_port()
    path = _write(tmp_path, "ringmaster.toml", "\n".join([
        '# one static service',
        'listen = "%s:%d"' % (LOOPBACK, port),
        'target = ["%s"]' % backend.addr,
        'threads = 2',
        'cache-bytes = "16M"',
        'cache-ttl = 31536000',
        'shutdown-timeout-ms = 3000',
        '']))
    check = _check(ringmaster_bin, "--config", path)
    assert (check.returncode, check.stdout, check.stderr) == (0, "%s: ok\n" % path, ""), check

    proxy = ManagedProcess([ringmaster_bin, "proxy", "--config", path], tmp_path / "proxy.log",
                           name="proxy")
    try:
        wait_until(lambda: port_accepts(port) or not proxy.alive(), 20,
                   "the proxy to listen on the file's port %d" % port)
        assert proxy.alive(), proxy.output()
        r = get(port, "/from-file")
        assert r.status == 200 and r.body == b"backend-1 /from-file\n", r
        # The file's cache settings are in force: the second GET is a hit.
        first = get(port, "/cacheable/file")
        hit = get(port, "/cacheable/file")
        assert hit.header("X-Serial") == first.header("X-Serial") == "1", (first, hit)
        assert hit.header("Age") is not None, hit
        # SIGHUP: the file is read again (test_services.py covers what a reload changes).
        proxy.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in proxy.output() or not proxy.alive(), 5, "the reload logged")
        assert proxy.alive(), proxy.output()
        assert get(port, "/after-hup").status == 200
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(10) == 0, proxy.output()
    finally:
        proxy.kill()


def test_check_names_the_file_line_and_key_and_exits_2(ringmaster_bin, tmp_path):
    cases = [
        ('listen = "127.0.0.1:8080"\ntarget = "127.0.0.1:9001"\n\ncache-ttl = 31536001\n',
         '4: cache-ttl: expected an integer 0..31536000, got "31536001"'),
        ('listen = "127.0.0.1:8080"\nlisten-port = 8080\n', "2: listen-port: unknown setting"),
        ('listen = "127.0.0.1:8080"\nthreads = = 2\n', "2: "),
        ('target = "127.0.0.1:9001"\n', None),  # no line: a rule across settings
    ]
    for i, (text, expected) in enumerate(cases):
        # A short relative path: messages cut quoted text at 80 bytes, and tmp_path is long
        # (longer still on a pytest-xdist worker).
        path = _write(tmp_path, "bad-%d.toml" % i, text).name
        out = _check(ringmaster_bin, "--config", path, cwd=tmp_path)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode == 2 and len(lines) == 1 and out.stdout == "", out
        if expected is None:
            assert lines[0] == "ringmaster: --listen is required", lines
        else:
            assert lines[0].startswith("ringmaster: %s:%s" % (path, expected)), lines
    missing = _check(ringmaster_bin, "--config", "none.toml", cwd=tmp_path)
    assert missing.returncode == 2 and "none.toml: cannot read" in missing.stderr, missing
    assert _check(ringmaster_bin).returncode == 2
