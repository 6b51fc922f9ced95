"""Agent faults the pool once mishandled (issue 11, defects 2-4), with real
sockets against FakeAgents started by each test; every loop bounded in count
and in time.

* An agent that completes its HELLO, then closes or errs at the first NOTIFY
  (what an agent does when its handler raises): a connection that dies before
  its first ACK counts as a failed handshake, so the server backs off instead
  of getting one new connection per event; every event still fails fast with
  the connection's status.
* Many connections dying together (the agent killed and restarted on the same
  port): their failures count as one back-off step, so the returned agent is
  used again within 2 s.
* An AGENT-DISCONNECT while frames are in flight: every frame the connection
  held ends with its 256+N, never 255 ("no free slot") nor a timeout.
"""

from __future__ import annotations

import time

import gevent
import pytest

from spoe_sync.config import Timeouts
from spoe_sync.engine import AppletPool
from spoe_sync.testing import FakeAgent

from .poolkit import PAYLOAD, agent_config, assert_consistent, backend, settle, statuses

pytestmark = pytest.mark.timeout(60)


def _default_pool(address: str, **agent: object) -> AppletPool:
    """A pool with the engine's own back-off (not the tests' shorter one)."""
    agent.setdefault("timeouts", Timeouts(hello=0.5, idle=None, processing=5.0))
    return AppletPool(agent_config(**agent), backend(address))


def _run_events(pool: AppletPool, count: int, *, workers: int, budget: float) -> list:
    """``count`` events from ``workers`` greenlets, one after another in each,
    stopped after ``budget`` seconds; returns the outcomes."""
    outcomes: list = []
    end = time.monotonic() + budget
    next_sid = iter(range(1, count + 1))

    def worker() -> None:
        for sid in next_sid:
            if time.monotonic() > end:
                return
            outcomes.append(pool.process(sid, 1, PAYLOAD, time.monotonic() + 5.0))

    greenlets = [gevent.spawn(worker) for _ in range(workers)]
    gevent.joinall(greenlets, timeout=budget + 10)
    assert all(g.dead for g in greenlets), "a stream hung"
    for g in greenlets:
        if g.exception is not None:
            raise AssertionError(f"an exception escaped the pool: {g.exception!r}")
    return outcomes


def _back_to_back(pool: AppletPool, *, streams: int, seconds: float) -> list:
    """``streams`` greenlets sending frame after frame for ``seconds`` (at most
    2,000 frames each); returns every outcome."""
    outcomes: list = []
    stop = [False]

    def client(sid: int) -> None:
        frame_id = 0
        while not stop[0] and frame_id < 2000:
            frame_id += 1
            outcomes.append(pool.process(sid, frame_id, PAYLOAD, time.monotonic() + 1.0))

    clients = [gevent.spawn(client, sid) for sid in range(1, streams + 1)]
    gevent.sleep(seconds)
    stop[0] = True
    gevent.joinall(clients, timeout=5)
    assert all(g.dead for g in clients), "a stream hung"
    for g in clients:
        if g.exception is not None:
            raise AssertionError(f"an exception escaped the pool: {g.exception!r}")
    return outcomes


