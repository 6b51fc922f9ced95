"""Under gunicorn -k gevent (a subprocess, the example-like agent): a worker that stops closes
its engines, so the agent sees HAPROXY-DISCONNECT (by itself at exit, or through the documented
``worker_exit`` hook); with ``PROMETHEUS_MULTIPROC_DIR`` set, every scrape of ``-w 2`` workers
reads the same aggregated counters, whichever worker answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import gevent
import pytest
from gevent import subprocess as gsubprocess

from spoe_sync.wsgi import listener
from tests.kit import wait_until

from .support import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Gunicorn:
    def __init__(self, agent, workers: int, extra: list[str] = (), env: dict | None = None):
        self.sock = listener(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        cmd = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers), "--bind",
               f"fd://{fd}", "--graceful-timeout", "5", "--log-level", "warning", *extra,
               "tests.wsgi.gunicorn_app:application"]
        full_env = {**os.environ, "SPOE_TEST_AGENT": agent.address, "PYTHONPATH": ROOT,
                    **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, pass_fds=(fd,),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.requests = 0  # requests that reached the app (answered)

    def get(self, path: str):
        with Client(self.port, timeout=5) as c:
            r = c.request("GET", path)
        self.requests += 1
        return r

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.proc.returncode}")
            try:
                self.get("/ready")
                return
            except OSError:
                gevent.sleep(0.1)
        raise AssertionError("gunicorn did not answer in time")

    def stop(self) -> bytes:
        self.proc.terminate()  # SIGTERM: graceful stop of the master and its workers
        try:
            out = self.proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = self.proc.communicate(timeout=5)[0]
        self.sock.close()
        return out


def _wait_disconnects(agent, n: int, timeout: float = 10) -> int:
    wait_until(lambda: len(agent.disconnects) >= n, timeout)
    return len(agent.disconnects)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("hook", [pytest.param(False, id="atexit"),
                                  pytest.param(True, id="worker_exit-hook")])
def test_a_stopping_worker_sends_haproxy_disconnect(agent, tmp_path, hook):
    extra = []
    if hook:
        conf = tmp_path / "gunicorn.conf.py"
        conf.write_text("from spoe_sync.wsgi import child_exit, worker_exit"
                        "  # noqa: F401\n")
        extra = ["-c", str(conf)]
    server = _Gunicorn(agent, 1, extra)
    try:
        server.wait_ready()
        for n in range(3):
            assert server.get(f"/{n}").status == 200
        assert agent.disconnects == []
    finally:
        out = server.stop()
    # before: the worker's agent connections were just closed, without HAPROXY-DISCONNECT
    assert _wait_disconnects(agent, 1) >= 1
    assert all(d.status_code == 0 for d in agent.disconnects), agent.disconnects
    assert b"Traceback" not in out, out.decode(errors="replace")


def _streams(body: bytes) -> int:
    found = re.search(rb'^spoe_streams_total\{agent="test-agent",engine="test"\} (\d+)\.0$',
                      body, re.M)
    assert found, body.decode(errors="replace")[:2000]
    return int(found.group(1))


@pytest.mark.timeout(120)
def test_multiprocess_scrapes_aggregate_every_worker(agent, tmp_path):
    mpdir = tmp_path / "prom"
    mpdir.mkdir()
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("from spoe_sync.wsgi import child_exit, worker_exit"
                    "  # noqa: F401\n")
    server = _Gunicorn(agent, 2, ["-c", str(conf)], {"PROMETHEUS_MULTIPROC_DIR": str(mpdir)})
    try:
        server.wait_ready()
        workers = set()
        deadline = time.monotonic() + 40
        for _ in range(400):  # new connections until both workers have served (bounded)
            workers.add(server.get("/x").header("X-Worker"))
            if len(workers) == 2 or time.monotonic() > deadline:
                break
            gevent.sleep(0.02)  # lets the other worker's accept loop win one
        assert len(workers) == 2, workers
        scrapes = []
        for _ in range(8):
            r = server.get("/spoe-stats")
            assert r.status == 200
            scrapes.append((r.header("X-Worker"), _streams(r.body), server.requests))
    finally:
        out = server.stop()
    # one stream per request that reached a worker, the scrape itself included: every scrape
    # counts all of them, whichever worker answered (before: that worker's share only)
    assert [count for _, count, _ in scrapes] == [sent for _, _, sent in scrapes], scrapes
    assert b"Traceback" not in out, out.decode(errors="replace")


def test_multiprocess_mode_holds_when_the_variable_comes_after_the_import(agent, tmp_path):
    # prometheus-client decides where values live at its import; an application that sets
    # PROMETHEUS_MULTIPROC_DIR after importing spoe_sync.wsgi (which imports it) got an empty
    # scrape and no per-process files.
    script = """
import os, sys
import spoe_sync.wsgi
from spoe_sync.wsgi import SpoeMiddleware
from werkzeug.test import Client
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
from tests.wsgi.support import CONF
mw = SpoeMiddleware(app, CONF, "test", {"agents": [sys.argv[2]]}, stats_path="/spoe-stats")
client = Client(mw)
for _ in range(3):
    client.get("/")
print(client.get("/spoe-stats", environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_data(as_text=True))
mw.close()
"""
    # gevent's subprocess: the agent answers from this process's hub meanwhile
    done = gsubprocess.run([sys.executable, "-c", script, str(tmp_path), agent.address],
                           capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr
    assert re.search(r'^spoe_streams_total\{[^}]*\} [1-9]', done.stdout, re.M), done.stdout
    assert list(tmp_path.glob("*.db")), "no per-process file was written"
