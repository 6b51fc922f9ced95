"""The writer greenlet of an applet: coalesced writes, fragments, write deadlines.

Streams append their NOTIFY frames to the applet (``Applet.submit``) and wake
the writer; it writes everything pending in one ``send``, so a burst of streams
costs one system call.  It writes through its own socket object (a ``dup``), so
that its deadline (``PoolSettings.write_timeout``) is not the one the reader
sets: an agent that stops reading fails the connection (status 2) instead of
blocking it forever.  The fragments of a NOTIFY go out one by one; a stream that
gives up part-way gets HAProxy's final FIN|ABORT frame instead of the rest
(docs/explanation/haproxy-behaviour.md §2.4).
"""

from __future__ import annotations

import enum
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from gevent.event import Event

from . import log

if TYPE_CHECKING:
    from ..protocol.connection import EngineConnection
    from .pool import AppletPool
    from .waiting import FrameRequest

__all__ = ["AppletState", "AppletWriter"]


class AppletState(enum.Enum):
    CONNECTING = "connecting"
    HELLO = "hello"
    READY = "ready"
    CLOSED = "closed"


class AppletWriter:
    """The writer half of :class:`~.applet.Applet` (a base class of it)."""

    if TYPE_CHECKING:  # set by Applet.__init__
        pool: AppletPool
        conn: EngineConnection
        state: AppletState
        mode: str | None
        sock: Any
        last_activity: float
        written: int
        inflight: dict[tuple[int, int], FrameRequest]
        _out: list[bytes]
        _out_requests: list[FrameRequest]
        _frags: deque[tuple[FrameRequest, list[bytes]]]
        _fragmenting: tuple[int, int] | None
        _wsock: Any
        _wake: Event

        def _give_slot(self) -> None: ...
        def _end(self, status: int | None, error: str, *, failure: bool,
                 disconnect: bool = False) -> None: ...

    # ------------------------------------------------------------------ the writer greenlet

    def _write_loop(self) -> None:
        wake = self._wake
        try:
            # Its own socket object: the reader's settimeout() must not be the
            # writer's deadline (nor the reverse).
            wsock = self._wsock = self.sock.dup()
        except (AttributeError, OSError):  # pragma: no cover - an odd transport
            wsock = self.sock
        wsock.settimeout(self.pool.settings.write_timeout)
        try:
            while self.state is AppletState.READY:
                wake.wait()
                wake.clear()
                if self._out:
                    if not self._write_batch(wsock):
                        return
                while self._frags and self.state is AppletState.READY:
                    request, frames = self._frags.popleft()
                    if not self._write_fragments(wsock, request, frames):
                        return
        except Exception as exc:
            # A bug here must not leave the frames waiting for their deadline:
            # the connection ends and they fail fast, as for a reader bug.
            log.internal_error("an applet's writer", exc)
            self._end(99, f"internal error in the writer: {exc!r}", failure=True)

    def _write_batch(self, wsock: Any) -> bool:
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        written = self._out_requests
        self._out = []
        self._out_requests = []
        try:
            # One send() usually takes the whole batch; gevent's sendall()
            # costs a getsockopt() system call and a memoryview first.
            sent = wsock.send(data)
            if sent < len(data):
                wsock.sendall(memoryview(data)[sent:])
        except Exception as exc:  # OSError, or a bug in the transport
            # Part of it may have reached the agent: these frames are lost
            # with the connection, not sent again.
            self.pool._on_written(written, time.monotonic())
            self._write_failed(exc)
            return False
        now = time.monotonic()
        self.last_activity = now
        self.written += len(written)
        self.pool._on_written(written, now)
        return True

    def _write_fragments(self, wsock: Any, request: FrameRequest, frames: list[bytes]) -> bool:
        """Write one fragmented NOTIFY frame by frame; if its stream gives up
        part-way, end it with FIN|ABORT instead (docs/explanation/haproxy-behaviour.md §2.4)."""
        key = request.key
        self._fragmenting = key
        try:
            for done, frame in enumerate(frames):
                if self.inflight.get(key) is not request:  # abandoned meanwhile
                    data = self.conn.abandon(request.stream_id, request.frame_id,
                                             frames_written=done)
                    if data:
                        wsock.sendall(data)
                    if self.mode is not None:
                        self._give_slot()
                    return True
                wsock.sendall(frame)
                self.last_activity = time.monotonic()
        except Exception as exc:  # OSError, or a bug in the transport
            self.pool._on_written([request], time.monotonic())
            self._write_failed(exc)
            return False
        finally:
            self._fragmenting = None
        self.written += 1
        self.pool._on_written([request], self.last_activity)
        return True

    def _write_failed(self, exc: Exception) -> None:
        if isinstance(exc, TimeoutError):
            self._end(2, f"timeout writing to the agent ({self.pool.settings.write_timeout} s): "
                         "it stopped reading", failure=True)
        elif isinstance(exc, OSError):
            self._end(1, f"I/O error: {exc}", failure=True)
        else:
            log.internal_error("an applet's write", exc)
            self._end(99, f"internal error writing to the agent: {exc!r}", failure=True)
