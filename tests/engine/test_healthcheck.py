"""SPOP health checks: ``option spop-check`` (inter/rise/fall marking servers up
and down) and :func:`spoe_sync.healthcheck` (docs/explanation/haproxy-behaviour.md §7.5,
SPOE.txt §3.2.3 "Successful HELLO healthcheck")."""

from __future__ import annotations

import time

import gevent
import pytest

import spoe_sync
from spoe_sync.config import Backend, Server
from spoe_sync.engine import AppletPool
from spoe_sync.engine.balance import ServerState
from spoe_sync.engine.healthcheck import HealthChecker
from spoe_sync.engine.models import HealthCheckResult
from spoe_sync.protocol import AgentDisconnect
from spoe_sync.testing import FakeAgent
from tests.kit import closed_address

from .poolkit import PAYLOAD, agent_config

pytestmark = pytest.mark.timeout(15)


def test_healthcheck_returns_what_the_agent_announced() -> None:
    with FakeAgent(capabilities="pipelining,fragmentation", max_frame_size=4096) as agent:
        result = spoe_sync.healthcheck(agent.address, timeout=1)
        assert result.ok and result.status == 0 and result.reason == "SPOA server is ok"
        assert (result.version, result.max_frame_size) == ("2.0", 4096)
        assert result.capabilities == ("pipelining", "fragmentation")
        hello = agent.hellos[0]
        assert hello.healthcheck is True and hello.engine_id is None
        assert (hello.capabilities, hello.max_frame_size) == ("", 16380)
        assert not agent.disconnects  # a check sends no DISCONNECT


@pytest.mark.parametrize(("script", "status", "reason"), [
    pytest.param(None, 8, "Layer7 invalid response: unsupported version", id="bad-version"),
    pytest.param(AgentDisconnect.make(13, "busy"), 13,
                 "Layer7 invalid response: resource allocation error", id="agent-disconnect"),
    pytest.param("close", 1, "Layer7 invalid response: connection closed by the agent", id="close"),
    pytest.param("stall", 2, "Layer7 timeout", id="stall"),
])
def test_healthcheck_failures(script: object, status: int, reason: str) -> None:
    with FakeAgent(hello=script, version="3.0") as agent:
        start = time.monotonic()
        result = spoe_sync.healthcheck(agent.address, timeout=0.3)
        assert (result.ok, result.status, result.reason) == (False, status, reason)
        assert time.monotonic() - start < 1.0


def test_healthcheck_refused() -> None:
    result = spoe_sync.healthcheck(closed_address(), timeout=0.5)
    assert not result.ok and result.status == -1
    assert result.reason.startswith("Layer4 connection problem")


def test_healthcheck_rejects_a_bad_address() -> None:
    with pytest.raises(ValueError, match="missing port in 'no-port-here'"):
        spoe_sync.healthcheck("no-port-here")


def result(ok: bool) -> HealthCheckResult:
    return HealthCheckResult("x", ok, 0 if ok else 8, "r")


def test_rise_and_fall_counting() -> None:
    server = ServerState(Server("127.0.0.1:1", rise=2, fall=3))
    for _ in range(2):
        HealthChecker.record(server, result(False))
    assert server.up
    HealthChecker.record(server, result(False))
    assert not server.up
    HealthChecker.record(server, result(True))
    assert not server.up
    server.record_failure(257, "closed", 0.0)
    HealthChecker.record(server, result(True))
    assert server.up and server.backoff.failures == 0


def test_spop_check_marks_a_server_down_then_up_again() -> None:
    address = closed_address()
    port = int(address.rsplit(":", 1)[1])
    server = Server(address, "srv1", check=True, inter=0.05, rise=2, fall=2)
    backend = Backend("agents", (server,), spop_check=True, timeout_connect=0.2)
    pool = AppletPool(agent_config(), backend, backoff=(0.05, 0.1))
    assert pool.process(1, 1, PAYLOAD, time.monotonic() + 1).status == 2
    deadline = time.monotonic() + 2
    while pool.metrics().servers[0].up and time.monotonic() < deadline:
        gevent.sleep(0.02)
    assert not pool.metrics().servers[0].up
    assert pool.process(2, 1, PAYLOAD, time.monotonic() + 1).status == 2
    with FakeAgent(port=port):
        deadline = time.monotonic() + 2
        while not pool.metrics().servers[0].up and time.monotonic() < deadline:
            gevent.sleep(0.02)
        assert pool.metrics().servers[0].up
        assert pool.process(3, 1, PAYLOAD, time.monotonic() + 1).status == 0
        pool.close(1)
