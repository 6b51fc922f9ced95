"""Per-second event counters with HAProxy's ``freq_ctr`` semantics.

``maxconnrate`` and ``maxerrrate`` (SPOE.txt §2.2) are enforced in HAProxy 2.6
with a ``struct freq_ctr``: a counter for the current second (aligned on the
clock's whole seconds), the total of the previous second, and a read that adds
the previous second's total weighted by the fraction of the current second still
to come (``freq_ctr_remain()`` / ``next_event_delay()`` in
``include/haproxy/freq_ctr.h``).  So a burst of N events at the end of one second
still counts for almost N at the start of the next, and nothing is ever "reset"
abruptly.

The counter is pure bookkeeping: the clock is injectable so tests can walk time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RateCounter"]


class RateCounter:
    """A sliding-window per-``period`` counter (HAProxy ``freq_ctr``).

    :param period: the window length in seconds (1.0 for "per second").
    :param clock: a monotonic clock in seconds; windows are aligned on its
        multiples of ``period`` as HAProxy aligns them on ``now.tv_sec``.
    """

    __slots__ = ("_clock", "_curr", "_period", "_prev", "_tick")

    def __init__(self, period: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self._period = float(period)
        self._clock = clock
        self._tick = math.floor(clock() / self._period)
        self._curr = 0
        self._prev = 0

    def _rotate(self, now: float) -> float:
        """Move the window to ``now``; returns the fraction of the current period
        still to come (HAProxy's ``ms_left_scaled``)."""
        tick = math.floor(now / self._period)
        age = tick - self._tick
        if age > 0:
            # One period later the current total becomes the previous one; more
            # than one period later both are stale.
            self._prev = self._curr if age == 1 else 0
            self._curr = 0
            self._tick = tick
        return 1.0 - (now / self._period - tick)

    def add(self, count: int = 1) -> None:
        """Record ``count`` events now (``update_freq_ctr``)."""
        self._rotate(self._clock())
        self._curr += count

    def rate(self) -> float:
        """Events over the last period as HAProxy reads it: current total plus the
        previous total weighted by the part of the current period still to come."""
        left = self._rotate(self._clock())
        return self._curr + self._prev * left

    def remaining(self, limit: int, pending: int = 0) -> int:
        """How many more events fit under ``limit`` now (``freq_ctr_remain``);
        ``limit <= 0`` means no limit and returns a large number."""
        if limit <= 0:
            return 1 << 30
        used = int(self.rate()) + pending
        return max(limit - used, 0)

    def allows(self, limit: int, pending: int = 0) -> bool:
        """True when one more event fits under ``limit`` (always true for 0)."""
        return self.remaining(limit, pending) > 0

    def delay(self, limit: int, pending: int = 0) -> float:
        """Seconds to wait before one more event fits (``next_event_delay``);
        0.0 when it fits now or there is no limit."""
        if limit <= 0:
            return 0.0
        now = self._clock()
        left = self._rotate(now)
        curr = self._curr + pending
        if curr + int(self._prev * left) < limit:
            return 0.0
        period = self._period
        to_boundary = left * period
        if curr < limit:
            # Fits later in this period, once prev * left drops under the room.
            room = limit - curr
            need_left = room / self._prev if self._prev else 1.0
            return max(to_boundary - need_left * period, 0.0) + 1e-6
        # The current total alone is over: after the boundary it becomes the
        # previous one and must decay under ``limit - pending`` first.
        room = limit - pending
        if room <= 0:
            return to_boundary + period
        past = self._curr
        need_left = min(room / past, 1.0) if past else 1.0
        return to_boundary + (1.0 - need_left) * period + 1e-6

    def __repr__(self) -> str:
        return f"<RateCounter curr={self._curr} prev={self._prev} period={self._period}>"
