"""scripts/package builds a .deb that installs, verifies, runs and purges cleanly.

Installing needs root and a machine where the package may be installed and removed (CI's
throwaway machine); elsewhere those tests skip with the reason. Building the package needs
only dpkg-deb."""

import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess

import pytest

from harness import REPO_ROOT

UNITS = ["ringmaster.service", "ringmaster-agent@.service"]
UNIT_DIR = "/usr/lib/systemd/system"

# serial: scripts/package runs a Release build on every core.
pytestmark = [pytest.mark.skipif(shutil.which("dpkg-deb") is None,
                                 reason="dpkg-deb is missing: not a Debian system"),
              pytest.mark.serial, pytest.mark.slow]


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 120), stdin=subprocess.DEVNULL, **kw)


def installed_status():
    out = run(["dpkg-query", "-W", "-f=${Status}", "ringmaster"])
    return out.stdout if out.returncode == 0 else ""


@pytest.fixture(scope="module")
def deb():
    out = run([REPO_ROOT / "scripts" / "package"], timeout=1200)
    assert out.returncode == 0, "scripts/package failed:\n%s\n%s" % (out.stdout, out.stderr)
    path = out.stdout.strip().splitlines()[-1]
    assert path.endswith(".deb") and os.path.isfile(path), out.stdout
    return path


def deb_field(deb, name):
    out = run(["dpkg-deb", "--field", deb, name])
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_package_holds_the_binary_units_and_default_flags(deb):
    out = run(["dpkg-deb", "--contents", deb])
    assert out.returncode == 0, out.stderr
    paths = {line.split()[-1].lstrip(".") for line in out.stdout.splitlines()}
    for path in ["/usr/bin/ringmaster", "/etc/ringmaster/proxy.env", "/etc/logrotate.d/ringmaster",
                 "/etc/ringmaster/ringmaster.toml", "/usr/lib/ringmaster/takeover",
                 "/usr/share/doc/ringmaster/README.md",
                 "/usr/share/doc/ringmaster/agent.conf.example"] + \
            ["%s/%s" % (UNIT_DIR, u) for u in UNITS]:
        assert path in paths, "%s not in the package:\n%s" % (path, out.stdout)
    for line in out.stdout.splitlines():
        assert " root/root " in line, "file not owned by root: %s" % line
    assert deb_field(deb, "Package") == "ringmaster"
    depends = deb_field(deb, "Depends")
    for lib in ["liburing", "libzookeeper-mt", "libc6"]:
        assert lib in depends, "Depends lacks %s: %s" % (lib, depends)
    # Edited configuration survives upgrades (dpkg asks before replacing a changed one).
    out = run(["dpkg-deb", "--info", deb, "conffiles"])
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == ["/etc/logrotate.d/ringmaster",
                                          "/etc/ringmaster/proxy.env",
                                          "/etc/ringmaster/ringmaster.toml"], out.stdout


def unit_settings(path):
    settings = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, value = line.split("=", 1)
                settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_hardened(unit):
    s = unit_settings(REPO_ROOT / "packaging" / unit)
    assert s["User"] == ["ringmaster"]
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes")]:
        assert s.get(key) == [value], "%s: %s=%s" % (unit, key, s.get(key))
    if unit == "ringmaster.service":
        assert s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
        assert s["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
        # --max-connections defaults to 10000, each with a client and an upstream socket.
        assert int(s["LimitNOFILE"][0]) >= 2 * 10000
        assert s["Type"] == ["notify"] and int(s["WatchdogSec"][0]) > 0
        # Upgrade by takeover (README "Upgrade under systemd"): the new process, not the
        # main one, sends MAINPID=; the socket lives in the unit's runtime directory, before
        # the env file's flags so that they can override it.
        assert s["NotifyAccess"] == ["all"]
        assert s["RuntimeDirectory"] == ["ringmaster"] and s["RuntimeDirectoryMode"] == ["0750"]
        assert s["ExecStart"] == ["/usr/bin/ringmaster proxy --upgrade-socket "
                                  "/run/ringmaster/upgrade.sock $RINGMASTER_PROXY_ARGS"]
        assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    else:
        assert s["CapabilityBoundingSet"] == [""]
        assert s["EnvironmentFile"] == ["/etc/ringmaster/agent-%i.conf"]


@pytest.mark.parametrize("unit", UNITS)
def test_units_expose_little_to_systemd_analyze_security(unit, tmp_path):
    # systemd's own score of the sandbox (0 best, 10 worst; "OK" is below 4.5): held at
    # "OK", so a setting dropped by accident shows. Offline: no running systemd needed.
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd, in scripts/setup)")
    name = unit.replace("@.", "@web1.")
    shutil.copy(REPO_ROOT / "packaging" / unit, tmp_path / name)
    out = run([analyze, "security", "--offline=true", "--threshold=40", tmp_path / name])
    assert out.returncode == 0, "exposure above 4.0:\n%s%s" % (out.stdout[-600:], out.stderr)


