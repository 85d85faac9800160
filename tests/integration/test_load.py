"""wrk smoke test: many concurrent keep-alive clients, no errors."""

import re
import shutil
import subprocess

import pytest

import harness

WRK_ARGS = ["-t2", "-c20", "-d3s"]


def _nginx_binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if shutil.which(p)), None)


@pytest.fixture
def nginx_backend(tmp_path, request):
    """nginx answering 200 "hello\\n": the Python backend is too slow to load the proxy."""
    nginx = _nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light, or run "
                    "scripts/setup): the wrk smoke test needs a fast backend")
    d = tmp_path / "nginx"
    d.mkdir()
    port = harness.free_port()
    temp_dirs = "\n".join("    %s_temp_path %s;" % (k, d / k)
                          for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (d / "nginx.conf").write_text("""
daemon off;
master_process off;
worker_processes 1;
error_log %(d)s/error.log warn;
pid %(d)s/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
%(temp_dirs)s
    server {
        listen 127.0.0.1:%(port)d;
        location / { return 200 "hello\\n"; }
    }
}
""" % {"d": d, "port": port, "temp_dirs": temp_dirs})
    proc = harness.ManagedProcess([nginx, "-p", d, "-c", d / "nginx.conf"],
                                  d / "output.log", name="nginx")
    request.node._ringmaster_processes = getattr(request.node, "_ringmaster_processes", [])
    request.node._ringmaster_processes.append(proc)
    harness.wait_until(lambda: harness.port_accepts(port) or not proc.alive(), 10,
                       "nginx to listen")
    if not proc.alive():
        pytest.fail("nginx did not start:\n%s\n%s" % (
            proc.output_tail(), (d / "error.log").read_text() if (d / "error.log").exists()
            else ""))
    yield "127.0.0.1:%d" % port
    proc.stop()


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
