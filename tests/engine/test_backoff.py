"""Reconnection backoff per agent server (issue 5, "no reconnect storms"; HAProxy
2.6 reconnects in a tight loop, docs/explanation/haproxy-behaviour.md §1.2)."""

from __future__ import annotations

import random

import pytest

from spoe_sync.engine.backoff import Backoff


class Clock:
    now = 10.0

    def __call__(self) -> float:
        return self.now


def test_exponential_then_capped() -> None:
    clock = Clock()
    backoff = Backoff(base=0.1, cap=1.0, jitter=0.0, clock=clock)
    assert [backoff.failure() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_ready_only_after_the_delay_and_success_resets() -> None:
    clock = Clock()
    backoff = Backoff(base=0.5, cap=4.0, jitter=0.0, clock=clock)
    assert backoff.ready()
    backoff.failure()
    assert not backoff.ready()
    assert backoff.remaining() == pytest.approx(0.5)
    clock.now += 0.5
    assert backoff.ready()
    backoff.failure()
    assert backoff.remaining() == pytest.approx(1.0)
    backoff.success()
    assert backoff.ready() and backoff.failures == 0 and backoff.remaining() == 0.0


def test_jitter_stays_within_its_fraction_and_the_cap() -> None:
    clock = Clock()
    backoff = Backoff(base=1.0, cap=1.5, jitter=0.25, clock=clock, rng=random.Random(7))
    delays = [backoff.failure() for _ in range(20)]
    assert 1.0 <= delays[0] <= 1.25
    assert all(d <= 1.5 for d in delays)


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0.0)
    with pytest.raises(ValueError):
        Backoff(base=2.0, cap=1.0)


def test_failures_of_attempts_begun_before_the_last_step_are_that_step() -> None:
    """Eight reconnections out at once, all refused: one step, not eight
    (which jumped the delay to its cap after one outage)."""
    clock = Clock()
    backoff = Backoff(base=0.1, cap=1.0, jitter=0.0, clock=clock)
    started = clock.now
    clock.now += 0.01
    assert backoff.failure(started) == pytest.approx(0.1)
    for _ in range(7):
        clock.now += 0.001
        backoff.failure(started)
    assert backoff.failures == 1 and backoff.remaining() == pytest.approx(0.1 - 0.007)
    clock.now += 0.2
    started = clock.now  # a new attempt, after the step: its failure is the next step
    clock.now += 0.01
    assert backoff.failure(started) == pytest.approx(0.2)
    assert backoff.failures == 2
