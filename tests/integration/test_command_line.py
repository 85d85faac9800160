"""Bad command lines exit 2 with a one-line reason on stderr."""

import subprocess

import pytest

from harness import ReservedPort, free_port


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
