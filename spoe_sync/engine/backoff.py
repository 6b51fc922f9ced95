"""Per-server exponential, capped reconnection backoff.

HAProxy 2.6 reconnects at once, in a tight loop, after a refused connection, a
failed handshake or a hello timeout (docs/explanation/haproxy-behaviour.md §1.2, §3.2):
hundreds of connections per second against an agent that is down.  spoe_sync
waits instead: after the n-th consecutive failure a server is not tried again
for ``min(base * factor**(n-1), cap)`` seconds, with a little jitter so that many
workers do not retry in step.  A working exchange (an ACK, or a passed health
check) clears the failures.

Failures observed together are one step: when many connections of a server
die at once (an agent killed under load), the reconnections already under
way when the first refusal came back are refused too.  Counting each of them
would jump the delay to its cap after one outage (eight refusals: 0.05 s
became 5 s) and leave a returned agent unused for seconds; so a failure of an
attempt *begun before the last counted failure* does not add a step.

Pure bookkeeping; the clock is injectable.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Exponential capped backoff for one server.

    :param base: delay after the first failure, in seconds.
    :param cap: the longest delay.
    :param factor: growth per consecutive failure.
    :param jitter: fraction of the delay added at random (0 disables it).
    """

    __slots__ = ("_clock", "_rng", "base", "cap", "factor", "failures", "jitter", "last_step",
                 "not_before")

    def __init__(self, base: float = 0.05, cap: float = 5.0, factor: float = 2.0,
                 jitter: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError("backoff needs 0 < base <= cap and factor >= 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.failures = 0
        self.not_before = 0.0
        #: when the last step was counted (attempts begun before it are its peers)
        self.last_step = float("-inf")
        self._clock = clock
        self._rng = rng or random.Random()

    def failure(self, started: float | None = None) -> float:
        """Record a failed attempt begun at ``started`` (on this clock; None: a
        new attempt); returns the delay before the next one.  An attempt begun
        before the last counted failure failed with it: no new step."""
        now = self._clock()
        if started is not None and self.failures and started < self.last_step:
            return max(self.not_before - now, 0.0)
        self.last_step = now
        self.failures += 1
        delay = min(self.base * self.factor ** (self.failures - 1), self.cap)
        if self.jitter:
            delay = min(delay * (1.0 + self.jitter * self._rng.random()), self.cap)
        self.not_before = now + delay
        return delay

    def success(self) -> None:
        """The server answered properly: forget past failures."""
        self.failures = 0
        self.not_before = 0.0
        self.last_step = float("-inf")

    def ready(self) -> bool:
        """True when a new attempt is allowed now."""
        return self.failures == 0 or self._clock() >= self.not_before

    def remaining(self) -> float:
        """Seconds before the next attempt is allowed (0.0 when it is)."""
        return max(self.not_before - self._clock(), 0.0) if self.failures else 0.0

    def __repr__(self) -> str:
        return f"<Backoff failures={self.failures} remaining={self.remaining():.3f}s>"