def test_shipped_config_and_its_commented_examples_pass_check(ringmaster_bin, tmp_path):
    shipped = REPO_ROOT / "packaging" / "ringmaster.toml"
    out = run([ringmaster_bin, "check", "--config", shipped])
    assert out.returncode == 0, out.stderr
    # Every commented setting and [[service]] table, uncommented, is valid too.
    text = re.sub(r"(?m)^# (\[\[service\]\]|[a-z-]+ = )", r"\1", shipped.read_text())
    assert text.count("[[service]]") >= 2 and "\nthreads = " in text
    example = tmp_path / "example.toml"
    example.write_text(text)
    out = run([ringmaster_bin, "check", "--config", example])
    assert out.returncode == 0, "uncommented example rejected: %s" % out.stderr
    # proxy.env names it.
    assert 'RINGMASTER_PROXY_ARGS="--config /etc/ringmaster/ringmaster.toml"' in \
        (REPO_ROOT / "packaging" / "proxy.env").read_text()


def test_takeover_script_is_posix_sh():
    out = run(["/bin/sh", "-n", REPO_ROOT / "packaging" / "takeover"])
    assert out.returncode == 0, out.stderr
    if shutil.which("shellcheck"):
        out = run(["shellcheck", "-s", "sh", REPO_ROOT / "packaging" / "takeover",
                   REPO_ROOT / "packaging" / "postinst"])
        assert out.returncode == 0, out.stdout


@pytest.fixture
def installable():
    if os.geteuid() != 0:
        pytest.skip("installing the package needs root (CI runs this as root)")
    if installed_status():
        pytest.skip("a ringmaster package is already installed here (%s); this test would "
                    "replace and purge it" % installed_status())
    yield
    if installed_status():
        run(["dpkg", "--purge", "ringmaster"])


def test_install_verify_run_and_purge(deb, installable, tmp_path):
    out = run(["dpkg", "-i", deb])
    assert out.returncode == 0, "dpkg -i failed:\n%s\n%s" % (out.stdout, out.stderr)
    assert installed_status() == "install ok installed"

    # Files and the system user.
    assert os.access("/usr/bin/ringmaster", os.X_OK)
    for u in UNITS:
        assert os.path.isfile("%s/%s" % (UNIT_DIR, u))
    user = pwd.getpwnam("ringmaster")
    assert user.pw_uid < 1000, "not a system user: uid %d" % user.pw_uid
    assert user.pw_shell == "/usr/sbin/nologin"
    assert grp.getgrgid(user.pw_gid).gr_name == "ringmaster"

    # The installed binary runs, reports the package's version, and accepts the shipped flags.
    out = run(["/usr/bin/ringmaster", "--version"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ringmaster %s" % deb_field(deb, "Version")
    env = {}
    with open("/etc/ringmaster/proxy.env", encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                key, value = line.strip().split("=", 1)
                env[key] = shlex.split(value)[0]
    # The unit's command line: the upgrade socket, then proxy.env's flags (which name the
    # shipped ringmaster.toml).
    out = run(["/usr/bin/ringmaster", "check", "proxy", "--upgrade-socket",
               "/run/ringmaster/upgrade.sock"] + env["RINGMASTER_PROXY_ARGS"].split())
    assert out.returncode == 0, "shipped proxy.env rejected: %s" % out.stderr
    assert os.access("/usr/lib/ringmaster/takeover", os.X_OK)
    example = "/usr/share/doc/ringmaster/agent.conf.example"
    with open(example, encoding="utf-8") as f:
        agent_args = [shlex.split(line.split("=", 1)[1])[0] for line in f
                      if line.startswith("RINGMASTER_AGENT_ARGS=")][0]
    out = run(["/usr/bin/ringmaster", "check", "agent"] + agent_args.split())
    assert out.returncode == 0, "agent.conf.example rejected: %s" % out.stderr

    # The units as systemd reads them: unknown keys, bad values, a missing ExecStart binary
    # or user are errors. The template is verified through an instance.
    verify = shutil.which("systemd-analyze")
    assert verify, "systemd-analyze is missing (Debian package systemd, in scripts/setup)"
    instance = tmp_path / "ringmaster-agent@web1.service"
    shutil.copy("%s/ringmaster-agent@.service" % UNIT_DIR, instance)
    out = run([verify, "verify", "%s/ringmaster.service" % UNIT_DIR, instance])
    assert out.returncode == 0 and "ringmaster" not in out.stderr, \
        "systemd-analyze verify:\n%s%s" % (out.stdout, out.stderr)

    # Remove keeps the edited configuration; purge takes it, the user and the group away.
    with open("/etc/ringmaster/proxy.env", "a", encoding="utf-8") as f:
        f.write("# edited by the test\n")
    out = run(["dpkg", "--remove", "ringmaster"])
    assert out.returncode == 0, out.stderr
    assert not os.path.exists("/usr/bin/ringmaster")
    assert not os.path.exists("%s/ringmaster.service" % UNIT_DIR)
    assert os.path.exists("/etc/ringmaster/proxy.env")
    out = run(["dpkg", "--purge", "ringmaster"])
    assert out.returncode == 0, out.stderr
    assert installed_status() == ""
    assert not os.path.exists("/etc/ringmaster")
    assert not os.path.exists("/etc/logrotate.d/ringmaster")
    with pytest.raises(KeyError):
        pwd.getpwnam("ringmaster")
    with pytest.raises(KeyError):
        grp.getgrnam("ringmaster")
