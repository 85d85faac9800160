"""perf/compare's physical floors (perf/floor) answer correctly: the fixed-200 responder
answers every request head, pipelined or split across packets, with its exact bytes; the
relay carries bytes both ways unchanged, passes EOF on as a half-close, and gives back its
descriptors once the clients go. Their figures are only worth quoting if this holds."""

import hashlib
import os
import socket
import threading
from pathlib import Path

import pytest

from harness import LOOPBACK, ManagedProcess, free_port, port_accepts, wait_until

MIB = 1 << 20


@pytest.fixture(scope="module")
def floor_dir(ringmaster_bin):
    d = Path(ringmaster_bin).parents[1] / "perf" / "floor"
    for name in ("floor_relay", "floor_fixed200"):
        if not os.access(d / name, os.X_OK):
            pytest.fail("%s not built at %s (it is part of the build: perf/floor)" % (name, d), pytrace=False)
    return d


def start_floor(tmp_path, binary, *flags):
    port = free_port()
    p = ManagedProcess([binary, "--listen", "%s:%d" % (LOOPBACK, port)] + list(flags),
                       tmp_path / ("%s-%d.log" % (Path(binary).name, port)))
    wait_until(lambda: port_accepts(port) or not p.alive(), 10, "%s to listen" % binary)
    assert p.alive(), p.output()
    return p, port


def response_bytes(body_bytes):
    body = bytes(ord("a") + i % 26 for i in range(body_bytes))
    return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n" % body_bytes) + body


def read_exactly(sock, count, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while len(data) < count:
        chunk = sock.recv(min(1 << 20, count - len(data)))
        assert chunk, "closed after %d of %d bytes" % (len(data), count)
        data += chunk
    return data


def read_to_eof(sock, limit, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while len(data) <= limit:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("more than %d bytes" % limit)


def open_descriptors(pid):
    """The process's open sockets (its listener and connections). Other descriptors are left
    out: a sanitizer runtime opens and closes files of its own at moments of its choosing, so
    a count of everything taken once at start can read 2 too many (seen under ASan)."""
    fd_dir = "/proc/%d/fd" % pid
    count = 0
    for name in os.listdir(fd_dir):
        try:
            count += os.readlink(os.path.join(fd_dir, name)).startswith("socket:")
        except FileNotFoundError:
            pass  # closed between the listing and the read
    return count


def idle_sockets(pid):
    """Waits until the floor holds only its listener, and returns that count (1). The
    readiness probe's connection (and, for the relay, the upstream connection made for it)
    may still be closing right after start: a count taken then reads 3."""
    wait_until(lambda: open_descriptors(pid) == 1, 10, "the floor to hold only its listener")
    return 1


def test_fixed200_answers_every_head_pipelined_and_split(tmp_path, floor_dir):
    p, port = start_floor(tmp_path, floor_dir / "floor_fixed200", "--body-bytes", "44")
    want = response_bytes(44)
    head = b"GET / HTTP/1.1\r\nHost: floor\r\n\r\n"
    with socket.create_connection((LOOPBACK, port)) as s:
        s.sendall(head)
        assert read_exactly(s, len(want)) == want
        # Three pipelined heads, the third split mid-terminator across two sends.
        s.sendall(head * 2 + head[:-2])
        assert read_exactly(s, 2 * len(want)) == want * 2
        s.sendall(head[-2:])
        assert read_exactly(s, len(want)) == want
        # A half-close after a last request still gets its answer, then EOF.
        s.sendall(head)
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s, len(want)) == want
    p.stop()


def test_fixed200_sends_a_large_body_whole(tmp_path, floor_dir):
    p, port = start_floor(tmp_path, floor_dir / "floor_fixed200", "--body-bytes", str(MIB))
    want = response_bytes(MIB)
    with socket.create_connection((LOOPBACK, port)) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: floor\r\n\r\nGET /b HTTP/1.1\r\nHost: floor\r\n\r\n")
        got = read_exactly(s, 2 * len(want))
    assert hashlib.sha256(got).digest() == hashlib.sha256(want * 2).digest()
    p.stop()


class EchoUntilEof:
    """An upstream that reads everything until EOF, then sends it back and closes."""

    def __init__(self):
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            conn.settimeout(10)
            data = b""
            while len(data) <= 8 * MIB:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            conn.sendall(data)

    def close(self):
        self.listener.close()


def test_relay_carries_bytes_both_ways_and_passes_eof_on(tmp_path, floor_dir):
    upstream = EchoUntilEof()
    p, port = start_floor(tmp_path, floor_dir / "floor_relay", "--upstream", "%s:%d" % (LOOPBACK, upstream.port))
    idle_descriptors = idle_sockets(p.pid)
    payload = os.urandom(3 * MIB + 17)  # many receives, sends that may be partial
    clients = []
    try:
        for _ in range(4):
            s = socket.create_connection((LOOPBACK, port))
            clients.append(s)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)  # the upstream answers only once it sees EOF
        for s in clients:
            got = read_to_eof(s, len(payload))
            assert len(got) == len(payload) and got == payload
    finally:
        for s in clients:
            s.close()
        upstream.close()
    # Both sides ended: the relay closed both descriptors of every pair.
    wait_until(lambda: open_descriptors(p.pid) == idle_descriptors, 10,
               "the relay to close its pairs (%d sockets idle)" % idle_descriptors)
    p.stop()


def test_relay_in_front_of_fixed200_keeps_pipelined_requests(tmp_path, floor_dir):
    fixed, fixed_port = start_floor(tmp_path, floor_dir / "floor_fixed200", "--body-bytes", "10")
    relay, port = start_floor(tmp_path, floor_dir / "floor_relay", "--upstream", "%s:%d" % (LOOPBACK, fixed_port))
    idle_descriptors = idle_sockets(relay.pid)
    want = response_bytes(10)
    with socket.create_connection((LOOPBACK, port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: floor\r\n\r\n" * 5)
        assert read_exactly(s, 5 * len(want)) == want * 5
    # Clients that go away without reading their answers: the pairs still close.
    for _ in range(3):
        with socket.create_connection((LOOPBACK, port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: floor\r\n\r\n" * 100)
    wait_until(lambda: open_descriptors(relay.pid) == idle_descriptors, 10, "the relay to close its pairs")
    with socket.create_connection((LOOPBACK, port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: floor\r\n\r\n")
        assert read_exactly(s, len(want)) == want
    relay.stop()
    fixed.stop()


@pytest.mark.parametrize("binary,flags", [
    ("floor_fixed200", ["--body-bytes", "many"]),
    ("floor_fixed200", ["--bogus", "1"]),
    ("floor_relay", ["--upstream", "nowhere"]),
    ("floor_relay", []),
])
def test_floors_reject_bad_flags_with_exit_2(tmp_path, floor_dir, binary, flags):
    p = ManagedProcess([floor_dir / binary, "--listen", "%s:%d" % (LOOPBACK, free_port())] + flags,
                       tmp_path / "bad.log")
    assert p.wait(10) == 2
    assert len(p.output().strip().splitlines()) == 1, p.output()
