"""Waiting for a frame's end or its deadline (``timeout processing``), one timer per pool.

:meth:`Deadlines.wait` parks the stream's greenlet on a ``gevent.hub.Waiter``
until whoever ends the request (an applet's reader, the pool) wakes it, or its
deadline passes.

A libev timer per frame costs about a microsecond to create, start and close: a
noticeable share of a frame through the pool.  But the frames of an engine all
have the same ``timeout processing``, so they arrive in deadline order.
:class:`Deadlines` keeps them in that order (a dict: O(1) removal when a frame
ends, insertion order for the scan) and arms one timer for the first one.  When
it fires, it wakes every frame whose deadline has passed on the real clock
(``time.monotonic()``, never the loop's cached one, which lags and would end
frames early) and re-arms for the next.

A frame whose deadline comes more than :data:`SLACK` before the latest one
waiting (a caller of ``AppletPool.process`` with a shorter deadline) is refused
by :meth:`Deadlines.add`: it gets a timer of its own.  Within the slack, a frame
ends at most that much late, never early.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gevent import get_hub
from gevent.hub import Waiter

from .waiting import RequestState, Wakeups

if TYPE_CHECKING:
    from .waiting import FrameRequest

__all__ = ["SLACK", "Deadlines"]

#: Seconds a deadline may come before the latest one waiting and still share the timer.
SLACK = 0.001

monotonic = time.monotonic
_DONE = RequestState.DONE


class Deadlines:
    """The waiting frames of one pool that have a deadline, and their timer."""

    __slots__ = ("_frames", "_latest", "_timer", "wakeups")

    def __init__(self) -> None:
        #: wakes the streams parked here when their frames end (FrameRequest.finish)
        self.wakeups = Wakeups()
        self._frames: dict[FrameRequest, None] = {}
        self._latest = float("-inf")
        self._timer: Any = None

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, request: FrameRequest, deadline: float) -> bool:
        """Watch ``request`` (its ``deadline`` is ``request.deadline``); False
        when it would break the deadline order: give it a timer of its own."""
        if deadline < self._latest - SLACK:
            return False
        self._frames[request] = None
        if deadline > self._latest:
            self._latest = deadline
        if self._timer is None:
            self._arm(deadline)
        return True

    def wait(self, request: FrameRequest, deadline: float | None) -> None:
        """Park this greenlet until ``request`` ends or ``deadline`` passes on
        the real clock (then ``request`` is not DONE: the caller abandons it).
        Exceptions thrown into the greenlet (a kill, a caller's timeout)
        propagate, the request no longer watched."""
        hub = get_hub()
        waiter: Waiter[Any] = Waiter(hub)
        request.waiter = waiter
        request.wakeups = self.wakeups
        timer = None
        if deadline is not None:
            latest = self._latest
            if deadline >= latest - SLACK:  # add(), inlined: once per frame
                self._frames[request] = None
                if deadline > latest:
                    self._latest = deadline
                if self._timer is None:
                    self._arm(deadline)
            else:
                timer = hub.loop.timer(max(deadline - monotonic(), 0.0))
                timer.start(waiter.switch, None)
        try:
            waiter.get()
            while deadline is not None and request.state is not _DONE:
                # libev arms timers from the loop's cached clock, which lags
                # behind time.monotonic() by the work done since the loop last
                # polled: a timer can fire a few ms early.  Never end a frame
                # with status 1 before its deadline: wait for the rest.
                remaining = deadline - monotonic()
                if remaining <= 0:
                    break
                if timer is not None:
                    timer.close()
                self.discard(request)
                waiter = Waiter(hub)
                request.waiter = waiter
                timer = hub.loop.timer(remaining)
                timer.start(waiter.switch, None)
                waiter.get()
        finally:
            request.waiter = None
            if timer is not None:
                timer.close()
            frames = self._frames  # discard(), inlined
            if frames:
                frames.pop(request, None)
                if not frames:
                    self.close()

    def discard(self, request: FrameRequest) -> None:
        """``request`` ended (or waits on a timer of its own now)."""
        frames = self._frames
        if frames:
            frames.pop(request, None)
            if not frames:
                self.close()

    def close(self) -> None:
        """Stop the timer (every frame has gone, or the pool is closing)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def _arm(self, deadline: float) -> None:
        timer = get_hub().loop.timer(max(deadline - monotonic(), 0.0))
        timer.start(self._expire)
        self._timer = timer

    def _expire(self) -> None:
        """Wake the frames whose deadline has passed, re-arm for the next one."""
        self.close()
        now = monotonic()
        frames = self._frames
        expired: list[FrameRequest] = []
        following: float | None = None
        for request in frames:
            deadline: float = request.deadline  # type: ignore[assignment]
            if deadline > now:
                following = deadline
                break
            expired.append(request)
        wake = self.wakeups.add
        for request in expired:
            del frames[request]
            if request.waiter is not None:
                wake(request.waiter)
        if following is not None:
            self._arm(following)
