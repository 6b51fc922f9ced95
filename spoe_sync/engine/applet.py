"""One agent connection: socket, sans-IO :class:`EngineConnection`, reader, writer.

An applet is HAProxy's name for the object that owns one TCP connection to an
agent (docs/explanation/haproxy-behaviour.md §3.1).  Ours, like the worker of h2's gevent
example, is a socket plus a sans-IO connection plus greenlets:

* the **reader** greenlet runs the whole life: connect (``timeout connect`` of the
  backend), HAPROXY-HELLO and the wait for AGENT-HELLO under ``timeout hello``,
  then reads frames and hands ACKs to the pool, under ``timeout idle`` (re-armed
  by every frame sent or received, as HAProxy does);
* the **writer** greenlet serializes writes and coalesces them: streams append
  their NOTIFY frames and wake it, it writes everything pending in one
  ``sendall``, so a burst of streams costs one system call.  It writes through
  its own socket object (a ``dup``), so that its deadline (``timeout idle``,
  else ``timeout processing``: ``PoolSettings.write_timeout``) is not the
  one the reader sets: an agent that stops reading fails the connection
  (status 2) instead of blocking it forever.  The fragments of a NOTIFY go out
  one by one; a stream that gives up part-way gets HAProxy's final FIN|ABORT
  frame instead of the rest (docs/explanation/haproxy-behaviour.md §2.4);
* a slot counter holds the frames this connection may still take:
  ``max-waiting-frames`` in pipelining and async mode, 1 in sync mode.

An applet decides nothing about frames or slots: it reports what happened
through the small :class:`AppletListener` interface (the pool implements it
and hands each report to the bookkeeping, ``poolstate.py``), and it never
imports the pool.  Every way a connection can end is turned into one SPOP
status, reported once (``applet_closed``), *before* anything else that may
yield: from then on no stream can be handed this connection, and every frame it
held has its status.

=====================================  ==========================================
what happened                           status (stream status is 256 + it, except)
=====================================  ==========================================
connect refused / failed / timed out    stream status 2 (no applet could be had)
agent closed, reset, I/O error          1
``timeout hello`` / ``timeout idle``    2 (idle: our DISCONNECT 2 is sent)
a write blocked past its deadline       2 (the agent stopped reading)
backend ``timeout server`` (idle)       1 (our DISCONNECT 1 is sent)
agent broke SPOP (bad HELLO, garbage)   the code of our DISCONNECT (3, 4, 8, 9, 12 ...)
AGENT-DISCONNECT                        the agent's status-code
=====================================  ==========================================
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import gevent

from ..errors import LocalProtocolError, RemoteProtocolError
from ..protocol.connection import (
    NEED_DATA,
    AckReceived,
    AgentDisconnected,
    ConnectionClosed,
    EngineConnection,
    HelloDone,
)
from . import log
from .applet_writer import AppletWriter
from .connect import Connector, default_connect
from .poolstate import AppletState, Link

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .balance import ServerState
    from .settings import PoolSettings
    from .waiting import FrameRequest

__all__ = ["Applet", "AppletListener", "AppletState", "Connector", "default_connect"]

_RECV_SIZE = 256 * 1024
#: Sync mode: how long a connection waits for the late ACK of a frame that timed
#: out before it is closed (the bookkeeping holds its slot meanwhile).
SYNC_HOLD = 5.0
#: How long we keep reading after our own DISCONNECT, for the agent's reply.
_LINGER = 0.5

_READY = AppletState.READY
_CLOSED = AppletState.CLOSED


class AppletListener(Protocol):
    """What an applet reports, and to whom (the pool)."""

    def applet_ready(self, applet: Applet, mode: str, capacity: int) -> None: ...
    def frames_written(self, applet: Applet, requests: Iterable[FrameRequest],
                       now: float) -> None: ...
    def ack_received(self, applet: Applet, event: AckReceived) -> None: ...
    def applet_closed(self, applet: Applet, status: int | None, error: str,
                      failure: bool) -> None: ...


def _code(status: int | None) -> int:
    """An AGENT-DISCONNECT without a readable status-code counts as 99 (unknown)."""
    return 99 if status is None else status


class _CloseRequest(Exception):
    """Thrown into the reader greenlet by :meth:`Applet.close`."""


class _IdleExpired(Exception):
    """Thrown into the reader greenlet, blocked in ``recv``, by its idle timer."""


class Applet:
    """One connection to one agent server: the I/O of one :class:`Link`.

    :param link: its bookkeeping (``link.io`` is set to the applet).
    :param listener: where it reports (the pool).
    :param ack_cache: the decoded action lists the engine's connections share
        (``EngineConnection``'s ``ack_cache``).
    """

    # One per agent connection, hundreds of them alive: slots, not a dict each.
    __slots__ = ("_close_status", "_hold_timer", "_idle_timer", "_reading", "_started",
                 "close_status", "conn", "connector", "last_activity", "link", "listener",
                 "reader", "settings", "sock", "writer")

    def __init__(self, link: Link, listener: AppletListener, settings: PoolSettings,
                 engine_id: str, connector: Connector,
                 ack_cache: dict[bytes, Any] | None = None) -> None:
        self.link = link
        link.io = self
        self.listener = listener
        self.settings = settings
        self.connector = connector
        self.conn = EngineConnection(
            max_frame_size=settings.max_frame_size, pipelining=settings.pipelining,
            async_=settings.async_, send_frag_payload=settings.send_frag_payload,
            engine_id=engine_id, max_ack_size=settings.max_ack_size,
            max_ack_actions=settings.max_ack_actions, ack_cache=ack_cache)
        self.writer = AppletWriter(self)
        self.sock: Any = None
        self.last_activity = time.monotonic()
        self.close_status: int | None = None
        self._started = False
        self._close_status = 0
        self._hold_timer: gevent.Greenlet[..., Any] | None = None
        #: ``timeout idle`` once READY: one libev timer, re-armed lazily (see _idle_check)
        self._idle_timer: Any = None
        #: the reader is blocked in the READY loop's ``recv`` (the only place
        #: the idle timer may throw into it)
        self._reading = False
        self.reader = gevent.spawn(self._run)

    # ------------------------------------------------------------------ views of the link

    @property
    def state(self) -> AppletState:
        return self.link.state

    @property
    def mode(self) -> str | None:
        return self.link.mode

    @property
    def server(self) -> ServerState:
        return self.link.server

    @property
    def ident(self) -> int:
        return self.link.ident

    @property
    def free(self) -> int:
        """Frames this applet can still take now (0 unless READY)."""
        return self.link.free if self.link.state is _READY else 0

    # ------------------------------------------------------------------ the pool's orders

    def submit(self, request: FrameRequest) -> int:
        """Queue ``request``'s NOTIFY for writing (its slot is already taken);
        returns 0, or the stream status when it cannot go out on this
        connection (3: too big to send)."""
        try:
            frames = self.conn.send_notify(request.stream_id, request.frame_id, request.payload)
        except LocalProtocolError as exc:
            request.error = str(exc)
            return 3 if exc.status == 3 else 256 + exc.status
        writer = self.writer
        if len(frames) > 1:
            request.fragmented = True
            writer.frags.append((request, frames))
            writer.wake.set()
            return 0
        out = writer.out
        if not out:
            # The writer empties out after each wake-up: the first frame of a
            # batch wakes it, the others of the same loop iteration join it.
            writer.wake.set()
        out.append(frames[0])
        writer.requests.append(request)
        return 0

    def abandoned(self, request: FrameRequest) -> None:
        """``request`` left this connection without its ACK (its stream gave
        up, or its ACK came on another async connection): tell the sans-IO
        connection to forget it, cut a fragmented send short with FIN|ABORT,
        and in sync mode wait for the late ACK of a held slot."""
        link = self.link
        if link.state is not _READY:
            return
        key = request.key
        if link.held == key:
            self._hold_timer = gevent.spawn_later(SYNC_HOLD, self._hold_expired, key)
            return
        writer = self.writer
        if writer.fragmenting == key:
            return  # the writer sends the FIN|ABORT itself
        for item in writer.frags:
            if item[0] is request:
                writer.frags.remove(item)
                self.conn.abandon(request.stream_id, request.frame_id)
                return
        try:
            data = self.conn.abandon(request.stream_id, request.frame_id)
        except Exception:  # a sans-IO bug must not kill the stream
            data = b""
        if data:
            writer.out.append(data)
            writer.wake.set()

    def _hold_expired(self, key: tuple[int, int]) -> None:
        if self.link.held == key and self.link.state is _READY:
            self.close(2)

    def forget(self) -> None:
        """After a fork: stop this copy of the applet without a word to the agent
        or to the pool (the parent process still owns the connection)."""
        self.link.state = _CLOSED
        self.writer.kill()
        for greenlet in (self._hold_timer, self.reader):
            if greenlet is not None and greenlet is not gevent.getcurrent():
                greenlet.kill(block=False)

    def close(self, status: int = 0) -> None:
        """Send HAPROXY-DISCONNECT ``status`` and close (pool shutdown).  The
        reader greenlet does it, so that only it ever reads the socket."""
        if self.link.state is _CLOSED:
            return
        self._close_status = status
        if not self._started:
            self.reader.kill(block=False)
            self.end(None, "applet closed before it started", failure=False)
            return
        self.reader.kill(_CloseRequest, block=False)

    # ------------------------------------------------------------------ the reader greenlet

    def _run(self) -> None:
        self._started = True
        try:
            if self._connect() and self._handshake():
                self._read_loop()
        except _CloseRequest:
            ready = self.link.state is _READY
            self.end(self._close_status if ready else None, "closed by the engine",
                     failure=False, disconnect=ready)
        except gevent.GreenletExit:
            self.end(1, "applet killed", failure=False)
        except Exception as exc:  # never let a bug leave frames hanging
            log.internal_error("an applet's reader", exc)
            self.end(99, f"internal error: {exc!r}", failure=True)
        finally:
            self._stop_idle_timer()
            self._close_socket()

    def _connect(self) -> bool:
        server = self.link.server
        try:
            self.sock = self.connector(server, self.settings.connect_timeout)
        except (OSError, gevent.Timeout) as exc:
            self.end(None, f"connect to {server.address} failed: {exc}", failure=True)
            return False
        self.link.state = AppletState.HELLO
        return True

    def _handshake(self) -> bool:
        deadline = time.monotonic() + self.settings.hello_timeout
        try:
            self.sock.sendall(self.conn.initiate())
        except OSError as exc:
            self.end(1, f"I/O error sending HAPROXY-HELLO: {exc}", failure=True)
            return False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # HAProxy closes without DISCONNECT on a hello timeout.
                self.end(2, "timeout hello: no AGENT-HELLO", failure=True)
                return False
            data = self._recv(remaining)
            if data is None:
                continue
            if isinstance(data, OSError):
                self.end(1, f"I/O error during the handshake: {data}", failure=True)
                return False
            self.conn.receive_data(data)
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                self.end(exc.status, f"invalid AGENT-HELLO: {exc.message}", failure=True,
                         disconnect=True)
                return False
            if event is NEED_DATA:
                if not data:
                    self.end(1, "agent closed the connection during the handshake", failure=True)
                    return False
                continue
            if isinstance(event, HelloDone):
                settings = self.settings
                capacity = 1 if event.mode == "sync" else (
                    settings.max_waiting_frames if (settings.pipelining or settings.async_) else 1)
                self.last_activity = time.monotonic()
                self.writer.start()
                self.listener.applet_ready(self, event.mode, capacity)
                return True
            if isinstance(event, AgentDisconnected):
                self.end(_code(event.status_code), f"agent disconnected at hello: {event.message}",
                         failure=True)
                return False
            self.end(1, "agent closed the connection during the handshake", failure=True)
            return False

    def _recv(self, timeout: float | None) -> bytes | OSError | None:
        """One read: bytes (b"" at EOF), the OSError, or None on timeout."""
        try:
            self.sock.settimeout(timeout)
            data: bytes = self.sock.recv(_RECV_SIZE)
            return data
        except TimeoutError:
            return None
        except OSError as exc:
            return exc

    def _read_loop(self) -> None:
        settings = self.settings
        idle = settings.idle_timeout
        conn = self.conn
        link = self.link
        on_ack = self.listener.ack_received
        # Reads block without a socket timeout: gevent's recv() under one
        # builds, starts and closes a Timeout every time it waits (once per
        # batch of ACKs).  ``timeout idle`` is one timer instead (_idle_check).
        sock = self.sock
        sock.settimeout(None)
        recv = sock.recv
        eof = False
        while link.state is _READY:
            # Events already buffered first (an AGENT-DISCONNECT that came in
            # the AGENT-HELLO's segment, a batch of ACKs), before blocking.
            while True:
                try:
                    event = conn.next_event()
                except RemoteProtocolError as exc:
                    self.end(exc.status, exc.message, failure=True, disconnect=True)
                    return
                if event is NEED_DATA:
                    break
                if type(event) is AckReceived:
                    on_ack(self, event)
                elif isinstance(event, AgentDisconnected):
                    self.end(_code(event.status_code), f"agent disconnected: {event.message}",
                             failure=True)
                    return
                elif isinstance(event, ConnectionClosed):
                    self.end(1, "agent closed the connection", failure=True)
                    return
            if eof:
                self.end(1, "agent closed the connection", failure=True)
                return
            if link.state is not _READY:
                return
            if idle is not None:
                remaining = self.last_activity + idle - time.monotonic()
                if remaining <= 0:
                    busy = bool(link.inflight)
                    self.end(settings.idle_status, "timeout idle", failure=busy, disconnect=True)
                    return
                if self._idle_timer is None:
                    self._arm_idle(remaining)
            self._reading = True
            try:
                data = recv(_RECV_SIZE)
            except _IdleExpired:
                continue  # the check above ends the connection
            except OSError as exc:
                self.end(1, f"I/O error: {exc}", failure=True)
                return
            finally:
                self._reading = False
            self.last_activity = time.monotonic()
            conn.receive_data(data)
            eof = not data

    def _arm_idle(self, seconds: float) -> None:
        timer = gevent.get_hub().loop.timer(seconds)
        timer.start(self._idle_check)
        self._idle_timer = timer

    def _idle_check(self) -> None:
        """The idle timer fired (in the hub).  It was armed for the idle
        deadline of the last activity then known; any frame sent or received
        since moved that deadline, so the timer is re-armed for the rest
        instead of being restarted at every frame.  Past the deadline on the
        real clock (libev's cached one may fire early), a reader blocked in
        ``recv`` is woken to end the connection; a reader elsewhere meets
        the deadline before it reads again (and arms a new timer if not)."""
        self._stop_idle_timer()
        idle = self.settings.idle_timeout
        if idle is None or self.link.state is not _READY:
            return
        remaining = self.last_activity + idle - time.monotonic()
        if remaining > 0:
            self._arm_idle(remaining)
        elif self._reading:
            self.reader.throw(_IdleExpired)

    def _stop_idle_timer(self) -> None:
        timer, self._idle_timer = self._idle_timer, None
        if timer is not None:
            timer.close()

    # ------------------------------------------------------------------ the end

    def end(self, status: int | None, error: str, *, failure: bool,
            disconnect: bool = False) -> None:
        """Close the connection with SPOP ``status`` (None: it never opened).

        The pool hears of it first, before anything here yields: a stream
        picking this connection while its writer stopped once got status 255,
        and a frame handed to it then was never written nor failed.  Then the
        writer stops, and if we send a DISCONNECT we linger a little for the
        agent's reply, as HAProxy does."""
        if self.link.state is _CLOSED:
            return
        self.close_status = status
        self.writer.discard()
        self.listener.applet_closed(self, status, error, failure)
        self.link.state = _CLOSED  # even if the listener failed to say so
        hold = self._hold_timer
        if hold is not None and hold is not gevent.getcurrent():
            hold.kill(block=False)
        self.writer.stop()
        if disconnect and self.sock is not None and status is not None:
            try:
                self.sock.settimeout(_LINGER)
                self.sock.sendall(self.conn.disconnect(status))
            except Exception:  # the peer may be gone already
                disconnect = False
        if disconnect:
            self._linger()
        self._close_socket()

    def _linger(self) -> None:
        deadline = time.monotonic() + _LINGER
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            data = self._recv(remaining)
            if not data or isinstance(data, OSError):
                return

    def _close_socket(self) -> None:
        self.writer.close_socket()
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass

    def __repr__(self) -> str:
        link = self.link
        return (f"<Applet #{link.ident} {link.server.name} {link.state.value} {link.mode} "
                f"[frames: {len(link.inflight)} in flight, {self.free} free]>")
