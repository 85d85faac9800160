"""nginx (Debian nginx-light) as a fast origin or a peer proxy, from the config templates in
perf/ (@KEY@ placeholders): the integration tests' load backend and perf/'s contenders use
the same files and the same command line.

    binary()                          the nginx executable, or None
    fill_template(name, out, values)  perf/<name> with @KEY@ replaced; ValueError if any is
                                      left unfilled
    argv(dir, conf)                   nginx -p DIR -e DIR/error.log -c CONF (foreground:
                                      the templates say daemon off)
    Nginx(dir, template, values)      one nginx as a ManagedProcess, ready when its ports
                                      accept
    NAMED_TEMPLATE                    200 "NAME\n" with X-Backend: NAME (tests' targets)
"""

import re
import shutil
from pathlib import Path

from kit.procs import ManagedProcess, port_accepts, wait_until

PERF_DIR = Path(__file__).resolve().parents[2] / "perf"
NAMED_TEMPLATE = Path(__file__).resolve().parent / "nginx-named.conf.in"  # NAME, PORT


def binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if shutil.which(p)), None)


def fill_template(name, out_path, values):
    """`name`: a file in perf/, or a path (kit/nginx-named.conf.in)."""
    text = (PERF_DIR / name).read_text()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError("template %s: unfilled %s" % (name, ", ".join(sorted(set(left)))))
    Path(out_path).write_text(text)
    return out_path


def argv(directory, conf):
    directory = Path(directory)
    return [binary() or "nginx", "-p", directory, "-e", directory / "error.log", "-c", conf]


class Nginx:
    """nginx from perf/<template> in `directory` (made, with tmp/ for its temp paths),
    listening on `ports`; values fill the template (DIR is added)."""

    START_TIMEOUT_S = 10.0

    def __init__(self, directory, template, values, ports, name="nginx"):
        self.dir = Path(directory)
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.ports = list(ports)
        conf = fill_template(template, self.dir / "nginx.conf", dict(values, DIR=self.dir))
        self.process = ManagedProcess(argv(self.dir, conf), self.dir / "output.log", name=name)
        wait_until(lambda: all(port_accepts(p) for p in self.ports) or not self.process.alive(),
                   self.START_TIMEOUT_S, "%s to listen on %s" % (name, self.ports))
        if not self.process.alive():
            raise AssertionError("%s did not start:\n%s\n%s" % (
                name, self.process.output_tail(), self.error_log()))

    def error_log(self):
        try:
            return (self.dir / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        return self.process.stop()
