"""Write a SPOA (an SPOP agent) on gevent: :class:`Agent`.

The agent end of SPOE.txt §3, on the sans-IO
:class:`~spoe_sync.protocol.AgentConnection`::

    from spoe_sync.agent import Agent
    from spoe_sync.protocol import SetVar, VarScope

    agent = Agent("iprep-agent")

    @agent.message("get-ip-reputation")
    def get_ip_reputation(message, request):
        return [SetVar(VarScope.SESS, "ip_score", 42)]

    server = agent.start("127.0.0.1", 12345)   # running; server.address, server.stop()
    agent.serve("127.0.0.1", 12345)            # or: block until SIGINT/SIGTERM

How it runs: one reader greenlet per connection; each NOTIFY is handled in a
greenlet of a bounded pool, so in pipelining and async modes the ACKs go out in
the order the handlers finish.  Writes on a connection are serialized and the
sockets have TCP_NODELAY.  In async mode connections are grouped by engine-id,
and an ACK whose connection died goes out on another live connection of the
same engine (SPOE.txt §3.2.1 "async").  A handler that raises gives an ACK
without actions and a log line; it never ends the connection.  Health checks
get the AGENT-HELLO and a close; a HAPROXY-DISCONNECT gets an AGENT-DISCONNECT
and a close; a frame that breaks SPOP gets an AGENT-DISCONNECT with its status.

Handlers run in greenlets: code that blocks without yielding to gevent blocks
every connection.  The library never monkey-patches.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import socket
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Pool
from gevent.server import StreamServer

from .errors import LocalProtocolError, RemoteProtocolError
from .protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    Action,
    ConnectionClosed,
    Message,
    SetVar,
    UnsetVar,
)
from .protocol.agent_connection import (
    AgentConnection,
    AgentConnectionState,
    HaproxyDisconnected,
    HaproxyHelloReceived,
    NotifyReceived,
)

__all__ = ["Agent", "AgentServer", "Handler", "Request"]

log = logging.getLogger("spoe_sync.agent")

Handler = Callable[[Message, "Request"], "Iterable[Action] | None"]

#: Seconds an engine has to send its HAPROXY-HELLO after connecting.
DEFAULT_HELLO_TIMEOUT = 10.0
#: Handlers running at once, server-wide.
DEFAULT_CONCURRENCY = 1000
_RECV_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler knows about the NOTIFY it serves.

    :attr stream_id/frame_id: the ids the ACK repeats.
    :attr engine_id: the engine's ``engine-id`` (None if it sent none).
    :attr messages: every message of the NOTIFY, in order.
    :attr mode: ``"sync"``, ``"pipelining"`` or ``"async"``.
    :attr peer: the engine's address, ``"host:port"``.
    """

    stream_id: int
    frame_id: int
    engine_id: str | None
    messages: tuple[Message, ...]
    mode: str
    peer: str


