"""``timeout processing`` never ends a processing before its deadline (SPOE.txt §2.2
"timeout processing"; docs/explanation/haproxy-behaviour.md §5): the pool's timer is armed
from the event loop's cached clock, which lags behind ``time.monotonic()`` when the
hub has been busy, so the pool checks the real clock before giving status 1; and
the frames sharing the pool's deadline timer each end on their own deadline."""

from __future__ import annotations

import time

import gevent

from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, make_engine, samples, set_score
from .poolkit import PAYLOAD, make_pool


def test_a_processing_timeout_never_fires_before_the_configured_time():
    with FakeAgent({"*": set_score(1)}, delays={"m-first": 1.0}) as agent, make_engine(
            agent.address, "option continue-on-error", processing="100ms") as engine:
        results = []
        for _ in range(3):
            stream = engine.new_stream(samples())
            # Block the hub (no yield) so that its cached clock falls 40 ms behind
            # the real one: a timer armed now from that clock fires 40 ms early.
            time.sleep(0.04)
            results.append(engine.process_event(stream, EVENT))
        assert [r.status for r in results] == [1, 1, 1]
        assert all(100 <= r.timings.process < 400 for r in results), \
            [r.timings.process for r in results]



def test_a_burst_of_timeouts_ends_at_the_deadline_not_before_nor_long_after():
    # Frames of one pool share one timer (in deadline order): each must still
    # end on its own deadline.
    with FakeAgent({"*": set_score(1)}, delays={"check-client-ip": 2.0}) as agent:
        pool = make_pool(agent.address)
        deadline = time.monotonic() + 0.15

        def one(sid: int) -> tuple[int, float]:
            outcome = pool.process(sid, 1, PAYLOAD, deadline)
            return outcome.status, time.monotonic()

        try:
            greenlets = [gevent.spawn(one, sid) for sid in range(1, 51)]
            gevent.joinall(greenlets, timeout=5)
        finally:
            pool.close(0)
    ended = [g.value for g in greenlets]
    assert [status for status, _ in ended] == [1] * 50
    # Measured against the deadline itself, not from when each frame started: on a
    # loaded machine the greenlets may start late, which must not look like an early end.
    assert all(at >= deadline for _, at in ended), [round(at - deadline, 4) for _, at in ended]
    assert max(at for _, at in ended) - deadline < 0.85  # not long after either


def test_an_earlier_deadline_after_a_later_one_is_not_held_back():
    # A caller of the pool may give any deadline: a short one arriving after a
    # long one must not wait for the long one's turn.
    with FakeAgent({"*": set_score(1)}, delays={"check-client-ip": 2.0}) as agent:
        pool = make_pool(agent.address)
        try:
            now = time.monotonic()

            def timed(sid: int, deadline: float) -> tuple[int, float]:
                return pool.process(sid, 1, PAYLOAD, deadline).status, time.monotonic()

            long = gevent.spawn(timed, 1, now + 1.5)
            gevent.sleep(0.01)
            short = gevent.spawn(pool.process, 2, 1, PAYLOAD, time.monotonic() + 0.1)
            assert short.get(timeout=1.0).status == 1
            assert time.monotonic() - now < 0.6  # not 1.5 s
            status, ended = long.get(timeout=3.0)
            assert status == 1
            assert ended >= now + 1.5  # its own deadline, not before
        finally:
            pool.close(0)
