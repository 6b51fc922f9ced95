"""A scriptable SPOP agent for tests: :class:`FakeAgent`.

It listens on a free port of 127.0.0.1 (a gevent ``StreamServer``), answers
HAPROXY-HELLO and NOTIFY frames the way you tell it to, and can misbehave in
every way a real agent does, so that code using spoe_sync can be tested against
faults without a real agent::

    from spoe_sync.protocol import SetVar, VarScope
    from spoe_sync.testing import FakeAgent

    def check_ip(message):
        return [SetVar(VarScope.TXN, "ip_score", 20)]

    with FakeAgent({"check-client-ip": check_ip}) as agent:
        engine = spoe_sync.Engine(config, backends={"agents": [agent.address]})
        ...
        assert agent.frames == 1

Answers: ``handlers`` maps a message name to ``handler(message) -> actions``
(:class:`~spoe_sync.protocol.SetVar` / :class:`~spoe_sync.protocol.UnsetVar`);
the actions of every message of a NOTIFY go in its one ACK.  ``"*"`` handles
messages without a handler of their own.  A handler that raises does not break
the connection: as :class:`spoe_sync.agent.Agent` does, the NOTIFY gets an ACK
without actions, and the exception is recorded in :attr:`errors`.

Handshake: ``capabilities``, ``max_frame_size`` (the agent answers the smaller of
it and the engine's), ``version``, ``hello_delay`` (a slow HELLO), and ``hello`` to
replace the AGENT-HELLO: an :class:`~spoe_sync.protocol.AgentHello` or
:class:`~spoe_sync.protocol.AgentDisconnect` frame (sent as is), raw ``bytes``,
``"close"``, ``"reset"``, ``"stall"`` (never answer), or the name of one of
the :data:`BAD_HELLOS` (every AGENT-HELLO HAProxy refuses, e.g. ``"no-version"``).

Faults after the handshake, from the ``fault_after``-th NOTIFY of a connection:
``"close"``, ``"reset"``, ``"stall"`` (stop reading and answering),
``"disconnect"`` (AGENT-DISCONNECT ``disconnect_status``), ``"garbage"`` (a
malformed ACK: status 4), ``"overlong"`` (a length prefix over any
max-frame-size: status 3), ``"unknown-frame-id"`` (ACKs carry a frame-id nobody
sent), ``"abort"`` (ACKs with FIN|ABORT), ``"silent"`` (no ACK, connection kept),
``"fragment"`` (ACKs cut in fragments).  ``ack_elsewhere`` answers on another
connection of the same engine, as async agents may.  ``fault_connections`` limits the
faults (handshake ones included) to the first N connections, so that the
replacement connection works.  ``delays`` (seconds, per message name or for all)
and ``reorder`` (ACKs held back and sent in reverse order, by batches of N)
make out-of-order ACKs.

Counters: :attr:`connections`, :attr:`frames` (NOTIFY received),
:attr:`acks_sent`; the frames themselves in :attr:`hellos`, :attr:`notifies`,
:attr:`disconnects`; what went wrong on the agent's side (a handler's exception,
a connection error) in :attr:`errors`.
"""

from __future__ import annotations

import socket as _stdsocket
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gevent
from gevent import socket
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.server import StreamServer

from .errors import SpoeError
from .protocol import (
    FLAG_ABORT,
    FLAG_FIN,
    Ack,
    Action,
    AgentDisconnect,
    AgentHello,
    Fragment,
    FrameType,
    HaproxyDisconnect,
    HaproxyHello,
    Message,
    Notify,
    UInt32,
)
from .protocol.codec import decode_frame_body, decode_payload, encode_frame, encode_raw_frame

__all__ = ["BAD_HELLOS", "FAULTS", "GARBAGE", "OVERLONG", "FakeAgent"]

Handler = Callable[[Message], "Iterable[Action] | None"]

FAULTS = ("close", "reset", "stall", "disconnect", "garbage", "overlong", "unknown-frame-id",
          "abort", "silent", "fragment")
_HELLO_FAULTS = ("close", "reset", "stall")
#: A malformed ACK: type 103, FIN, then a stream-id varint that never ends.
GARBAGE = struct.pack(">IBI", 16, 103, FLAG_FIN) + b"\xff" * 11
#: A length prefix no max-frame-size allows, then some bytes.
OVERLONG = b"\x7f\xff\xff\xff" + b"\x67" * 16

_V, _M, _C = ("version", "2.0"), ("max-frame-size", UInt32(16380)), ("capabilities", "pipelining,async")

