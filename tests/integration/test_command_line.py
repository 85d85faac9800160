"""Bad command lines exit 2 with a one-line reason on stderr; --help lists every flag."""

import re
import socket
import subprocess

import pytest

from harness import REPO_ROOT, ReservedPort, free_port, get


def _listen():
    return "127.0.0.1:%d" % free_port()


BAD_COMMAND_LINES = [
    ("unknown_flag", lambda t: ["proxy", "--listen", _listen(), "--target", t,
                                "--no-such-flag", "1"]),
    ("threads_not_a_number", lambda t: ["proxy", "--listen", _listen(), "--target", t,
                                        "--threads", "abc"]),
    ("timeout_not_a_number", lambda t: ["proxy", "--listen", _listen(), "--target", t,
                                        "--header-timeout-ms", "10s"]),
    ("size_with_bad_suffix", lambda t: ["proxy", "--listen", _listen(), "--target", t,
                                        "--body-bytes-max", "12Q"]),
    ("target_without_port", lambda t: ["proxy", "--listen", _listen(), "--target",
                                       "127.0.0.1"]),
    ("listen_not_an_address", lambda t: ["proxy", "--listen", "nonsense", "--target", t]),
    ("no_target_and_no_zk", lambda t: ["proxy", "--listen", _listen()]),
    ("unknown_subcommand", lambda t: ["frobnicate"]),
    ("access_log_buffer_too_small", lambda t: ["proxy", "--listen", _listen(), "--target", t,
                                               "--access-log", "/dev/null",
                                               "--access-log-buffer", "1K"]),
    ("access_log_empty_path", lambda t: ["proxy", "--listen", _listen(), "--target", t,
                                         "--access-log="]),
    ("check_without_command", lambda t: ["check"]),
    ("check_bad_flag", lambda t: ["check", "proxy", "--listen", "nonsense", "--target", t]),
]


@pytest.mark.parametrize("make_args", [pytest.param(f, id=i) for i, f in BAD_COMMAND_LINES])
def test_bad_command_line_exits_2_with_one_line_reason(ringmaster_bin, make_args):
    target = ReservedPort()
    try:
        argv = [str(ringmaster_bin)] + make_args(target.addr)
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail("%s was accepted: still running after 20 s" % argv)
    finally:
        target.close()
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, "%s: exit code %s, stderr %r" % (argv, out.returncode,
                                                                 out.stderr)
    assert len(lines) == 1, "%s: expected a one-line reason, stderr was %r" % (argv,
                                                                              out.stderr)


def _run_to_exit(argv):
    try:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("%s started on an occupied address: still running after 20 s" % argv)


def _assert_refused_occupied(out, flag, addr):
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, "exit code %s, stderr %r" % (out.returncode, out.stderr)
    assert len(lines) == 1 and flag in lines[0] and addr in lines[0] and "in use" in lines[0], \
        out.stderr


def test_second_proxy_on_a_running_proxys_port_exits_2(ringmaster_bin, proxy, backend):
    out = _run_to_exit([ringmaster_bin, "proxy", "--listen", proxy.addr, "--target",
                        backend.addr, "--threads", "1"])
    _assert_refused_occupied(out, "--listen", proxy.addr)
    # The first one was not disturbed and still serves every request.
    for _ in range(10):
        assert get(proxy.port).status == 200
    assert proxy.alive()


@pytest.mark.parametrize("flag", ["--listen", "--admin"])
def test_port_held_by_another_programs_reuseport_listener_exits_2(ringmaster_bin, backend,
                                                                   flag):
    # The case SO_REUSEPORT alone would not catch: the other listener allows sharing too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen(8)
        taken = "127.0.0.1:%d" % other.getsockname()[1]
        addrs = {"--listen": "127.0.0.1:%d" % free_port(),
                 "--admin": "127.0.0.1:%d" % free_port()}
        addrs[flag] = taken
        out = _run_to_exit([ringmaster_bin, "proxy", "--listen", addrs["--listen"],
                            "--admin", addrs["--admin"], "--target", backend.addr,
                            "--threads", "1"])
    _assert_refused_occupied(out, flag, taken)


def _run(ringmaster_bin, *args):
    return subprocess.run([str(ringmaster_bin)] + list(args), capture_output=True, text=True,
                          timeout=20, stdin=subprocess.DEVNULL)


def _readme_flags(command):
    """The flags README's table for `command` documents (the first cell of each row)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### %s\n" % command, 1)[1].split("\n#", 1)[0]
    flags = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            flags.update(re.findall(r"`(--[a-z0-9-]+)", row.split(" | ")[0]))
    return flags


@pytest.mark.parametrize("command", ["proxy", "agent"])
def test_help_lists_every_flag_with_its_default_and_meaning(ringmaster_bin, command):
    out = _run(ringmaster_bin, command, "--help")
    assert out.returncode == 0 and out.stderr == "", out
    assert out.stdout.startswith("usage: ringmaster %s " % command), out.stdout
    rows = {}
    for line in out.stdout.splitlines():
        if line.startswith("  --"):
            m = re.fullmatch(r"  (--[a-z0-9-]+)( \S+)? +(\S.*) \(default: (.+)\)", line)
            assert m, "not 'flag [VALUE] meaning (default: D)': %r" % line
            rows[m.group(1)] = line
    # The same set as the README documents, and each one a flag the parser knows: an empty
    # value is a bad value (or a switch given one), never an unknown flag.
    assert set(rows) == _readme_flags(command)
    for flag in rows:
        bad = _run(ringmaster_bin, command, flag + "=")
        assert bad.returncode == 2 and bad.stderr.startswith("ringmaster: %s: " % flag), \
            "%s %s=: %r" % (command, flag, bad)
    # -h is the same, and help wins over anything else on the line.
    assert _run(ringmaster_bin, command, "-h").stdout == out.stdout
    assert _run(ringmaster_bin, command, "--no-such-flag", "--help").stdout == out.stdout
