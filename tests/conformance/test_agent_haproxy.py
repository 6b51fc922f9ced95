"""The example IP-reputation agent (spoe_sync.agent) with HAProxy 2.6 as the
engine: SPOE.txt §2.5 (the ip-reputation example) with the packaged
spoe-iprep.conf, in pipelining and async modes (§3.2.1), on an HTTP frontend
(on-frontend-http-request, the variables read back with ``http-request return``)
and on TCP frontends (scope ip-reputation-tcp, on-client-session, ``tcp-request
content reject``); plus ``haproxy -c`` on the packaged file and HAProxy's own
``option spop-check`` marking the agent up.

The agent runs in this process on gevent; HTTP requests go through the hub's
thread pool so that the blocking client does not stop the agent.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import gevent
import pytest

from spoe_sync.agent import AgentServer, Request
from spoe_sync.examples.iprep import CONFIG_PATH, build_agent, reputation
from spoe_sync.protocol import Message
from tests.kit import free_port

from .harness import LOOPBACK, HTTPResponse, haproxy_check, http_request, run_haproxy

SPOE_CONF = Path(CONFIG_PATH).read_text()

HAPROXY_CFG = """\
global
    stats socket {admin} level admin

defaults
    timeout connect 5s
    timeout client  10s
    timeout server  10s

frontend www
    mode http
    bind {loopback}:{http}
    tcp-request inspect-delay 2s
    tcp-request content set-src req.hdr(x-test-src) if {{ req.hdr(x-test-src) -m found }}
    filter spoe engine ip-reputation config spoe-iprep.conf
    http-request deny deny_status 403 if {{ var(sess.iprep.ip_score) -m int lt 20 }}
    http-request return status 200 content-type text/plain lf-string "score=%[var(sess.iprep.ip_score)] reason=%[var(txn.iprep.reason)] error=%[var(txn.iprep.error)]"

frontend tcp-listed
    mode tcp
    bind {loopback}:{tcp_listed}
    tcp-request connection set-src ipv4(192.0.2.9)
    filter spoe engine ip-reputation-tcp config spoe-iprep.conf
    tcp-request inspect-delay 2s
    tcp-request content reject if {{ var(sess.iprep.ip_score) -m int lt 20 }}
    default_backend www-loop

frontend tcp-plain
    mode tcp
    bind {loopback}:{tcp_plain}
    filter spoe engine ip-reputation-tcp config spoe-iprep.conf
    tcp-request inspect-delay 2s
    tcp-request content reject if {{ var(sess.iprep.ip_score) -m int lt 20 }}
    default_backend www-loop

backend www-loop
    mode tcp
    server www {loopback}:{http}

backend iprep-servers
    mode tcp
    balance roundrobin
    option spop-check
    timeout connect 5s
    timeout server  3m
    server iprep1 {loopback}:{agent} check inter 200ms
"""


def server_check_status(admin_sock: Path) -> str:
    """``status check_status`` of iprep-servers/iprep1, from HAProxy's ``show stat``."""
    def run() -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(admin_sock))
            s.sendall(b"show stat\n")
            data = b""
            for _ in range(1000):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        lines = data.decode().splitlines()
        names = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(names, line.split(",")))
            if row.get("pxname") == "iprep-servers" and row.get("svname") == "iprep1":
                return f"{row['status']} {row['check_status']}"
        return "missing"
    return str(in_thread(run))


def in_thread(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call in a real thread while the hub serves the agent."""
    return gevent.get_hub().threadpool.spawn(func, *args, **kwargs).get(timeout=15)


def get(port: int, src: str | None = None) -> HTTPResponse:
    headers = [("Host", "iprep.test")] + ([("X-Test-Src", src)] if src else [])
    return in_thread(http_request, port, headers=headers)


def tcp_exchange(port: int) -> bytes:
    """An HTTP request through a TCP frontend; b"" when HAProxy rejected it."""
    def run() -> bytes:
        with socket.create_connection((LOOPBACK, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            for _ in range(100):
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
            return data
    return in_thread(run)


@pytest.fixture(params=[pytest.param(True, id="async"), pytest.param(False, id="pipelining")])
def agent(request: pytest.FixtureRequest) -> Iterator[tuple[AgentServer, list[str]]]:
    """The example agent; the list collects the mode of every NOTIFY it served."""
    iprep = build_agent(async_=request.param)
    modes: list[str] = []
    handler = iprep.handlers["get-ip-reputation"]

    def recording(message: Message, req: Request) -> Any:
        modes.append(req.mode)
        return handler(message, req)

    iprep.handlers["get-ip-reputation"] = recording
    server = iprep.start()
    try:
        yield server, modes
    finally:
        server.stop(timeout=1.0)


def test_haproxy_accepts_the_packaged_config(haproxy_bin: str, tmp_path: Path) -> None:
    cfg = HAPROXY_CFG.format(loopback=LOOPBACK, admin=tmp_path / "admin.sock", http=free_port(),
                             tcp_listed=free_port(), tcp_plain=free_port(), agent=free_port())
    code, output = haproxy_check(haproxy_bin, cfg, tmp_path, {"spoe-iprep.conf": SPOE_CONF})
    assert code == 0, output
    assert "[WARNING]" not in output and "[ALERT]" not in output, output


@pytest.fixture
def admin() -> Iterator[Path]:
    """A path for HAProxy's stats socket: a unix socket path must stay under
    108 bytes, so it gets a short directory of its own."""
    directory = tempfile.mkdtemp(prefix="spoe-")
    try:
        yield Path(directory) / "admin.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_haproxy_reads_the_agents_variables(haproxy_bin: str, tmp_path: Path, admin: Path,
                                            agent: tuple[AgentServer, list[str]]) -> None:
    server, modes = agent
    ports = {"http": free_port(), "tcp_listed": free_port(), "tcp_plain": free_port()}
    cfg = HAPROXY_CFG.format(loopback=LOOPBACK, admin=admin, agent=server.port, **ports)
    with run_haproxy(haproxy_bin, cfg, tmp_path, {"spoe-iprep.conf": SPOE_CONF},
                     ready_port=ports["http"]):
        for src in (None, "203.0.113.50", "2a01::9"):
            response = get(ports["http"], src)
            score, reason = reputation(ip_address(src or "127.0.0.1"))
            assert response.status == 200, response
            assert response.body.decode() == f"score={score} reason={reason} error="
        # option spop-check: HAProxy's own health check finds the agent up.
        deadline = time.monotonic() + 5
        while (state := server_check_status(admin)) != "UP L7OK":
            assert time.monotonic() < deadline, state
            gevent.sleep(0.05)
        assert get(ports["http"], "192.0.2.33").status == 403
        assert get(ports["http"], "2001:db8::1").status == 403
        assert b"score=100" in tcp_exchange(ports["tcp_plain"])
        assert tcp_exchange(ports["tcp_listed"]) == b""
        # Several streams at once share HAProxy's agent connections.
        jobs = [gevent.spawn(get, ports["http"], f"203.0.113.{i}") for i in range(1, 21)]
        gevent.joinall(jobs, timeout=20, raise_error=True)
        assert all(job.value.status == 200 for job in jobs)
    expected = "async" if server.agent.capabilities == ("pipelining", "async") else "pipelining"
    assert modes and set(modes) == {expected}
    assert server.errors == 0
