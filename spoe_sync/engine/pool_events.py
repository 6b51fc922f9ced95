"""What the applets tell their pool: ready, frames written, an ACK, closed.

The reader and writer greenlets of an :class:`~.applet.Applet` call these
methods of its :class:`~.pool.AppletPool`; they are the pool's bookkeeping for
those events (counters, slots, the end of each frame) and never yield.  They
live apart from the stream side of the pool (``pool.py``) only to keep each
module to one concern.  ``_on_ack`` runs for every frame: it is written for
speed (see the inlined ``Applet.release()``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from ..protocol.connection import AckReceived
from .applet import Applet, AppletState
from .waiting import FrameRequest, Orphans, RequestState

__all__ = ["PoolEvents"]

_DONE = RequestState.DONE
_WAITING = RequestState.WAITING
_ASSIGNED = RequestState.ASSIGNED
_APPLET_READY = AppletState.READY
monotonic = time.monotonic


class PoolEvents:
    """The applet-event half of :class:`~.pool.AppletPool` (a base class of it)."""

    if TYPE_CHECKING:  # set by AppletPool._reset_state()
        _frames: dict[tuple[int, int], FrameRequest]
        _queue: deque[FrameRequest]
        _nb_queued: int
        _nb_assigned: int
        _nb_waiting: int
        _applets: set[Applet]
        _ready: list[Applet]
        _available: dict[Applet, None]
        _connecting: int
        _capacity_guess: int
        _orphans: Orphans
        _closed: bool
        frames_sent: int
        acks_received: int

        def _assign(self) -> None: ...

    # ------------------------------------------------------------------ applet events

    def _on_applet_ready(self, applet: Applet) -> None:
        server = applet.server
        server.connecting -= 1
        server.ready += 1
        self._connecting -= 1
        self._ready.append(applet)
        self._available[applet] = None
        self._capacity_guess = applet.capacity
        self._assign()

    def _on_written(self, requests: list[FrameRequest], now: float) -> None:
        for request in requests:
            if request.state is RequestState.ASSIGNED:
                request.state = RequestState.WAITING
                request.t_written = now
                self._nb_assigned -= 1
                self._nb_waiting += 1
                self.frames_sent += 1

    def _on_ack(self, applet: Applet, event: AckReceived) -> None:
        ack = event.ack
        request = self._frames.get((ack.stream_id, ack.frame_id))
        if request is None:
            return  # late ACK of an abandoned frame
        state = request.state
        if state is _DONE:
            return
        owner = request.applet
        if owner is not applet or not event.matched:
            # Cross-connection ACKs are only valid between async connections.
            if applet.mode != "async" or (owner is not None and owner.mode != "async"):
                return
        # When the reader got the bytes (it reads a batch of ACKs at once).
        now = applet.last_activity
        if state is _WAITING:
            self._nb_waiting -= 1
        elif state is _ASSIGNED:
            self._nb_assigned -= 1  # the ACK overtook the end of our sendall()
            request.t_written = now
        else:  # QUEUED again after its connection died: the agent had it anyway
            self._nb_queued -= 1
            request.t_written = now
        request.t_acked = now
        self.acks_received += 1
        backoff = applet.server.backoff
        if backoff.failures:
            backoff.success()
        if event.aborted:
            request.finish(4, error="the agent aborted the fragmented NOTIFY")
        else:
            request.finish(0, ack=ack)
        if self._orphans.requests:
            self._orphans.discard(request)
            self._orphans.answered(applet, request)
        if owner is applet and applet.inflight.pop(request.key, None) is not None:
            # Applet.release() for the usual case (the ACK came on the frame's
            # own connection), inlined: this runs for every frame.
            if applet._free < applet.capacity:
                applet._free += 1
            if applet.state is _APPLET_READY and applet not in self._available:
                self._available[applet] = None
        elif owner is not None:
            owner.release(request, abandon=owner is not applet)
        if self._nb_queued:
            self._assign()

    def _on_applet_closed(self, applet: Applet, status: int | None, error: str, *,
                          failure: bool, was: AppletState) -> None:
        server = applet.server
        self._applets.discard(applet)
        server.connections -= 1
        if was is AppletState.READY:
            server.ready -= 1
            self._ready.remove(applet)
            self._available.pop(applet, None)
        else:
            server.connecting -= 1
            self._connecting -= 1
        stream_status = 2 if status is None else 256 + status
        if was is AppletState.READY and not applet.inflight:
            # A working connection closed while nothing was in flight (an agent's
            # own idle timeout, a restart): nothing failed, no backoff.
            failure = False
        if failure and not self._closed and (was is not AppletState.READY or not applet.written):
            # Only a failed connect or handshake (the agent refused before a
            # frame went out) backs the server off: a connection that worked
            # and then broke (one bad ACK) says nothing of the next one.
            server.record_failure(stream_status, error, time.monotonic())
        elif failure:
            server.last_status, server.last_error = stream_status, error
        self._orphans.applet_gone(applet)
        async_survivors = applet.mode == "async" and any(a.mode == "async" for a in self._ready)
        now = monotonic()
        requeue: list[FrameRequest] = []
        for request in list(applet.inflight.values()):
            applet.inflight.pop(request.key, None)
            request.applet = None
            if request.state is RequestState.ASSIGNED:
                self._nb_assigned -= 1
                request.state = RequestState.QUEUED
                requeue.append(request)
            elif async_survivors:
                # Another connection may bring its ACK, for a short while.
                self._orphans.add(request, stream_status, error, now)
            else:
                self._nb_waiting -= 1
                request.finish(stream_status, error=error)
        if applet.mode == "async":
            if not async_survivors:
                self._orphans.end(everything=True)
            elif self._orphans:
                self._orphans.watch([a for a in self._ready if a.mode == "async"], now)
        if requeue:
            self._queue.extendleft(reversed(requeue))
            self._nb_queued += len(requeue)
        if self._nb_queued:
            self._assign()

    def _orphan_ended(self, _request: FrameRequest) -> None:
        self._nb_waiting -= 1
