"""wrk smoke test: many concurrent keep-alive clients, no errors."""

import re
import shutil
import subprocess

import pytest

import harness
import kit.nginx

WRK_ARGS = ["-t2", "-c20", "-d3s"]


@pytest.fixture
def nginx_backend(tmp_path, request):
    """nginx answering 200 "hello\\n": the Python backend is too slow to load the proxy."""
    if kit.nginx.binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light, or run "
                    "scripts/setup): the wrk smoke test needs a fast backend")
    port = harness.free_port()
    nginx = kit.nginx.Nginx(tmp_path / "nginx", "nginx-backend.conf.in",
                            {"WORKERS": 1, "PORT": port, "BODY": "hello", "NAME": "backend"},
                            [port])
    harness.track(request, nginx.process)
    yield "127.0.0.1:%d" % port
    nginx.stop()


def test_wrk_smoke_has_no_errors(start_proxy, nginx_backend):
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (apt-get install wrk, or run scripts/setup)")
    proxy = start_proxy([nginx_backend])
    # Through the proxy by hand first, so a broken proxy fails here with a clear message.
    r = harness.get(proxy.port, "/")
    assert r.status == 200 and r.body == b"hello\n", r

    out = subprocess.run([wrk] + WRK_ARGS + ["http://127.0.0.1:%d/" % proxy.port],
                         capture_output=True, text=True, timeout=60)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    m = re.search(r"^\s*(\d+) requests in ", report, re.M)
    assert m, "no request count in wrk output:\n" + report
    assert int(m.group(1)) > 0, report
    assert "Socket errors" not in report, report
    assert "Non-2xx" not in report, report
    assert proxy.alive(), "proxy died under load"
    # Still serving after the load.
    assert harness.get(proxy.port, "/").status == 200
