"""Frames in flight, as the streams' side of the pool sees them.

A :class:`FrameRequest` is one NOTIFY from the moment a stream hands it to the
pool until it ends (ACK, timeout, failure).  The stream's greenlet parks on a
``gevent.hub.Waiter``; whoever ends the request (the bookkeeping, on an applet's
report or the pool's) schedules its wake-up through the hub: :class:`Wakeups`
gathers the streams ended in one loop iteration (a batch of ACKs read at once)
behind one callback of the hub, instead of one callback each.

The engine-wide ``(stream-id, frame-id) -> request`` table is
``PoolState.frames``: in async mode (SPOE.txt §3.2.1) an ACK may come back on
any connection of the engine, so matching must look beyond the connection that
sent the NOTIFY; HAProxy 2.6 keeps such a table per thread and per engine-id.
Here there is one table and one engine-id per engine.

:class:`Orphans` holds the async frames of a lost connection for a short grace.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any

import gevent
from gevent import get_hub

from .models import FrameOutcome
from .poolstate import RequestState

if TYPE_CHECKING:
    from ..protocol import Ack
    from .poolstate import Link

__all__ = ["ORPHAN_GRACE", "FrameRequest", "Orphans", "RequestState", "Wakeups", "new_engine_id"]

# Read once: in Python 3.11, ``RequestState.QUEUED`` goes through the enum
# metaclass's ``__getattr__`` hook, a fraction of a microsecond per frame.
_DONE = RequestState.DONE
_QUEUED = RequestState.QUEUED
_WAITING = RequestState.WAITING

#: Async mode: how long (seconds) the written frames of a lost connection wait
#: for their ACK on another connection before they end with its 256+N.
ORPHAN_GRACE = 0.25


def new_engine_id() -> str:
    """A random UUIDv4 text, HAProxy's engine-id format."""
    return str(uuid.uuid4())


class Wakeups:
    """The parked streams of one pool whose frames have ended, to be woken
    from the hub in the order they ended.

    A ``Waiter`` may only be switched to from the hub, and the requests end
    in an applet's reader greenlet, a batch of ACKs per read.  A callback of
    the hub per stream (``loop.run_callback(waiter.switch)``) cost about
    2,600 CPU instructions more per event (``benchmarks/instructions.py``)
    than one callback per batch that switches to each in turn (:meth:`run`);
    the order, and the moment (the hub's next round of callbacks), are the
    same.  Each switch returns here when the woken stream blocks again:
    ``Waiter.switch`` reports an error of the switch to the hub instead of
    raising, so one stream cannot keep the others asleep."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        #: the waiters to switch to; not empty exactly while run() is scheduled
        self.waiters: list[Any] = []

    def add(self, waiter: Any) -> None:
        """Wake ``waiter`` in the hub's next round of callbacks (FrameRequest.finish inlines it)."""
        waiters = self.waiters
        if not waiters:
            get_hub().loop.run_callback(self.run)
        waiters.append(waiter)

    def run(self) -> None:
        # A new list first: streams woken here end other requests (add() then
        # schedules another round, after this one).
        waiters = self.waiters
        self.waiters = []
        current = None
        try:
            for current in waiters:
                current.switch(None)
        except BaseException:
            # Waiter.switch hands errors to the hub, so only a bug gets here:
            # the streams after it must still wake (each callback was
            # independent of the others before).
            for waiter in waiters[waiters.index(current) + 1:]:
                self.add(waiter)
            raise


