"""``maxconnrate`` / ``maxerrrate`` counters: HAProxy's ``freq_ctr`` sliding window
(SPOE.txt §2.2; docs/explanation/haproxy-behaviour.md §5.2)."""

from __future__ import annotations

import pytest

from spoe_sync.engine.ratelimit import RateCounter


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_within_the_current_second() -> None:
    clock = Clock(100.0)
    ctr = RateCounter(clock=clock)
    for _ in range(3):
        ctr.add()
    assert ctr.rate() == 3
    assert ctr.remaining(5) == 2
    assert ctr.allows(4) and not ctr.allows(3)


def test_previous_second_weighs_by_the_part_still_to_come() -> None:
    clock = Clock(100.0)
    ctr = RateCounter(clock=clock)
    for _ in range(10):
        ctr.add()
    clock.now = 101.25  # 75% of the new second still to come
    assert ctr.rate() == pytest.approx(7.5)
    assert ctr.remaining(10) == 3  # int(7.5) = 7 used, as freq_ctr_remain truncates
    clock.now = 101.9
    assert ctr.rate() == pytest.approx(1.0)


def test_two_seconds_later_everything_is_forgotten() -> None:
    clock = Clock(100.5)
    ctr = RateCounter(clock=clock)
    ctr.add(50)
    clock.now = 102.0
    assert ctr.rate() == 0
    assert ctr.remaining(1) == 1


def test_zero_limit_means_unlimited() -> None:
    ctr = RateCounter(clock=Clock())
    ctr.add(10_000)
    assert ctr.allows(0)
    assert ctr.delay(0) == 0.0


@pytest.mark.parametrize(("added", "now", "limit", "expected"), [
    pytest.param(3, 100.5, 3, 0.5 + 0.0, id="full-this-second-waits-for-next"),
    pytest.param(2, 100.5, 3, 0.0, id="room-now"),
    pytest.param(6, 100.0, 3, 1.0 + 0.5, id="twice-over-waits-for-half-decay"),
])
def test_delay_until_the_next_event_fits(added: int, now: float, limit: int, expected: float) -> None:
    clock = Clock(now)
    ctr = RateCounter(clock=clock)
    ctr.add(added)
    delay = ctr.delay(limit)
    assert delay == pytest.approx(expected, abs=1e-3)
    if delay:
        clock.now = now + delay - 0.01  # the clock only moves forward
        assert not ctr.allows(limit)
        clock.now = now + delay
        assert ctr.allows(limit)


def test_a_burst_straddling_a_second_boundary_gets_almost_twice_the_limit() -> None:
    """freq_ctr_remain() floors the previous second's weighted share: HAProxy
    lets 2 * limit - 1 events through around a boundary, and so do we."""
    clock = Clock(100.9)
    ctr = RateCounter(clock=clock)
    ctr.add(3)
    assert not ctr.allows(3)
    clock.now = 101.1  # 3 * 0.9 = 2.7 -> 2 used
    assert ctr.remaining(3) == 1
    ctr.add()
    assert not ctr.allows(3)