@pytest.mark.parametrize(("caps", "fault", "status"), [
    pytest.param("", "close", 256 + 1, id="sync-close"),
    pytest.param("", "unknown-frame-id", 256 + 12, id="sync-wrong-frame-id"),
    pytest.param("pipelining", "close", 256 + 1, id="pipelining-close"),
    pytest.param("pipelining", "disconnect", 256 + 42, id="pipelining-disconnect"),
])
def test_an_agent_failing_every_first_notify_gets_no_reconnect_storm(
        caps: str, fault: str, status: int) -> None:
    """Issue 11 defect 2: 3,000 events opened 3,000 connections in 2.5 s in
    sync mode (156 in pipelining).  Target: at most 60, every event failed
    fast with the connection's status."""
    with FakeAgent(capabilities=caps, fault=fault, disconnect_status=42) as agent:
        pool = _default_pool(agent.address)
        start = time.monotonic()
        outcomes = _run_events(pool, 3000, workers=20, budget=8.0)
        elapsed = time.monotonic() - start
        assert len(outcomes) >= 1000, (len(outcomes), elapsed)  # enough to have stormed
        assert statuses(outcomes) == {status: len(outcomes)}
        assert max(o.total_ms for o in outcomes) < 2000  # fast, not the 5 s timeout
        assert agent.connections <= max(60, len(outcomes) // 50), agent.connections
        settle(pool)
        assert_consistent(pool)
        pool.close(1)


@pytest.mark.parametrize("outage", [0.5, 1.5, 3.0])
def test_the_first_success_comes_soon_after_a_killed_agent_listens_again(outage: float) -> None:
    """Issue 11 defect 3: ~50 sync connections die together; their failed
    reconnections are one back-off step, not eight, so the returned agent is
    used again within 2 s of listening (it took 5-10 s)."""
    agent = FakeAgent(capabilities="").start()
    port = agent.port
    pool = _default_pool(agent.address)
    stop = [False]
    successes: list[float] = []

    def client(sid: int) -> None:
        frame_id = 0
        while not stop[0] and frame_id < 100_000:
            frame_id += 1
            outcome = pool.process(sid, frame_id, PAYLOAD, time.monotonic() + 1.0)
            if outcome.status == 0:
                successes.append(time.monotonic())
            gevent.sleep(0 if outcome.status == 0 else 0.02)

    clients = [gevent.spawn(client, sid) for sid in range(1, 51)]
    try:
        end = time.monotonic() + 5.0
        while pool.metrics().servers[0].ready < 40 and time.monotonic() < end:
            gevent.sleep(0.02)
        assert pool.metrics().servers[0].ready >= 40, pool.metrics()
        agent.stop()  # every connection dies at once; new ones are refused
        gevent.sleep(outage)
        agent = FakeAgent(capabilities="", port=port).start()
        back = time.monotonic()
        deadline = back + 6.0
        while not any(t > back for t in successes) and time.monotonic() < deadline:
            gevent.sleep(0.01)
        first = min((t for t in successes if t > back), default=None)
        assert first is not None, "no success within 6 s of the agent's return"
        assert first - back < 2.0, first - back
    finally:
        stop[0] = True
        gevent.joinall(clients, timeout=5)
        pool.close(1)
        agent.stop()
    assert all(g.dead and g.exception is None for g in clients)


@pytest.mark.parametrize("caps", [pytest.param("pipelining,async", id="async"),
                                  pytest.param("pipelining", id="pipelining")])
def test_every_frame_of_a_disconnected_connection_gets_its_status(caps: str) -> None:
    """Issue 11 defect 4: an AGENT-DISCONNECT while frames are in flight ended
    some with 255 ("no free slot": a stream picked the dying connection while
    it stopped its writer) and rarely left one to time out.  Each round: 60
    streams sending back to back, the first connection answers its 300th
    NOTIFY with DISCONNECT 42 right after the ACK of the 299th; every frame
    ends with 0 or 298."""
    rounds = 0
    end = time.monotonic() + 12.0
    while rounds < 6 and time.monotonic() < end:
        rounds += 1
        with FakeAgent(capabilities=caps, fault="disconnect", fault_after=300,
                       fault_connections=1, disconnect_status=42) as agent:
            pool = _default_pool(agent.address,
                                 timeouts=Timeouts(hello=0.5, idle=None, processing=1.0))
            outcomes = _back_to_back(pool, streams=60, seconds=0.5)
            counts = statuses(outcomes)
            odd = [(o.status, o.error) for o in outcomes if o.status not in (0, 298)]
            assert set(counts) <= {0, 256 + 42}, (rounds, counts, odd[:5])
            assert counts[256 + 42] >= 1, counts
            settle(pool)
            assert_consistent(pool)
            pool.close(1)
    assert rounds >= 2
