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

Every way a connection can end is turned into one SPOP status, handed to the
pool, which decides what the frames in flight get (:meth:`AppletPool._on_applet_closed`):

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
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from gevent import socket
from gevent.event import Event

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
from .applet_writer import AppletState, AppletWriter
from .waiting import FrameRequest, RequestState

_ASSIGNED = RequestState.ASSIGNED

if TYPE_CHECKING:
    from .balance import ServerState
    from .pool import AppletPool

__all__ = ["Applet", "AppletState", "Connector", "default_connect"]

#: ``connect(server, timeout) -> socket``: how applets open their connection.
Connector = Callable[["ServerState", "float | None"], Any]

_RECV_SIZE = 256 * 1024
#: Sync mode: how long a connection waits for the late ACK of a frame that timed
#: out before it is closed (see :meth:`Applet.release`).
SYNC_HOLD = 5.0
#: How long we keep reading after our own DISCONNECT, for the agent's reply.
_LINGER = 0.5


def default_connect(server: ServerState, timeout: float | None) -> Any:
    """Open a TCP (TCP_NODELAY) or unix stream socket to ``server``."""
    if server.family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(server.sockaddr)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection(server.sockaddr, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - e.g. a socketpair-based test transport
        pass
    return sock


def _code(status: int | None) -> int:
    """An AGENT-DISCONNECT without a readable status-code counts as 99 (unknown)."""
    return 99 if status is None else status


class _CloseRequest(Exception):
    """Thrown into the reader greenlet by :meth:`Applet.close`."""


_READY = AppletState.READY


class Applet(AppletWriter):
    """One connection to one agent server, owned by an :class:`AppletPool`."""

    def __init__(self, pool: AppletPool, server: ServerState, ident: int) -> None:
        self.pool = pool
        self.server = server
        self.ident = ident
        self.state = AppletState.CONNECTING
        cfg = pool.settings
        self.conn = EngineConnection(
            max_frame_size=cfg.max_frame_size, pipelining=cfg.pipelining, async_=cfg.async_,
            send_frag_payload=cfg.send_frag_payload, engine_id=pool.engine_id)
        self.mode: str | None = None  # known after the handshake
        self.capacity = cfg.max_waiting_frames if (cfg.pipelining or cfg.async_) else 1
        # Frames this connection may still take (set at the handshake).  A plain
        # counter: nothing ever blocks on it, the pool only asks "is one free?".
        self._free = 0
        self.inflight: dict[tuple[int, int], FrameRequest] = {}
        self.acks = 0
        #: NOTIFY frames written on this connection (the last fragment counts)
        self.written = 0
        self.sock: Any = None
        self.last_activity = time.monotonic()
        self.close_status: int | None = None
        self._out: list[bytes] = []
        self._out_requests: list[FrameRequest] = []
        # Fragmented NOTIFYs, written one frame at a time by the writer.
        self._frags: deque[tuple[FrameRequest, list[bytes]]] = deque()
        self._fragmenting: tuple[int, int] | None = None
        self._wsock: Any = None
        self._wake = Event()
        self._writer: gevent.Greenlet[..., Any] | None = None
        self._started = False
        self._close_status = 0
        self.held: tuple[int, int] | None = None
        self._hold_timer: gevent.Greenlet[..., Any] | None = None
        self._server_name = server.name
        self.reader = gevent.spawn(self._run)

    # ------------------------------------------------------------------ pool side

    @property
    def free(self) -> int:
        """Frames this applet can still take now (0 unless READY)."""
        if self.state is not AppletState.READY:
            return 0
        return self._free

    def submit(self, request: FrameRequest) -> int:
        """Queue ``request``'s NOTIFY for writing; returns 0, or the stream status
        when it cannot go out on this connection (3: too big to send)."""
        if self._free <= 0 or self.state is not _READY:
            # The pool only picks applets with a free slot: this is a bug.
            request.error = f"{self!r} has no free slot"
            return 255
        try:
            frames = self.conn.send_notify(request.stream_id, request.frame_id, request.payload)
        except LocalProtocolError as exc:
            self.pool._slot_freed(self)
            request.error = str(exc)
            return 3 if exc.status == 3 else 256 + exc.status
        self._free -= 1
        request.applet = self
        request.server = self._server_name
        request.state = _ASSIGNED
        self.inflight[request.key] = request
        if len(frames) > 1:
            self._frags.append((request, frames))
            self._wake.set()
            return 0
        out = self._out
        if not out:
            # The writer empties _out after each wake-up: the first frame of a
            # batch wakes it, the others of the same loop iteration join it.
            self._wake.set()
        out.append(frames[0])
        self._out_requests.append(request)
        return 0

    def _give_slot(self) -> None:
        if self._free < self.capacity:
            self._free += 1
        self.pool._slot_freed(self)

    def release(self, request: FrameRequest, *, abandon: bool = False) -> None:
        """The frame's slot is free again (ACK, timeout, or ACK on another
        connection in async mode); ``abandon`` also tells the sans-IO connection
        to forget it (and cut a fragmented send short with FIN|ABORT)."""
        if self.inflight.pop(request.key, None) is None:
            return
        if abandon and self._frags_release(request):
            return
        if abandon and self.mode == "sync" and self.state is AppletState.READY:
            # HAProxy frees the slot at once, and a late ACK then arriving while
            # the next NOTIFY waits kills the connection with status 12.  We keep
            # the slot until the late ACK (or SYNC_HOLD seconds) instead.
            self.held = request.key
            self._hold_timer = gevent.spawn_later(SYNC_HOLD, self._hold_expired, request.key)
            return
        if abandon and self.state is not AppletState.CLOSED:
            try:
                data = self.conn.abandon(request.stream_id, request.frame_id)
            except Exception:  # a sans-IO bug must not kill the stream
                data = b""
            if data:
                self._out.append(data)
                self._wake.set()
        if self.mode is not None:
            self._give_slot()

    def _frags_release(self, request: FrameRequest) -> bool:
        """An abandoned fragmented NOTIFY not fully written: the writer, mid-way
        through it, sends the FIN|ABORT frame and frees the slot itself; one it
        has not started is dropped here.  False for any other frame."""
        key = request.key
        if key == self._fragmenting:
            return True
        for item in self._frags:
            if item[0] is request:
                self._frags.remove(item)
                self.conn.abandon(request.stream_id, request.frame_id)
                if self.mode is not None:
                    self._give_slot()
                return True
        return False

    def _unhold(self) -> None:
        self.held = None
        if self._hold_timer is not None:
            self._hold_timer.kill(block=False)
            self._hold_timer = None
        if self.mode is not None:
            self._give_slot()
        if self.pool._nb_queued:
            self.pool._assign()

    def _hold_expired(self, key: tuple[int, int]) -> None:
        if self.held == key and self.state is AppletState.READY:
            self.close(2)

    def forget(self) -> None:
        """After a fork: stop this copy of the applet without a word to the agent
        or to the pool (the parent process still owns the connection)."""
        self.state = AppletState.CLOSED
        for greenlet in (self._hold_timer, self._writer, self.reader):
            if greenlet is not None and greenlet is not gevent.getcurrent():
                greenlet.kill(block=False)

    def close(self, status: int = 0) -> None:
        """Send HAPROXY-DISCONNECT ``status`` and close (pool shutdown).  The
        reader greenlet does it, so that only it ever reads the socket."""
        if self.state is AppletState.CLOSED:
            return
        self._close_status = status
        if not self._started:
            self.reader.kill(block=False)
            self._end(None, "applet closed before it started", failure=False)
            return
        self.reader.kill(_CloseRequest, block=False)

    # ------------------------------------------------------------------ the reader greenlet

    def _run(self) -> None:
        self._started = True
        try:
            if self._connect() and self._handshake():
                self._read_loop()
        except _CloseRequest:
            ready = self.state is AppletState.READY
            self._end(self._close_status if ready else None, "closed by the engine",
                      failure=False, disconnect=ready)
        except gevent.GreenletExit:
            self._end(1, "applet killed", failure=False)
        except Exception as exc:  # never let a bug leave frames hanging
            log.internal_error("an applet's reader", exc)
            self._end(99, f"internal error: {exc!r}", failure=True)
        finally:
            self._close_socket()

    def _connect(self) -> bool:
        pool = self.pool
        self.server.connect_attempts += 1
        try:
            self.sock = pool.connector(self.server, pool.settings.connect_timeout)
        except (OSError, gevent.Timeout) as exc:
            self._end(None, f"connect to {self.server.address} failed: {exc}", failure=True)
            return False
        self.state = AppletState.HELLO
        return True

    def _handshake(self) -> bool:
        settings = self.pool.settings
        deadline = time.monotonic() + settings.hello_timeout
        try:
            self.sock.sendall(self.conn.initiate())
        except OSError as exc:
            self._end(1, f"I/O error sending HAPROXY-HELLO: {exc}", failure=True)
            return False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # HAProxy closes without DISCONNECT on a hello timeout.
                self._end(2, "timeout hello: no AGENT-HELLO", failure=True)
                return False
            data = self._recv(remaining)
            if data is None:
                continue
            if isinstance(data, OSError):
                self._end(1, f"I/O error during the handshake: {data}", failure=True)
                return False
            self.conn.receive_data(data)
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                self._end(exc.status, f"invalid AGENT-HELLO: {exc.message}", failure=True,
                          disconnect=True)
                return False
            if event is NEED_DATA:
                if not data:
                    self._end(1, "agent closed the connection during the handshake", failure=True)
                    return False
                continue
            if isinstance(event, HelloDone):
                self.mode = event.mode
                if self.mode == "sync":
                    self.capacity = 1
                self._free = self.capacity
                self.state = AppletState.READY
                self.last_activity = time.monotonic()
                self._writer = gevent.spawn(self._write_loop)
                self.pool._on_applet_ready(self)
                return True
            if isinstance(event, AgentDisconnected):
                self._end(_code(event.status_code), f"agent disconnected at hello: {event.message}",
                          failure=True)
                return False
            self._end(1, "agent closed the connection during the handshake", failure=True)
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
        settings = self.pool.settings
        idle = settings.idle_timeout
        conn = self.conn
        on_ack = self.pool._on_ack
        eof = False
        while self.state is AppletState.READY:
            # Events already buffered first (an AGENT-DISCONNECT that came in
            # the AGENT-HELLO's segment, a batch of ACKs), before blocking.
            while True:
                try:
                    event = conn.next_event()
                except RemoteProtocolError as exc:
                    self._end(exc.status, exc.message, failure=True, disconnect=True)
                    return
                if event is NEED_DATA:
                    break
                if type(event) is AckReceived:
                    self.acks += 1
                    held = self.held
                    if held is not None and event.ack.stream_id == held[0] \
                            and event.ack.frame_id == held[1]:
                        self._unhold()
                    else:
                        on_ack(self, event)
                elif isinstance(event, AgentDisconnected):
                    self._end(_code(event.status_code), f"agent disconnected: {event.message}",
                              failure=True)
                    return
                elif isinstance(event, ConnectionClosed):
                    self._end(1, "agent closed the connection", failure=True)
                    return
            if eof:
                self._end(1, "agent closed the connection", failure=True)
                return
            if self.state is not AppletState.READY:
                return
            timeout = None
            if idle is not None:
                timeout = self.last_activity + idle - time.monotonic()
                if timeout <= 0:
                    busy = bool(self.inflight)
                    self._end(settings.idle_status, "timeout idle", failure=busy, disconnect=True)
                    return
            data = self._recv(timeout)
            if data is None:
                continue
            if isinstance(data, OSError):
                self._end(1, f"I/O error: {data}", failure=True)
                return
            self.last_activity = time.monotonic()
            conn.receive_data(data)
            eof = not data

    # ------------------------------------------------------------------ the end

    def _end(self, status: int | None, error: str, *, failure: bool,
             disconnect: bool = False) -> None:
        """Close the connection with SPOP ``status`` (None: it never opened) and
        tell the pool; then, if we sent a DISCONNECT, linger a little for the
        agent's reply as HAProxy does."""
        if self.state is AppletState.CLOSED:
            return
        was = self.state
        self.state = AppletState.CLOSED
        self.close_status = status
        self._wake.set()
        writer = self._writer
        if self._hold_timer is not None and self._hold_timer is not gevent.getcurrent():
            self._hold_timer.kill(block=False)
        if writer is not None and writer is not gevent.getcurrent():
            # Only one greenlet may write: stop the writer before our DISCONNECT.
            writer.kill(block=True, timeout=1.0)
        if disconnect and self.sock is not None and status is not None:
            try:
                self.sock.settimeout(_LINGER)
                self.sock.sendall(self.conn.disconnect(status))
            except Exception:  # the peer may be gone already
                disconnect = False
        self.pool._on_applet_closed(self, status, error, failure=failure, was=was)
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
        wsock, self._wsock = self._wsock, None
        if wsock is not None:
            try:
                wsock.close()
            except OSError:  # pragma: no cover
                pass
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass

    def __repr__(self) -> str:
        return (f"<Applet #{self.ident} {self.server.name} {self.state.value} {self.mode} "
                f"[frames: {len(self.inflight)} in flight, {self.free} free]>")