#: Every AGENT-HELLO failure of docs/explanation/haproxy-behaviour.md §1.2, by name, for
#: ``FakeAgent(hello="no-version")``; the comment is the SPOP status HAProxy 2.6
#: sends back in its HAPROXY-DISCONNECT.
BAD_HELLOS: dict[str, AgentHello | bytes] = {
    "unsupported-version": AgentHello((("version", "2.1"), _M, _C)),  # 8
    "unparsable-version": AgentHello((("version", "2"), _M, _C)),  # 8
    "no-version": AgentHello((_M, _C)),  # 5
    "no-max-frame-size": AgentHello((_V, _C)),  # 6
    "max-frame-size-too-small": AgentHello((_V, ("max-frame-size", UInt32(100)), _C)),  # 9
    "max-frame-size-too-big": AgentHello((_V, ("max-frame-size", UInt32(0xFFFFFFFF)), _C)),  # 9
    "version-not-a-string": AgentHello((("version", 2), _M, _C)),  # 4
    "no-fin": AgentHello((_V, _M, _C), flags=0),  # 10
    "non-zero-ids": AgentHello((_V, _M, _C), stream_id=1),  # 4
    "not-an-agent-hello": struct.pack(">IBIBB", 7, 103, FLAG_FIN, 0, 0),  # 4
    "garbage": GARBAGE,  # 4
    "over-long-length-prefix": OVERLONG,  # 3
}
_MAX_SLEEP = 60.0  # every wait is bounded, even "stall"


