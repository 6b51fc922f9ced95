"""The writer of one applet: coalesced writes, fragments, write deadlines.

Composed into :class:`~.applet.Applet` (``applet.writer``).  Streams append
their NOTIFY frames (``Applet.submit``) and wake it; it writes everything
pending in one ``send``, so a burst of streams costs one system call.  It writes
through its own socket object (a ``dup``), so that its deadline
(``PoolSettings.write_timeout``) is not the one the reader sets: an agent that
stops reading fails the connection (status 2) instead of blocking it forever.
The fragments of a NOTIFY go out one by one; a stream that gives up part-way
gets HAProxy's final FIN|ABORT frame instead of the rest
(docs/explanation/haproxy-behaviour.md §2.4).

It decides nothing about slots: what it wrote is reported through the
applet's listener (``frames_written``), a failed write ends the applet.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.event import Event

from . import log
from .poolstate import AppletState

if TYPE_CHECKING:
    from ..protocol.connection import EngineConnection
    from .poolstate import Link
    from .settings import PoolSettings
    from .waiting import FrameRequest

__all__ = ["AppletWriter"]

_READY = AppletState.READY


class _Applet(Protocol):
    """What the writer uses of its :class:`~.applet.Applet` (described, not
    imported: the applet imports the writer)."""

    link: Link
    conn: EngineConnection
    settings: PoolSettings
    sock: Any
    last_activity: float
    listener: Any

    def end(self, status: int | None, error: str, *, failure: bool,
            disconnect: bool = False) -> None: ...


class AppletWriter:
    """The writer greenlet of one :class:`~.applet.Applet`."""

    # One per agent connection, hundreds of them alive: slots, not a dict each.
    __slots__ = ("_greenlet", "_wsock", "applet", "fragmenting", "frags", "out", "requests",
                 "wake")

    def __init__(self, applet: _Applet) -> None:
        self.applet = applet
        #: whole frames to write, and the requests whose last frame they are
        self.out: list[bytes] = []
        self.requests: list[FrameRequest] = []
        #: fragmented NOTIFYs, written one frame at a time (rare and few: a list
        #: is a tenth of an empty deque's memory)
        self.frags: list[tuple[FrameRequest, list[bytes]]] = []
        #: the key of the fragmented NOTIFY being written
        self.fragmenting: tuple[int, int] | None = None
        self.wake = Event()
        self._wsock: Any = None
        self._greenlet: gevent.Greenlet[..., Any] | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def discard(self) -> None:
        """The connection ends: drop what is pending (the bookkeeping queues
        those frames again or ends them)."""
        self.out = []
        self.requests = []
        self.frags.clear()
        self.wake.set()

    def stop(self) -> None:
        """Stop the greenlet (only one greenlet may write: before our DISCONNECT)."""
        greenlet = self._greenlet
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=True, timeout=1.0)

    def kill(self) -> None:
        greenlet = self._greenlet
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)

    def close_socket(self) -> None:
        wsock, self._wsock = self._wsock, None
        if wsock is not None:
            try:
                wsock.close()
            except OSError:  # pragma: no cover
                pass

    # ------------------------------------------------------------------ the greenlet

    def _run(self) -> None:
        applet = self.applet
        link = applet.link
        wake = self.wake
        try:
            # Its own socket object: the reader's settimeout() must not be the
            # writer's deadline (nor the reverse).
            wsock = self._wsock = applet.sock.dup()
        except (AttributeError, OSError):  # pragma: no cover - an odd transport
            wsock = applet.sock
        wsock.settimeout(applet.settings.write_timeout)
        try:
            while link.state is _READY:
                wake.wait()
                wake.clear()
                if self.out:
                    if not self._write_batch(wsock):
                        return
                while self.frags and link.state is _READY:
                    request, frames = self.frags.pop(0)
                    if not self._write_fragments(wsock, request, frames):
                        return
        except Exception as exc:
            # A bug here must not leave the frames waiting for their deadline:
            # the connection ends and they fail fast, as for a reader bug.
            log.internal_error("an applet's writer", exc)
            applet.end(99, f"internal error in the writer: {exc!r}", failure=True)

    def _write_batch(self, wsock: Any) -> bool:
        out = self.out
        data = b"".join(out) if len(out) > 1 else out[0]
        written = self.requests
        self.out = []
        self.requests = []
        applet = self.applet
        try:
            # One send() usually takes the whole batch; gevent's sendall()
            # costs a getsockopt() system call and a memoryview first.
            sent = wsock.send(data)
            if sent < len(data):
                wsock.sendall(memoryview(data)[sent:])
        except Exception as exc:  # OSError, or a bug in the transport
            # Part of it may have reached the agent: these frames are lost
            # with the connection, not sent again.
            applet.listener.frames_written(applet, written, time.monotonic())
            self._write_failed(exc)
            return False
        now = time.monotonic()
        applet.last_activity = now
        applet.listener.frames_written(applet, written, now)
        return True

    def _write_fragments(self, wsock: Any, request: FrameRequest, frames: list[bytes]) -> bool:
        """Write one fragmented NOTIFY frame by frame; if its stream gives up
        part-way, end it with FIN|ABORT instead (docs/explanation/haproxy-behaviour.md §2.4)."""
        applet = self.applet
        inflight = applet.link.inflight
        key = request.key
        self.fragmenting = key
        try:
            for done, frame in enumerate(frames):
                if inflight.get(key) is not request:  # abandoned meanwhile: its slot is back
                    data = applet.conn.abandon(request.stream_id, request.frame_id,
                                               frames_written=done)
                    if data:
                        wsock.sendall(data)
                    return True
                wsock.sendall(frame)
                applet.last_activity = time.monotonic()
        except Exception as exc:  # OSError, or a bug in the transport
            applet.listener.frames_written(applet, [request], time.monotonic())
            self._write_failed(exc)
            return False
        finally:
            self.fragmenting = None
        applet.listener.frames_written(applet, [request], applet.last_activity)
        return True

    def _write_failed(self, exc: Exception) -> None:
        applet = self.applet
        if isinstance(exc, TimeoutError):
            applet.end(2, f"timeout writing to the agent ({applet.settings.write_timeout} s): "
                          "it stopped reading", failure=True)
        elif isinstance(exc, OSError):
            applet.end(1, f"I/O error: {exc}", failure=True)
        else:
            log.internal_error("an applet's write", exc)
            applet.end(99, f"internal error writing to the agent: {exc!r}", failure=True)
