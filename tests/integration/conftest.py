"""Fixtures for ringmaster's integration tests (see harness.py for the pieces, tests/kit for
what the tests share with perf/ and scripts/demo).

    backend          one backend.py process named "backend-1"
    start_backend    factory: start_backend("backend-2") -> Backend
    proxy            ringmaster in front of `backend` (--threads 2, or RINGMASTER_TEST_THREADS)
    start_proxy      factory: start_proxy([backend, "127.0.0.1:1234"], threads=1,
                              header_timeout_ms=1000) -> Proxy
    dead_port        a ReservedPort: bound, never listening (connects are refused)

Every process is stopped in teardown. A proxy that crashed during the test, or whose
output holds a sanitizer report, fails the test. A failed test's report includes each
process's output (the proxy's stderr).
"""

import faulthandler
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test kit: tests/kit
import harness  # noqa: E402

# Per-test watchdog: a hung test dumps every thread's stack and ends the run (children die
# with it, see harness._die_with_parent) instead of waiting for ctest's timeout.
TEST_TIMEOUT_S = float(os.environ.get("RINGMASTER_TEST_TIMEOUT_S", "300"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for proc in getattr(item, "_ringmaster_processes", []):
            tail = proc.output_tail(120)
            if tail:
                rep.sections.append(("output of %s (pid %d, %s)"
                                     % (proc.name, proc.pid, " ".join(proc.argv)), tail))


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def ringmaster_bin():
    path = harness.find_ringmaster_bin()
    if not path.exists() or not os.access(path, os.X_OK):
        pytest.fail("ringmaster binary not found at %s: set RINGMASTER_BIN (ctest does) or "
                    "build it with scripts/build. A missing binary is a broken build, so "
                    "this fails rather than skips." % path, pytrace=False)
    return path


@pytest.fixture(scope="session")
def sanitized(ringmaster_bin):
    """True under ASan/TSan builds (memory figures are not comparable there)."""
    return harness.binary_is_sanitized(ringmaster_bin)


_track = harness.track


@pytest.fixture
def start_backend(tmp_path, request):
    started = []

    def start(name=None, port=0):
        name = name or "backend-%d" % (len(started) + 1)
        b = harness.Backend(tmp_path, name, port)
        started.append(b)
        _track(request, b.process)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def backend(start_backend):
    return start_backend("backend-1")


@pytest.fixture
def start_proxy(tmp_path, ringmaster_bin, request):
    def make(targets, threads=None, name=None, **flags):
        return harness.Proxy(ringmaster_bin, tmp_path, targets, threads=threads, name=name, **flags)

    yield from harness.launcher(request, "proxy", make)


@pytest.fixture
def proxy(start_proxy, backend):
    return start_proxy([backend])


@pytest.fixture
def dead_port():
    reserved = harness.ReservedPort()
    yield reserved
    reserved.close()