class Agent:
    """A SPOP agent: message handlers plus what its AGENT-HELLO announces.

    :param name: used in log lines.
    :param capabilities: any of ``pipelining``, ``async``, ``fragmentation``
        (kept only when the engine has them too, except fragmentation).
    :param max_frame_size: the largest frame accepted (the AGENT-HELLO
        announces the smaller of it and the engine's).
    :param concurrency: handlers running at once, server-wide.
    :param hello_timeout: seconds an engine has to send its HELLO.
    """

    def __init__(self, name: str = "agent", *,
                 capabilities: Sequence[str] = ("pipelining", "async"),
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 concurrency: int = DEFAULT_CONCURRENCY,
                 hello_timeout: float = DEFAULT_HELLO_TIMEOUT) -> None:
        unknown = set(capabilities) - {"pipelining", "async", "fragmentation"}
        if unknown:
            raise ValueError(f"unknown capabilities: {', '.join(sorted(unknown))}")
        AgentConnection(max_frame_size)  # validates the size now, not at the first connection
        self.name = name
        self.capabilities = tuple(capabilities)
        self.max_frame_size = max_frame_size
        self.concurrency = max(int(concurrency), 1)
        self.hello_timeout = hello_timeout
        self.handlers: dict[str, Handler] = {}

    def __repr__(self) -> str:
        return f"<Agent {self.name} messages={sorted(self.handlers)} capabilities={self.capabilities}>"

    def message(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator: ``handler(message, request)`` answers messages called ``name``."""
        def register(handler: Handler) -> Handler:
            self.handlers[name] = handler
            return handler
        return register

    def handle(self, request: Request) -> list[Action]:
        """The actions of one NOTIFY: those of every message with a handler, in
        order.  Messages without a handler are ignored; if a handler raises, the
        NOTIFY gets no action at all (logged)."""
        actions: list[Action] = []
        for message in request.messages:
            handler = self.handlers.get(message.name)
            if handler is None:
                continue
            try:
                result = handler(message, request)
                if result is not None:
                    for action in result:
                        if not isinstance(action, (SetVar, UnsetVar)):
                            raise TypeError(f"a handler returns SetVar/UnsetVar, not {action!r}")
                        actions.append(action)
            except Exception:
                log.exception("%s: handler of message '%s' failed (stream %d, frame %d); "
                              "ACK without actions", self.name, message.name,
                              request.stream_id, request.frame_id)
                return []
        return actions

    def start(self, host: str = "127.0.0.1", port: int = 0) -> AgentServer:
        """Listen on ``host:port`` (0: a free port) and return the running server."""
        server = AgentServer(self, host, port)
        server.start()
        return server

    def serve(self, host: str = "127.0.0.1", port: int = 12345, *, signals: bool = True,
              stop_timeout: float = 5.0) -> None:
        """Listen and block until SIGINT, SIGTERM or SIGHUP (when ``signals`` and in
        the main thread), then stop gracefully: stop accepting, let running handlers
        finish (``stop_timeout`` at most), disconnect every engine.  SIGHUP is a stop,
        not a reload (its default action would kill the agent at once when the
        terminal that started it closes).

        :raises OSError: the address cannot be listened on (in use, not local); nothing
            was started then.
        """
        server = AgentServer(self, host, port)
        handlers = []
        if signals and threading.current_thread() is threading.main_thread():
            # Installed before listening: a signal right after start-up still stops gracefully.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                handlers.append(gevent.signal_handler(signum, server.request_stop))
        started = False
        try:
            server.start()
            started = True
            log.info("%s: listening on %s", self.name, server.address)
            server.wait()
        finally:
            for handler in handlers:
                handler.cancel()
            server.stop(stop_timeout if started else 0)
            if started:  # after a failed start, "stopped" would mislead
                log.info("%s: stopped", self.name)


class AgentServer:
    """A running :class:`Agent` (see :meth:`Agent.start`)."""

    def __init__(self, agent: Agent, host: str, port: int) -> None:
        self.agent = agent
        self._host = host
        self._server = StreamServer((host, port), self._accept)
        self._pool = Pool(agent.concurrency)
        self._sessions: set[_Session] = set()
        #: engine-id -> its live async connections (SPOE.txt §3.2.1).
        self._groups: dict[str, set[_Session]] = {}
        self._stop_requested = Event()
        self._stopped = False
        #: Connections accepted, NOTIFY frames received, ACKs written, and
        #: connections ended because the engine broke SPOP.
        self.connections = 0
        self.notifies = 0
        self.acks = 0
        self.errors = 0

    def __repr__(self) -> str:
        return (f"<AgentServer {self.agent.name} {self.address} active={len(self._sessions)} "
                f"notifies={self.notifies} acks={self.acks}>")

    def __enter__(self) -> AgentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.address[1])

    @property
    def address(self) -> str:
        """``"host:port"`` as a backend's server list takes it."""
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"{host}:{self.port}"

    @property
    def active(self) -> int:
        """Connections open right now."""
        return len(self._sessions)

    def start(self) -> None:
        """Start listening (:meth:`Agent.start` does it)."""
        self._server.start()

    def request_stop(self) -> None:
        """Make :meth:`wait` return (safe from a signal handler)."""
        self._stop_requested.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`request_stop` or :meth:`stop`; True if it came."""
        return bool(self._stop_requested.wait(timeout))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running handlers finish and send their ACKs
        (``timeout`` seconds at most), then send AGENT-DISCONNECT (status 0) on
        every connection and close it."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        self._server.close()
        deadline = time.monotonic() + timeout
        if not self._pool.join(timeout=max(deadline - time.monotonic(), 0)):
            log.warning("%s: handlers still running after %.1fs; killed", self.agent.name, timeout)
            self._pool.kill(block=True, timeout=1.0)
        for session in list(self._sessions):
            session.shutdown(0, "agent stopping")
        self._server.stop(timeout=max(deadline - time.monotonic(), 0.1))

    # ------------------------------------------------------------------ sessions

    def _accept(self, sock: Any, address: Any) -> None:
        if self._stopped:
            sock.close()
            return
        self.connections += 1
        session = _Session(self, sock, address)
        self._sessions.add(session)
        try:
            session.run()
        finally:
            self._sessions.discard(session)
            self._leave_group(session)

    def _join_group(self, session: _Session) -> None:
        if session.conn.mode == "async" and session.conn.engine_id is not None:
            self._groups.setdefault(session.conn.engine_id, set()).add(session)

    def _leave_group(self, session: _Session) -> None:
        engine_id = session.conn.engine_id
        group = self._groups.get(engine_id) if engine_id is not None else None
        if engine_id is not None and group is not None:
            group.discard(session)
            if not group:
                del self._groups[engine_id]

    def _process(self, session: _Session, request: Request) -> None:
        actions = self.agent.handle(request)
        for target in self._targets(session):
            if target.send_ack(request.stream_id, request.frame_id, actions, origin=session):
                self.acks += 1
                return
        log.info("%s: no live connection of engine %s for the ACK of (%d, %d)", self.agent.name,
                 request.engine_id, request.stream_id, request.frame_id)

    def _targets(self, session: _Session) -> list[_Session]:
        """Where the ACK may go: its own connection first, then (async) any
        other live connection of the same engine."""
        targets = [session]
        engine_id = session.conn.engine_id
        if session.conn.mode == "async" and engine_id is not None:
            targets += [s for s in self._groups.get(engine_id, ()) if s is not session]
        return targets


class _Session:
    """One engine connection: the reader loop and serialized writes."""

    def __init__(self, server: AgentServer, sock: Any, address: Any) -> None:
        self.server = server
        self.sock = sock
        self.peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        agent = server.agent
        self.conn = AgentConnection(agent.max_frame_size)
        self._write_lock = Semaphore()
        self.alive = True

    def run(self) -> None:
        agent = self.server.agent
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - unix sockets
            pass
        try:
            with gevent.Timeout(agent.hello_timeout, False):  # type: ignore[arg-type]
                if not self._handshake():
                    return
                self.server._join_group(self)
            if self.conn.state is not AgentConnectionState.READY:
                log.info("%s: %s sent no HAPROXY-HELLO within %.1fs", agent.name, self.peer,
                         agent.hello_timeout)
                self.shutdown(2, None)
                return
            self._read_loop()
        except OSError as exc:
            log.debug("%s: %s: %s", agent.name, self.peer, exc)
        finally:
            self._close()

    def _next_event(self) -> Any:
        """The next event, reading as needed; a protocol error is answered here
        (AGENT-DISCONNECT with its status) and returns None."""
        while True:
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                self.server.errors += 1
                log.warning("%s: %s broke SPOP (status %d): %s", self.server.agent.name, self.peer,
                            exc.status, exc.message)
                self._write(self.conn.disconnect(exc.status))
                return None
            if event is not NEED_DATA:
                return event
            data = self.sock.recv(_RECV_SIZE)
            self.conn.receive_data(data)

    def _handshake(self) -> bool:
        agent = self.server.agent
        event = self._next_event()
        if isinstance(event, HaproxyHelloReceived):
            self._write(self.conn.hello(agent.capabilities, agent.max_frame_size))
            # A health check ends with the AGENT-HELLO (SPOE.txt §3.2.5).
            return not event.healthcheck
        if isinstance(event, HaproxyDisconnected):
            self._write(self.conn.disconnect(0))
        return False

    def _read_loop(self) -> None:
        server = self.server
        while True:
            event = self._next_event()
            if isinstance(event, NotifyReceived):
                server.notifies += 1
                request = Request(event.stream_id, event.frame_id, self.conn.engine_id,
                                  event.messages, self.conn.mode or "sync", self.peer)
                # Blocks when the pool is full: back-pressure on this engine.
                server._pool.spawn(server._process, self, request)
            elif isinstance(event, HaproxyDisconnected):
                log.debug("%s: %s disconnected (status %s: %s)", server.agent.name, self.peer,
                          event.status_code, event.message)
                self._write(self.conn.disconnect(0))
                return
            elif event is None or isinstance(event, ConnectionClosed):
                return

    def send_ack(self, stream_id: int, frame_id: int, actions: list[Action], *,
                 origin: _Session) -> bool:
        """Write one ACK; False when this connection cannot carry it any more."""
        if not self.alive or self.conn.state is not AgentConnectionState.READY:
            return False
        try:
            data = self.conn.ack(stream_id, frame_id, actions)
        except LocalProtocolError as exc:
            if exc.status != 3:
                return False
            log.warning("%s: ACK of (%d, %d) too big (%s); sent without actions",
                        self.server.agent.name, stream_id, frame_id, exc.message)
            data = self.conn.ack(stream_id, frame_id, ())
        if origin is not self:
            origin.conn.forget(stream_id, frame_id)
        return self._write(data)

    def _write(self, data: bytes) -> bool:
        with self._write_lock:
            if not self.alive:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.alive = False
                return False

    def shutdown(self, status: int, message: str | None) -> None:
        """Send AGENT-DISCONNECT (if the connection still may) and close."""
        try:
            data = self.conn.disconnect(status, message)
        except LocalProtocolError:
            data = b""
        if data:
            self._write(data)
        self._close()

    def _close(self) -> None:
        self.alive = False
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass
