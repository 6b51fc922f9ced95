"""Async mode, a connection lost with frames waiting (docs/explanation/haproxy-behaviour.md
§3.6; issue 5 points 3 and 5): another connection may still bring their ACK, so
they wait a short grace, then end with the lost connection's 256+N, never with
a generic processing timeout (HAProxy 2.6 ends them with st=1)."""

from __future__ import annotations

import time

import gevent
import pytest

from spoe_sync.config import Timeouts
from spoe_sync.engine.pool import AppletPool
from spoe_sync.engine.waiting import ORPHAN_GRACE
from spoe_sync.testing import FakeAgent

from .poolkit import (
    PAYLOAD,
    agent_config,
    assert_consistent,
    backend,
    burst,
    make_pool,
    settle,
    statuses,
)

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(("caps", "lost_status"), [
    pytest.param("pipelining,async", 256 + 1, id="async"),
    pytest.param("pipelining", 256 + 1, id="pipelining"),
])
def test_frames_of_a_lost_connection_end_fast_with_its_status(caps: str, lost_status: int) -> None:
    """Two warm connections, a burst of 40 streams, the first connection closes
    on its 25th NOTIFY: its frames end with 257 well before the 3 s processing
    timeout, in async mode as in pipelining; the others succeed."""
    with FakeAgent(capabilities=caps, fault="close", fault_after=25, fault_connections=1,
                   delays=0.02) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.5, idle=None, processing=3.0))
        assert statuses(burst(pool, 40, timeout=3.0)) == {0: 40}  # warm: 20 on each
        assert agent.connections == 2
        start = time.monotonic()
        outcomes = burst(pool, 40, timeout=3.0, first_sid=100)
        elapsed = time.monotonic() - start
        counts = statuses(outcomes)
        assert set(counts) <= {0, lost_status}, counts
        assert counts[lost_status] >= 1, counts
        assert 1 not in counts
        slowest = max(o.total_ms for o in outcomes if o.status == lost_status)
        assert slowest < (ORPHAN_GRACE + 0.3) * 1000, slowest
        assert elapsed < 1.5, elapsed
        assert all("closed" in (o.error or "") for o in outcomes if o.status == lost_status)
        settle(pool)
        assert_consistent(pool)
        pool.close(1)


def test_an_ack_brought_by_another_connection_during_the_grace_is_applied() -> None:
    """An agent that answers on another connection (``ack_elsewhere``, 0.1 s
    late): the first connection closes on its 4th NOTIFY while the ACK of its
    3rd is still due; that ACK comes on the second connection during the grace
    and is applied (0), the 4th frame ends with 257."""
    with FakeAgent(capabilities="pipelining,async", ack_elsewhere=True, delays=0.1,
                   fault="close", fault_after=4, fault_connections=1) as agent:
        pool = make_pool(agent.address, max_waiting_frames=2,
                         timeouts=Timeouts(hello=0.5, idle=None, processing=3.0))
        assert statuses(burst(pool, 4, timeout=3.0)) == {0: 4}  # two on each connection
        assert agent.connections == 2
        outcomes = burst(pool, 4, timeout=3.0, first_sid=100)
        assert statuses(outcomes) == {0: 3, 257: 1}
        assert max(o.total_ms for o in outcomes) < (ORPHAN_GRACE + 0.3) * 1000
        settle(pool)
        assert_consistent(pool)
        pool.close(1)


def test_orphans_end_before_their_own_deadline_with_the_known_status() -> None:
    """A deadline nearer than the grace: the orphan ends with 257 just before it,
    not with status 1."""
    with FakeAgent(capabilities="pipelining,async", fault="close", fault_after=3,
                   fault_connections=1, delays=0.05) as agent:
        pool = make_pool(agent.address, max_waiting_frames=2,
                         timeouts=Timeouts(hello=0.5, idle=None, processing=3.0))
        assert statuses(burst(pool, 4, timeout=3.0)) == {0: 4}
        outcomes = burst(pool, 2, timeout=0.15, first_sid=100)
        assert sorted(o.status for o in outcomes) == [0, 257]
        gevent.sleep(0.05)
        assert_consistent(pool)
        pool.close(1)


def test_orphans_end_as_soon_as_the_surviving_connection_answers_newer_frames() -> None:
    """The surviving connection answers a frame written after the loss: it
    would have answered the lost one too, so the orphan ends then, well before
    the grace."""
    with FakeAgent(capabilities="pipelining,async", fault="close", fault_after=3,
                   fault_connections=1, delays=0.05) as agent:
        # A grace far longer than the early end takes, so that ending early and
        # ending at the grace cannot be confused on a loaded machine.
        pool = AppletPool(agent_config(max_waiting_frames=2,
                                       timeouts=Timeouts(hello=0.5, idle=None, processing=3.0)),
                          backend(agent.address), backoff=(0.2, 2.0), orphan_grace=2.0)
        assert statuses(burst(pool, 4, timeout=3.0)) == {0: 4}  # two connections
        stop = [False]
        sent: list[gevent.Greenlet] = []

        def traffic() -> None:
            # A new frame every 5 ms, each from its own greenlet: a feeder that waited
            # for each answer would stall behind one of its own frames caught on the
            # lost connection (an orphan too), and send nothing newer until it ended.
            for sid in range(1000, 1200):
                if stop[0]:
                    return
                sent.append(gevent.spawn(pool.process, sid, 1, PAYLOAD, time.monotonic() + 1.0))
                gevent.sleep(0.005)

        deadline = time.monotonic() + 3.0
        streams = [gevent.spawn(pool.process, sid, 1, PAYLOAD, deadline) for sid in (100, 101)]
        gevent.sleep(0)  # both handed to the pool: one on each connection
        feeder = gevent.spawn(traffic)
        try:
            gevent.joinall(streams, timeout=3.0)
        finally:
            stop[0] = True
            feeder.join(timeout=2)
            gevent.joinall(sent, timeout=2)
        outcomes = [g.value for g in streams]
        assert sorted(o.status for o in outcomes) == [0, 257]
        lost = next(o for o in outcomes if o.status == 257)
        assert lost.total_ms < 1000, lost  # well before the 2 s grace
        settle(pool)
        assert_consistent(pool)
        pool.close(1)
