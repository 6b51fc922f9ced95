"""``timeout processing`` never ends a processing before its deadline (SPOE.txt §2.2
"timeout processing"; haproxy-engine-behaviour.md §5): the pool's timer is armed
from the event loop's cached clock, which lags behind ``time.monotonic()`` when the
hub has been busy, so the pool checks the real clock before giving status 1."""

from __future__ import annotations

import time

from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, make_engine, samples, set_score


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

