"""``gunicorn -k spoe_sync.wsgi.gunicorn.GeventWorker`` (issue 13, "Fidelity outside
SpoeWSGIHandler"): under gunicorn in a subprocess, the agent gets the same NOTIFY arguments as
under SpoeWSGIHandler for nasty requests (duplicated and odd-case headers, ``%2F`` in the path,
a ``?`` with nothing after it), and what HAProxy refuses gets HAProxy's answer with no event."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import gevent
import pytest
from gevent import socket

from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import listener
from spoe_sync.wsgi.validity import error_response
from tests.kit import read_until_eof

from .gunicorn_fidelity_app import make
from .support import serve

WORKER = "spoe_sync.wsgi.gunicorn.GeventWorker"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NASTY = [
    b"GET /a%2Fb/c?x=1&a=2&a=3 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nX-B: b\r\n"
    b"X-a: 3, 4\r\nConnection: close\r\n\r\n",
    b"GET /p? HTTP/1.1\r\nhost: h\r\nX-A: only\r\nConnection: close\r\n\r\n",
    b"POST /%2e%2E/x;p=1?a HTTP/1.1\r\nHOST: h\r\nContent-Length: 3\r\nZ-Last: z\r\n"
    b"Connection: close\r\n\r\nabc",
    b"GET /q?a=%41&a= HTTP/1.0\r\nX-A: \r\n\r\n",
]
REFUSED = [  # HAProxy's answer, no SPOE event: validity.check on gunicorn's parse
    (b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.0\r\nContent-Length: 1\r\n\r\na", 413),  # buffer_body or not
]


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        return read_until_eof(sock, timeout=10)


def _args(agent: FakeAgent, since: int) -> list[dict]:
    return [{k: v for k, v in m.args if k != "dst_port"}
            for n in agent.notifies[since:] for m in n.messages]


def _wait_ready(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            gevent.sleep(0.1)
    raise AssertionError("gunicorn did not listen in time")


@pytest.mark.timeout(90)
def test_the_gunicorn_worker_sends_what_spoe_wsgi_handler_sends():
    with FakeAgent() as agent:
        mw = make(agent.address)
        try:
            with serve(mw) as port:
                ours = [_send(port, raw) for raw in NASTY]
                refused_ours = [_send(port, raw) for raw, _ in REFUSED]
        finally:
            mw.close(timeout=1)
        expected = _args(agent, 0)
        assert len(expected) == len(NASTY)  # every REFUSED row is refused before any event
        before = len(agent.notifies)

        sock = listener(("127.0.0.1", 0))
        gport, fd = sock.getsockname()[1], sock.fileno()
        cmd = [sys.executable, "-m", "gunicorn", "-k", WORKER,
               "-w", "1", "--bind", f"fd://{fd}", "--graceful-timeout", "2",
               "--log-level", "warning", "tests.wsgi.gunicorn_fidelity_app:application"]
        env = {**os.environ, "SPOE_TEST_AGENT": agent.address, "PYTHONPATH": ROOT}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, pass_fds=(fd,),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_ready(gport, proc, time.monotonic() + 30)
            theirs = [_send(gport, raw) for raw in NASTY]
            refused = [_send(gport, raw) for raw, _ in REFUSED]
        finally:
            proc.terminate()
            try:
                out = proc.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                out = proc.communicate(timeout=5)[0]
            sock.close()
        assert b"Traceback" not in out, out.decode(errors="replace")
        assert all(a.endswith(b"ok") for a in ours + theirs)
        assert _args(agent, before) == expected
        for (raw, status), answer, answer_ours in zip(REFUSED, refused, refused_ours):
            if status == 200:
                assert answer.endswith(b"ok") and answer_ours.endswith(b"ok")
            else:
                assert answer == answer_ours == error_response(status), raw