class FrameRequest:
    """One NOTIFY in flight (internal; streams see :class:`FrameOutcome`)."""

    __slots__ = ("ack", "deadline", "error", "fragmented", "frame_id", "key", "link", "lost",
                 "payload", "server", "state", "status", "stream_id", "t_acked", "t_end",
                 "t_start", "t_written", "waiter", "wakeups")

    def __init__(self, stream_id: int, frame_id: int, payload: bytes, deadline: float | None,
                 now: float) -> None:
        self.stream_id = stream_id
        self.frame_id = frame_id
        self.key = (stream_id, frame_id)
        self.payload = payload
        self.deadline = deadline
        self.state = _QUEUED
        #: the connection holding it while ASSIGNED or WAITING (None when queued or orphaned)
        self.link: Link | None = None
        #: its NOTIFY went out in several frames
        self.fragmented = False
        self.status = -1
        self.ack: Ack | None = None
        self.error: str | None = None
        self.server: str | None = None
        self.t_start = now
        self.t_written = -1.0
        self.t_acked = -1.0
        self.t_end = -1.0
        #: the stream's ``gevent.hub.Waiter`` while it waits (lighter than an Event),
        #: and the :class:`Wakeups` that wakes it (both set by ``Deadlines.wait``)
        self.waiter: Any = None
        self.wakeups: Wakeups | None = None
        #: async orphan: (stream status, error, end of its grace) of the lost connection
        self.lost: tuple[int, str, float] | None = None

    def finish(self, status: int, ack: Ack | None = None, error: str | None = None) -> None:
        """End the request (idempotent: the first ending wins) and wake its stream."""
        if self.state is _DONE:
            return
        self.state = _DONE
        self.status = status
        self.ack = ack
        self.error = error
        self.payload = b""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            wakeups: Wakeups = self.wakeups  # type: ignore[assignment]
            waiters = wakeups.waiters  # wakeups.add(waiter), inlined: once per frame
            if not waiters:
                get_hub().loop.run_callback(wakeups.run)
            waiters.append(waiter)

    def outcome(self) -> FrameOutcome:
        """How it ended, for :meth:`AppletPool.process` (once it has ended)."""
        start = self.t_start
        written = self.t_written
        acked = self.t_acked
        return FrameOutcome(
            status=self.status,
            ack=self.ack,
            queue_ms=int((written - start) * 1000) if written >= 0 else -1,
            wait_ms=int((acked - written) * 1000) if acked >= 0 and written >= 0 else -1,
            total_ms=int((self.t_end - start) * 1000),
            error=self.error,
            server=self.server,
        )

    def __repr__(self) -> str:
        return f"<FrameRequest sid={self.stream_id} fid={self.frame_id} {self.state.value}>"


class Orphans:
    """Async mode: written frames whose connection was lost while other async
    connections live.  An ACK may still come on one of them
    (docs/explanation/haproxy-behaviour.md §3.6), but most agents answer a frame on its
    own connection only, and HAProxy 2.6 lets such frames wait out the
    processing timeout (st=1).  Here each waits :data:`ORPHAN_GRACE` at most
    (less when its deadline is nearer), and all end at once when every
    surviving connection has answered a frame written after the loss: each
    with the status of the connection it was lost with (256+N).

    :param on_end: called for each orphan just before it is finished (the
        pool's counters).
    :param grace: how long an orphan waits at most, in seconds.
    """

    __slots__ = ("_on_end", "_timer", "grace", "pending", "requests", "since")

    def __init__(self, on_end: Callable[[FrameRequest], None], grace: float = ORPHAN_GRACE) -> None:
        self._on_end = on_end
        self.grace = grace
        self.requests: set[FrameRequest] = set()
        #: connections alive at the last loss that have not yet answered a
        #: frame written after it
        self.pending: set[Any] = set()
        self.since = -1.0
        self._timer: Any = None

    def __bool__(self) -> bool:
        return bool(self.requests)

    def __len__(self) -> int:
        return len(self.requests)

    def discard(self, request: FrameRequest) -> None:
        self.requests.discard(request)

    def add(self, request: FrameRequest, status: int, error: str, now: float) -> None:
        expiry = now + self.grace
        if request.deadline is not None:
            # End before the deadline does: the cause is known, not a timeout.
            expiry = min(expiry, request.deadline - 0.002)
        request.lost = (status, error, expiry)
        self.requests.add(request)

    def watch(self, survivors: Iterable[Any], now: float) -> None:
        """A connection was lost at ``now``: wait for ``survivors`` to answer."""
        self.since = now
        self.pending = set(survivors)
        self.end()

    def answered(self, applet: Any, request: FrameRequest) -> None:
        """``applet`` brought the ACK of ``request``."""
        pending = self.pending
        if applet in pending and 0 <= self.since <= request.t_written:
            pending.discard(applet)
            if not pending:
                self.end(everything=True)

    def applet_gone(self, applet: Any) -> None:
        self.pending.discard(applet)

    def end(self, everything: bool = False) -> None:
        """End the orphans whose grace is over (all with ``everything``), then
        re-arm the timer for the next one."""
        now = monotonic()
        following: float | None = None
        for request in list(self.requests):
            lost = request.lost
            if request.state is not _WAITING or lost is None:
                self.requests.discard(request)
                continue
            status, error, expiry = lost
            if everything or expiry <= now:
                self.requests.discard(request)
                self._on_end(request)
                request.finish(status, error=error)
            elif following is None or expiry < following:
                following = expiry
        if not self.requests:
            self.pending = set()
        self.close()
        if following is not None:
            self._timer = gevent.spawn_later(max(following - now, 0.001), self.end)

    def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not gevent.getcurrent():
            timer.kill(block=False)
