"""An unreachable agent is never silent (issue 12): the library warns once
when a server becomes unreachable and once when it recovers, rate-limited, on
its own loguru logger, whatever the agent's SPOE ``log`` lines say."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from loguru import logger

from spoe_sync.engine.log import ServerNotices
from spoe_sync.testing import FakeAgent
from tests.kit import wait_until

from .poolkit import burst, make_pool, statuses

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def records() -> Iterator[list[tuple[str, str, dict]]]:
    logger.enable("spoe_sync")
    lines: list[tuple[str, str, dict]] = []
    sink = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"],
                                              dict(m.record["extra"]))), level="DEBUG")
    try:
        yield lines
    finally:
        logger.remove(sink)
        logger.disable("spoe_sync")


def _reachability(records: list[tuple[str, str, dict]]) -> list[str]:
    return [m for _, m, _ in records if "unreachable" in m or "answers again" in m]


def test_an_unreachable_agent_is_reported_once_and_its_return_once(records) -> None:
    with socket.socket() as s:  # a port nobody listens on, for now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = make_pool(f"127.0.0.1:{port}")
    try:
        for round_ in range(5):  # several bursts, several refused attempts
            assert statuses(burst(pool, 20, first_sid=round_ * 100)) == {2: 20}
            time.sleep(0.05)
        lines = _reachability(records)
        assert len(lines) == 1, lines
        assert "test-agent" in lines[0] and f"127.0.0.1:{port}" in lines[0]
        assert "unreachable" in lines[0] and "connect" in lines[0]
        level, _, extra = next(r for r in records if "unreachable" in r[1])
        assert level == "WARNING" and extra == {"spoe_agent": "test-agent", "spoe_server": "srv1"}
        with FakeAgent(port=port):
            assert wait_until(lambda: burst(pool, 1, first_sid=5000)[0].status == 0, timeout=5)
            assert statuses(burst(pool, 20, first_sid=6000)) == {0: 20}
        lines = _reachability(records)
        assert len(lines) == 2 and "answers again" in lines[1], lines
    finally:
        pool.close(1)


def test_a_flapping_server_is_reported_at_most_once_per_interval(records) -> None:
    now = [100.0]
    notices = ServerNotices("a", interval=10.0, clock=lambda: now[0])
    assert notices.report("unreachable", "s1", "h:1", "refused")
    assert not notices.report("unreachable", "s1", "h:1", "refused")  # no change
    assert notices.report("recovered", "s1", "h:1", "")
    now[0] += 1
    assert not notices.report("unreachable", "s1", "h:1", "refused")  # too soon: counted
    assert not notices.report("recovered", "s1", "h:1", "")  # its outage went unreported
    assert notices.report("unreachable", "s2", "h:2", "refused")  # per server
    now[0] += 10
    assert notices.report("unreachable", "s1", "h:1", "refused")
    lines = _reachability(records)
    assert len(lines) == 4
    assert "1 more outage since the last report" in lines[-1]