class FakeAgent:
    """A scriptable SPOP agent on 127.0.0.1 (see the module docstring).

    :param handlers: message name -> ``handler(Message) -> actions``.
    :param capabilities: announced in the AGENT-HELLO.
    :param max_frame_size: the largest frame the agent accepts.
    :param version: the ``version`` announced.
    :param hello: replaces the AGENT-HELLO (frame, bytes, "close", "reset", "stall").
    :param hello_delay: seconds to wait before answering the HAPROXY-HELLO.
    :param fault: one of :data:`FAULTS`, applied from the ``fault_after``-th NOTIFY.
    :param fault_connections: only the first N connections misbehave (None: all).
    :param disconnect_status: status-code of a scripted AGENT-DISCONNECT.
    :param delays: seconds before answering, for all messages or per name.
    :param reorder: hold ACKs back and send them by batches of N, last first.
    :param idle_close: close a connection (without DISCONNECT) after this many
        seconds without a frame from the engine, as agents with an idle timeout do.
    :param ack_elsewhere: async agents may answer on any connection of the same
        engine-id (SPOE.txt §3.2.1): send each ACK on another open connection of
        the NOTIFY's engine when there is one.
    :param port: 0 for a free port.
    """

    def __init__(self, handlers: Mapping[str, Handler] | None = None, *,
                 capabilities: str = "pipelining,async", max_frame_size: int = 16380,
                 version: str = "2.0", hello: Any = None, hello_delay: float = 0.0,
                 fault: str | None = None, fault_after: int = 1,
                 fault_connections: int | None = None, disconnect_status: int = 99,
                 disconnect_message: str = "scripted disconnect",
                 delays: float | Mapping[str, float] | None = None, reorder: int = 1,
                 ack_elsewhere: bool = False, idle_close: float | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault '{fault}' (expected one of {', '.join(FAULTS)})")
        if isinstance(hello, str):
            if hello in BAD_HELLOS:
                hello = BAD_HELLOS[hello]
            elif hello not in _HELLO_FAULTS:
                raise ValueError(f"unknown hello fault '{hello}' (expected one of "
                                 f"{', '.join(_HELLO_FAULTS + tuple(BAD_HELLOS))})")
        self.handlers = dict(handlers or {})
        self.capabilities = capabilities
        self.max_frame_size = max_frame_size
        self.version = version
        self.hello = hello
        self.hello_delay = hello_delay
        self.fault = fault
        self.fault_after = max(fault_after, 1)
        self.fault_connections = fault_connections
        self.disconnect_status = disconnect_status
        self.disconnect_message = disconnect_message
        self.delays = delays
        self.reorder = max(reorder, 1)
        self.ack_elsewhere = ack_elsewhere
        self.idle_close = idle_close
        self.sessions: list[_Session] = []
        self.connections = 0
        self.frames = 0
        self.acks_sent = 0
        self.hellos: list[HaproxyHello] = []
        self.notifies: list[Notify] = []
        self.disconnects: list[HaproxyDisconnect] = []
        self.errors: list[str] = []
        self._host = host
        self._port = port
        self._server: StreamServer | None = None
        self._socks: set[Any] = set()
        self._stopped = Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAgent:
        """Start listening (done by ``with``)."""
        if self._server is None:
            self._stopped.clear()
            self._server = StreamServer((self._host, self._port), self._handle)
            self._server.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every connection."""
        self._stopped.set()
        server, self._server = self._server, None
        for sock in list(self._socks):
            _close(sock)
        if server is not None:
            server.stop(timeout=1.0)

    def __enter__(self) -> FakeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        port = None if self._server is None else self._server.server_port
        if port is None:
            raise SpoeError("FakeAgent is not started")
        return int(port)

    @property
    def address(self) -> str:
        """``"127.0.0.1:<port>"``, what a backend's server list takes."""
        return f"{self._host}:{self.port}"

    @property
    def active(self) -> int:
        """Connections open right now."""
        return len(self._socks)

    def __repr__(self) -> str:
        where = self.address if self._server is not None else "stopped"
        return (f"<FakeAgent {where} [connections: {self.connections} total, {self.active} open"
                f" | frames: {self.frames} received, {self.acks_sent} acked]>")

    # ------------------------------------------------------------------ one connection

    def _handle(self, sock: Any, address: Any) -> None:
        index = self.connections
        self.connections += 1
        faulty = self.fault_connections is None or index < self.fault_connections
        self._socks.add(sock)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = _Session(self, sock, faulty)
            self.sessions.append(session)
            try:
                session.run()
            finally:
                self.sessions.remove(session)
        except (OSError, SpoeError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._socks.discard(sock)
            _close(sock)

    def _actions(self, notify: Notify) -> tuple[tuple[Action, ...], float]:
        actions: list[Action] = []
        failed = False
        delay = 0.0
        for message in notify.messages:
            handler = self.handlers.get(message.name) or self.handlers.get("*")
            if handler is not None and not failed:
                try:
                    actions.extend(handler(message) or ())
                except Exception as exc:  # a test's handler bug: no stray traceback, no 257
                    self.errors.append(f"handler of message {message.name!r} raised "
                                       f"{type(exc).__name__}: {exc}")
                    failed = True
            if isinstance(self.delays, Mapping):
                delay = max(delay, float(self.delays.get(message.name, 0.0)))
            elif self.delays:
                delay = max(delay, float(self.delays))
        return (() if failed else tuple(actions)), delay


class _Session:
    """The conversation on one accepted connection."""

    def __init__(self, agent: FakeAgent, sock: Any, faulty: bool) -> None:
        self.agent = agent
        self.sock = sock
        self.faulty = faulty
        self.buf = bytearray()
        self.lock = Semaphore()
        self.count = 0
        self.held: list[bytes] = []
        self.fragments: list[bytes] = []
        self.frame_size = agent.max_frame_size
        self.closed = False
        self.engine_id: object = None

    def run(self) -> None:
        body = self._read_frame()
        if body is None:
            return
        hello = decode_frame_body(body)
        if not isinstance(hello, HaproxyHello):
            return
        self.agent.hellos.append(hello)
        self.engine_id = hello.engine_id
        if self.agent.hello_delay:
            gevent.sleep(self.agent.hello_delay)
        if not self._answer_hello(hello):
            return
        if self.agent.idle_close is not None:
            self.sock.settimeout(self.agent.idle_close)
        while not self.closed:
            body = self._read_frame()
            if body is None:
                return
            self._on_frame(body)

    def _answer_hello(self, hello: HaproxyHello) -> bool:
        agent = self.agent
        script = agent.hello if self.faulty else None
        if script is None:
            theirs = hello.max_frame_size
            offered = theirs if isinstance(theirs, int) else 16380
            size = min(agent.max_frame_size, offered)
            self.frame_size = size
            self._send(encode_frame(AgentHello.make(version=agent.version, max_frame_size=size,
                                                    capabilities=agent.capabilities)))
            return not hello.healthcheck  # a check ends with the AGENT-HELLO
        if script == "stall":
            self._stall()
            return False
        if script in ("close", "reset"):
            self._close(reset=script == "reset")
            return False
        if isinstance(script, (AgentHello, AgentDisconnect)):
            self._send(encode_frame(script))
            return not isinstance(script, AgentDisconnect)
        self._send(bytes(script))
        return True

    def _on_frame(self, body: bytes) -> None:
        frame = decode_frame_body(body)
        if isinstance(frame, HaproxyDisconnect):
            self.agent.disconnects.append(frame)
            self._send(encode_frame(AgentDisconnect.make(0)))
            self._close()
            return
        if isinstance(frame, Fragment):
            self.fragments.append(frame.payload)
            if frame.abort:
                self.fragments = []
                return
            if not frame.fin:
                return
            payload, self.fragments = b"".join(self.fragments), []
            frame = decode_payload(FrameType.NOTIFY, payload, stream_id=frame.stream_id,
                                   frame_id=frame.frame_id)
        if not isinstance(frame, Notify):
            return
        agent = self.agent
        agent.frames += 1
        agent.notifies.append(frame)
        self.count += 1
        fault = agent.fault if self.faulty and self.count >= agent.fault_after else None
        if fault in ("close", "reset"):
            self._close(reset=fault == "reset")
            return
        if fault == "stall":
            self._stall()
            return
        if fault == "disconnect":
            self._send(encode_frame(AgentDisconnect.make(agent.disconnect_status,
                                                         agent.disconnect_message)))
            self._close()
            return
        if fault in ("garbage", "overlong"):
            self._send(GARBAGE if fault == "garbage" else OVERLONG)
            return
        if fault == "silent":
            return
        actions, delay = agent._actions(frame)
        frame_id = frame.frame_id + 1000 if fault == "unknown-frame-id" else frame.frame_id
        flags = FLAG_FIN | FLAG_ABORT if fault == "abort" else FLAG_FIN
        data = encode_frame(Ack(frame.stream_id, frame_id, actions, flags))
        if fault == "fragment":
            data = _fragmented(data, frame.stream_id, frame_id)
        if delay:
            gevent.spawn(self._send_later, delay, data)
        else:
            self._ack(data)

    def _send_later(self, delay: float, data: bytes) -> None:
        gevent.sleep(min(delay, _MAX_SLEEP))
        self._ack(data)

    def _ack(self, data: bytes) -> None:
        if self.agent.ack_elsewhere:
            for other in reversed(self.agent.sessions):
                if other is not self and not other.closed and other.engine_id == self.engine_id:
                    other._send(data)
                    self.agent.acks_sent += 1
                    return
        count = 1
        if self.agent.reorder > 1:
            self.held.append(data)
            if len(self.held) < self.agent.reorder:
                return
            count = len(self.held)
            data, self.held = b"".join(reversed(self.held)), []
        self._send(data)
        self.agent.acks_sent += count

    # ------------------------------------------------------------------ I/O

    def _read_frame(self) -> bytes | None:
        while True:
            if len(self.buf) >= 4:
                (size,) = struct.unpack_from(">I", self.buf)
                if size > max(self.frame_size, 16380):
                    self._close()
                    return None
                if len(self.buf) >= 4 + size:
                    body = bytes(self.buf[4:4 + size])
                    del self.buf[:4 + size]
                    return body
            try:
                chunk = self.sock.recv(65536)
            except OSError:  # timeouts included: the idle_close of the agent
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk

    def _send(self, data: bytes) -> None:
        if self.closed:
            return
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def _stall(self) -> None:
        self.agent._stopped.wait(_MAX_SLEEP)
        self._close()

    def _close(self, reset: bool = False) -> None:
        self.closed = True
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.sock.close()  # no FIN first: the engine sees a reset
                return
            except OSError:
                pass
        _close(self.sock)


def _fragmented(data: bytes, stream_id: int, frame_id: int) -> bytes:
    """The same ACK cut in three frames: typed first, then type 0, the last with FIN."""
    header = len(encode_raw_frame(FrameType.ACK, FLAG_FIN, stream_id, frame_id, b""))
    payload = data[header:]
    third = max(len(payload) // 3, 1)
    parts = [payload[:third], payload[third:2 * third], payload[2 * third:]]
    return (encode_raw_frame(FrameType.ACK, 0, stream_id, frame_id, parts[0])
            + encode_raw_frame(FrameType.UNSET, 0, stream_id, frame_id, parts[1])
            + encode_raw_frame(FrameType.UNSET, FLAG_FIN, stream_id, frame_id, parts[2]))


def _close(sock: Any) -> None:
    try:
        sock.shutdown(_stdsocket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def main(argv: list[str] | None = None) -> None:
    """``python -m spoe_sync.testing [--port N] [--capabilities C] [--delay S] ...``:
    run a FakeAgent in its own process, print its address, serve until stdin
    closes (or SIGTERM)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m spoe_sync.testing", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--capabilities", default="pipelining,async")
    parser.add_argument("--max-frame-size", type=int, default=16380)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fault", choices=FAULTS)
    args = parser.parse_args(argv)
    agent = FakeAgent(capabilities=args.capabilities, max_frame_size=args.max_frame_size,
                      delays=args.delay or None, fault=args.fault, host=args.host, port=args.port)
    with agent:
        print(agent.address, flush=True)
        from gevent.os import tp_read
        while tp_read(sys.stdin.fileno(), 4096):
            pass


if __name__ == "__main__":
    main()
