"""SpoeMiddleware under ``gunicorn -k gevent`` in a subprocess (issue 7: "works under gunicorn
-k gevent, with and without --preload: the engine starts lazily per worker process"), on a
TCP_NODELAY loopback listener passed as a file descriptor, with the example-like agent."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import gevent
import pytest

from spoe_sync.wsgi import listener

from .support import Client, parse_echo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _client_sessions(agent) -> int:
    return sum(1 for n in agent.notifies for m in n.messages if m.name == "check-client")


def _wait_ready(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            with Client(port, timeout=2) as c:
                if c.request("GET", "/ready").status in (200, 403):
                    return
        except OSError:
            gevent.sleep(0.1)
    raise AssertionError("gunicorn did not answer in time")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("preload", [pytest.param(False, id="no-preload"),
                                     pytest.param(True, id="preload")])
def test_gunicorn_gevent_workers(agent, preload):
    sock = listener(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fd = sock.fileno()
    cmd = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2", "--bind", f"fd://{fd}",
           "--graceful-timeout", "2", "--log-level", "warning"]
    if preload:
        cmd.append("--preload")
    cmd.append("tests.wsgi.gunicorn_app:application")
    env = {**os.environ, "SPOE_TEST_AGENT": agent.address, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, pass_fds=(fd,), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        _wait_ready(port, proc, time.monotonic() + 30)
        pids = set()
        before = _client_sessions(agent)
        for n in range(12):
            with Client(port) as c:
                ok = c.request("GET", f"/{n}", {"x-action": f"ok{n}"})
                denied = c.request("GET", "/", {"x-action": "deny"})
                again = c.request("GET", "/")
            seen = parse_echo(ok.body)
            assert ok.status == 200 and seen["txn.test.action"] == f"ok{n}"
            assert seen["sess.test.ip_score"] == "10"
            assert ok.header("x-action") == f"ok{n}"
            assert denied.status == 403 and denied.header("x-action") == "deny"
            assert again.status == 200
            # the engines were built in the worker that serves, never inherited from the master
            assert ok.header("X-Pid") == ok.header("X-Runtime-Pid")
            pids.add(ok.header("X-Pid"))
        assert str(proc.pid) not in pids
        # one on-client-session per request (per HTTP stream, as HAProxy 2.6 fires it)
        assert _client_sessions(agent) - before == 12 * 3
        assert agent.frames >= 12 * 3
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate(timeout=5)[0]
        sock.close()
    assert b"Traceback" not in out, out.decode(errors="replace")
