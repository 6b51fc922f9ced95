"""The agent side of one SPOP connection, sans I/O (SPOE.txt §3.2.3, h11's shape).

The mirror image of :class:`~spoe_sync.protocol.connection.EngineConnection`:
one :class:`AgentConnection` per TCP connection an engine (HAProxy, or
spoe_sync's own) opened to the agent.  It never touches a socket::

    conn = AgentConnection()
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            conn.receive_data(sock.recv(65536))        # b"" = the engine closed
        elif isinstance(ev, HaproxyHelloReceived):
            sock.sendall(conn.hello(("pipelining", "async"), 16380))
        elif isinstance(ev, NotifyReceived):
            sock.sendall(conn.ack(ev.stream_id, ev.frame_id, actions))
        elif isinstance(ev, HaproxyDisconnected):
            sock.sendall(conn.disconnect(0)); break
        elif isinstance(ev, ConnectionClosed):
            break

``next_event()`` raises :class:`~spoe_sync.errors.RemoteProtocolError` when the
engine breaks SPOP; its ``.status`` is the code to send with
:meth:`AgentConnection.disconnect` before closing.  Any other exception escaping
``next_event()`` is a bug.

The HAPROXY-HELLO is judged as HAProxy's own example agents judge it
(``spoa-example``, ``contrib/spoa_server``): keys matched exactly, a missing
``supported-versions``/``max-frame-size``/``capabilities`` gives 5/6/7, no 2.x
version gives 8, a max-frame-size under 256 gives 9, a HELLO without FIN gives 10.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import LocalProtocolError, RemoteProtocolError
from .buffer import ReceiveBuffer
from .codec import decode_frame_body, decode_payload, encode_frame, encode_raw_frame
from .constants import (
    DEFAULT_MAX_FRAME_SIZE,
    FLAG_FIN,
    MIN_FRAME_SIZE,
    SPOP_VERSION,
    FrameStatus,
    FrameType,
)
from .events import NEED_DATA, ConnectionClosed
from .fragments import Reassembler, split_payload
from .frames import (
    Ack,
    Action,
    AgentDisconnect,
    AgentHello,
    Fragment,
    HaproxyDisconnect,
    HaproxyHello,
    Message,
    Notify,
    UnknownFrame,
)
from .hello import Mode, parse_capabilities, parse_version, select_mode

__all__ = [
    "AgentConnection",
    "AgentConnectionState",
    "AgentEvent",
    "HaproxyDisconnected",
    "HaproxyHelloReceived",
    "NotifyReceived",
]

#: The largest NOTIFY payload a fragmented NOTIFY may reassemble to by default.
DEFAULT_MAX_NOTIFY_SIZE = 1 << 20
_UINT32_MAX = 0xFFFFFFFF
_KNOWN_CAPABILITIES = ("pipelining", "async", "fragmentation")


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class HaproxyHelloReceived:
    """The engine's HAPROXY-HELLO, accepted: answer it with
    :meth:`AgentConnection.hello` (or refuse it with ``disconnect(status)``).

    :attr hello: the frame as received.
    :attr engine_id: the ``engine-id`` (None when absent, as in health checks).
    :attr healthcheck: a health check: answer, then close; no NOTIFY follows.
    :attr max_frame_size: the engine's offered max-frame-size.
    :attr capabilities: the known capabilities the engine announced.
    :attr versions: the ``supported-versions`` text.
    """

    hello: HaproxyHello
    engine_id: str | None
    healthcheck: bool
    max_frame_size: int
    capabilities: frozenset[str]
    versions: str


@dataclass(frozen=True, slots=True)
class NotifyReceived:
    """A NOTIFY, put back together first if the engine sent it in fragments.

    :attr notify: the frame (its ``flags`` are FIN).
    :attr fragments: how many frames it came in (1 when not fragmented).
    """

    notify: Notify
    fragments: int = 1

    @property
    def stream_id(self) -> int:
        return self.notify.stream_id

    @property
    def frame_id(self) -> int:
        return self.notify.frame_id

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.notify.messages


@dataclass(frozen=True, slots=True)
class HaproxyDisconnected:
    """The engine sent HAPROXY-DISCONNECT (SPOE.txt §3.2.8): answer with
    :meth:`AgentConnection.disconnect` and close the socket.

    :attr status_code: the engine's code (None when its frame had none or could
        not be read).
    :attr message: the engine's text (None when absent).
    """

    status_code: int | None
    message: str | None


AgentEvent = HaproxyHelloReceived | NotifyReceived | HaproxyDisconnected | ConnectionClosed


# --------------------------------------------------------------------------- states


class AgentConnectionState(enum.Enum):
    """Where the agent side of a connection is."""

    WAIT_HELLO = "WAIT_HELLO"  #: nothing received yet: the HAPROXY-HELLO must come first
    HELLO_RECEIVED = "HELLO_RECEIVED"  #: the HELLO is in; hello() or disconnect() is due
    READY = "READY"  #: AGENT-HELLO out: NOTIFY in, ACK out
    DISCONNECTING = "DISCONNECTING"  #: the engine disconnected; our AGENT-DISCONNECT is due
    CLOSED = "CLOSED"  #: our AGENT-DISCONNECT is out or the engine closed: close the socket
    ERROR = "ERROR"  #: the engine broke SPOP; only disconnect() is allowed


_S = AgentConnectionState


def _invalid(why: str) -> RemoteProtocolError:
    return RemoteProtocolError(why, status=FrameStatus.INVALID)


# --------------------------------------------------------------------------- connection


class AgentConnection:
    """The agent side of one SPOP connection.

    :param max_frame_size: the largest frame we accept (256 or more); the
        AGENT-HELLO announces the smaller of it and the engine's offer.
    :param max_notify_size: the largest payload a fragmented NOTIFY may reach
        (only when we announce ``fragmentation``).
    :raises LocalProtocolError: status 9 for a max-frame-size out of range.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, *,
                 max_notify_size: int = DEFAULT_MAX_NOTIFY_SIZE) -> None:
        if not MIN_FRAME_SIZE <= max_frame_size <= _UINT32_MAX:
            raise LocalProtocolError(f"max-frame-size {max_frame_size} is not between "
                                     f"{MIN_FRAME_SIZE} and {_UINT32_MAX}", FrameStatus.BAD_FRAME_SIZE)
        self.configured_max_frame_size = max_frame_size
        self.state = _S.WAIT_HELLO
        #: The engine's HELLO, once received.
        self.engine_hello: HaproxyHelloReceived | None = None
        #: The limit both ways once hello() was sent.
        self.max_frame_size = max_frame_size
        #: The capabilities our AGENT-HELLO announced.
        self.capabilities: frozenset[str] = frozenset()
        #: The error that put the connection in ERROR.
        self.error: RemoteProtocolError | None = None
        #: The engine's HAPROXY-DISCONNECT, once received.
        self.engine_disconnect: HaproxyDisconnected | None = None
        #: Frames skipped: unknown types (SPOE.txt §3.2.2) and aborted fragmented NOTIFYs.
        self.ignored_frames = 0
        self._buffer = ReceiveBuffer(max_frame_size)
        self._reassembler = Reassembler(max_notify_size)
        self._pending: set[tuple[int, int]] = set()
        self._disconnect_sent = False

    def __repr__(self) -> str:
        return (f"<AgentConnection {self.state.name} mode={self.mode} "
                f"max_frame_size={self.max_frame_size} pending={len(self._pending)}>")

    # ------------------------------------------------------------------ properties

    @property
    def engine_id(self) -> str | None:
        return None if self.engine_hello is None else self.engine_hello.engine_id

    @property
    def healthcheck(self) -> bool:
        return self.engine_hello is not None and self.engine_hello.healthcheck

    @property
    def mode(self) -> Mode | None:
        """``"sync"``, ``"pipelining"`` or ``"async"`` once hello() was sent, else None."""
        if self.state is _S.WAIT_HELLO or self.state is _S.HELLO_RECEIVED or self.engine_hello is None:
            return None
        return select_mode(pipelining="pipelining" in self.capabilities,
                           async_="async" in self.capabilities)

    @property
    def pending(self) -> int:
        """NOTIFY frames received here and not acknowledged yet."""
        return len(self._pending)

    # ------------------------------------------------------------------ sending

    def hello(self, capabilities: Iterable[str] = ("pipelining", "async"),
              max_frame_size: int | None = None) -> bytes:
        """The AGENT-HELLO answering the engine's HELLO: version 2.0, the smaller
        max-frame-size (UINT32), and our ``pipelining``/``async`` that the engine
        announced too, plus ``fragmentation`` if we have it (it concerns only the
        peer that announces it, SPOE.txt §3.2.1).  A health check is answered
        with our capabilities unfiltered: nothing is negotiated there, and it is
        how a probe learns them.

        :param max_frame_size: ours (defaults to the constructor's); between 256
            and the one given to the constructor.
        :raises LocalProtocolError: not right after a HAPROXY-HELLO.
        """
        hello = self.engine_hello
        if self.state is not _S.HELLO_RECEIVED or hello is None:
            raise LocalProtocolError(f"cannot send an AGENT-HELLO in state {self.state.name}",
                                     FrameStatus.INVALID)
        ours = self.configured_max_frame_size if max_frame_size is None else max_frame_size
        if not MIN_FRAME_SIZE <= ours <= self.configured_max_frame_size:
            raise LocalProtocolError(f"max-frame-size {ours} is not between {MIN_FRAME_SIZE} and "
                                     f"{self.configured_max_frame_size}", FrameStatus.BAD_FRAME_SIZE)
        wanted = {c.strip() for c in capabilities}
        if hello.healthcheck:
            kept = [c for c in _KNOWN_CAPABILITIES if c in wanted]
        else:
            kept = [c for c in _KNOWN_CAPABILITIES
                    if c in wanted and (c == "fragmentation" or c in hello.capabilities)]
        size = min(ours, hello.max_frame_size)
        self.capabilities = frozenset(kept)
        self.max_frame_size = size
        self._buffer.max_frame_size = size
        self.state = _S.READY
        return encode_frame(AgentHello.make(version=SPOP_VERSION, max_frame_size=size,
                                            capabilities=",".join(kept)))

    def ack(self, stream_id: int, frame_id: int, actions: Sequence[Action] = ()) -> bytes:
        """The ACK of NOTIFY ``(stream_id, frame_id)``.  In async mode it may
        answer a NOTIFY received on another connection of the same engine.  An
        ACK over the max-frame-size is sent in fragments when the engine
        announced ``fragmentation``.

        :raises LocalProtocolError: not READY; ids never received here outside
            async mode (status 12); too big and the engine cannot take
            fragments (status 3: nothing sent, the caller may ack without actions).
        """
        if self.state is not _S.READY:
            raise LocalProtocolError(f"cannot send an ACK in state {self.state.name}",
                                     FrameStatus.INVALID)
        key = (stream_id, frame_id)
        if key not in self._pending and self.mode != "async":
            raise LocalProtocolError(f"no NOTIFY ({stream_id}, {frame_id}) waits for an ACK here",
                                     FrameStatus.FRAMEID_NOTFOUND)
        data = encode_frame(Ack(stream_id, frame_id, tuple(actions)))
        if len(data) - 4 > self.max_frame_size:
            assert self.engine_hello is not None
            if "fragmentation" not in self.engine_hello.capabilities:
                raise LocalProtocolError(
                    f"ACK of {len(data) - 4} bytes is over the max-frame-size of "
                    f"{self.max_frame_size} and the engine cannot take fragments: nothing sent",
                    FrameStatus.TOO_BIG)
            data = _fragment_ack(stream_id, frame_id, data, self.max_frame_size)
        self._pending.discard(key)
        return data

    def forget(self, stream_id: int, frame_id: int) -> None:
        """Stop expecting an ACK for this NOTIFY here (it was answered on
        another connection of the engine, or will not be)."""
        self._pending.discard((stream_id, frame_id))

    def disconnect(self, status: int = 0, message: str | None = None) -> bytes:
        """The AGENT-DISCONNECT to write (``message`` defaults to HAProxy's reason
        text for ``status``); close the socket just after (SPOE.txt §3.2.9).

        :raises LocalProtocolError: when already sent.
        """
        if self._disconnect_sent:
            raise LocalProtocolError("the AGENT-DISCONNECT was already sent", FrameStatus.INVALID)
        self._disconnect_sent = True
        self.state = _S.CLOSED
        return encode_frame(AgentDisconnect.make(status, message))

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the engine; ``b""`` means it closed the connection.

        :raises LocalProtocolError: data after ``b""``.
        """
        self._buffer.feed(data)

    def next_event(self) -> AgentEvent | type[NEED_DATA]:
        """The next event: :class:`HaproxyHelloReceived`, :class:`NotifyReceived`,
        :class:`HaproxyDisconnected`, :class:`ConnectionClosed`, or ``NEED_DATA``.

        :raises RemoteProtocolError: the engine broke SPOP (``.status`` is the
            status to send with :meth:`disconnect`); raised again on every call.
        """
        if self.state is _S.ERROR:
            assert self.error is not None
            raise self.error
        if self.state in (_S.CLOSED, _S.DISCONNECTING):
            return ConnectionClosed(len(self._buffer))
        if self.state is _S.HELLO_RECEIVED:
            # Nothing may be read before our answer: the frame size is not settled.
            return NEED_DATA
        buffer = self._buffer
        while True:
            try:
                body = buffer.next_frame()
                if body is None:
                    if buffer.eof:
                        self.state = _S.CLOSED
                        return ConnectionClosed(len(buffer))
                    return NEED_DATA
                event = self._handle(body)
            except RemoteProtocolError as exc:
                self.state = _S.ERROR
                self.error = exc
                raise
            if event is not None:
                return event

    def _handle(self, body: bytes) -> AgentEvent | None:
        if len(body) < 7:
            raise _invalid(f"a frame of {len(body)} bytes is shorter than a frame header")
        ftype = body[0]
        if ftype == FrameType.HAPROXY_DISCONNECT:
            event = _haproxy_disconnected(body)
            self.engine_disconnect = event
            self.state = _S.DISCONNECTING
            return event
        if self.state is _S.WAIT_HELLO:
            return self._handle_hello(body)
        if ftype in (FrameType.NOTIFY, FrameType.UNSET):
            return self._handle_notify(body)
        if ftype in (FrameType.HAPROXY_HELLO, FrameType.AGENT_HELLO, FrameType.AGENT_DISCONNECT,
                     FrameType.ACK):
            raise _invalid(f"unexpected frame type {ftype} after the handshake")
        # "Unknown frames may be silently skipped" (SPOE.txt §3.2.2).
        self.ignored_frames += 1
        return None

    def _handle_hello(self, body: bytes) -> HaproxyHelloReceived:
        if body[0] != FrameType.HAPROXY_HELLO:
            raise _invalid(f"expected a HAPROXY-HELLO (type 1) first, got frame type {body[0]}")
        flags = int.from_bytes(body[1:5], "big")
        if not flags & FLAG_FIN:
            raise RemoteProtocolError("HAPROXY-HELLO without the FIN flag: a HELLO cannot be "
                                      "fragmented", status=FrameStatus.FRAG_NOT_SUPPORTED)
        if body[5] != 0 or body[6] != 0:
            raise _invalid("HAPROXY-HELLO: stream-id and frame-id must be 0")
        frame = decode_frame_body(body)
        assert isinstance(frame, HaproxyHello)
        event = _judge_hello(frame)
        self.engine_hello = event
        self.state = _S.HELLO_RECEIVED
        return event

    def _handle_notify(self, body: bytes) -> NotifyReceived | None:
        frame = decode_frame_body(body)
        if isinstance(frame, Notify):
            self._receive(frame.stream_id, frame.frame_id)
            return NotifyReceived(frame)
        if isinstance(frame, UnknownFrame):  # pragma: no cover - types are checked above
            self.ignored_frames += 1
            return None
        assert isinstance(frame, Fragment)
        if "fragmentation" not in self.capabilities:
            if frame.frame_type == FrameType.UNSET and frame.abort:
                # The engine abandons a NOTIFY: nothing of it was ever ours.
                self.ignored_frames += 1
                return None
            raise RemoteProtocolError("a fragmented NOTIFY, but we did not announce fragmentation",
                                      status=FrameStatus.FRAG_NOT_SUPPORTED)
        done = self._reassembler.feed(frame)
        if done is None:
            return None
        if done.abort:
            self.ignored_frames += 1
            return None
        notify = decode_payload(FrameType.NOTIFY, done.payload, stream_id=done.stream_id,
                                frame_id=done.frame_id)
        assert isinstance(notify, Notify)
        self._receive(notify.stream_id, notify.frame_id)
        return NotifyReceived(notify, done.fragments)

    def _receive(self, stream_id: int, frame_id: int) -> None:
        key = (stream_id, frame_id)
        if key in self._pending:
            raise _invalid(f"NOTIFY ({stream_id}, {frame_id}) received twice before its ACK")
        if self.mode == "sync" and self._pending:
            raise _invalid(f"NOTIFY ({stream_id}, {frame_id}) before the ACK of "
                           f"{next(iter(self._pending))} without pipelining")
        self._pending.add(key)


def _judge_hello(frame: HaproxyHello) -> HaproxyHelloReceived:
    """Read the HELLO's items (keys matched exactly, the first one counts)."""
    seen: dict[str, object] = {}
    for key, value in frame.items:
        seen.setdefault(key, value)
    versions = seen.get("supported-versions")
    if versions is None:
        raise RemoteProtocolError("HAPROXY-HELLO without supported-versions",
                                  status=FrameStatus.NO_VSN)
    if not isinstance(versions, str):
        raise _invalid("HAPROXY-HELLO: supported-versions is not a STRING")
    # "2.0, 1.5": a MAJOR.MINOR means every minor of that major up to it; we speak 2.0.
    if not any((v := parse_version(part)) is not None and v // 1000 == 2
               for part in versions.split(",")):
        raise RemoteProtocolError(f"no supported version in {versions!r} (we speak 2.0)",
                                  status=FrameStatus.BAD_VSN)
    size = seen.get("max-frame-size")
    if size is None:
        raise RemoteProtocolError("HAPROXY-HELLO without max-frame-size",
                                  status=FrameStatus.NO_FRAME_SIZE)
    if not isinstance(size, int) or isinstance(size, bool):
        raise _invalid("HAPROXY-HELLO: max-frame-size is not an integer")
    if not MIN_FRAME_SIZE <= size <= _UINT32_MAX:
        raise RemoteProtocolError(f"max-frame-size {int(size)} is not between {MIN_FRAME_SIZE} "
                                  f"and {_UINT32_MAX}", status=FrameStatus.BAD_FRAME_SIZE)
    caps = seen.get("capabilities")
    if caps is None:
        raise RemoteProtocolError("HAPROXY-HELLO without capabilities", status=FrameStatus.NO_CAP)
    if not isinstance(caps, str):
        raise _invalid("HAPROXY-HELLO: capabilities is not a STRING")
    engine_id = seen.get("engine-id")
    if engine_id is not None and not isinstance(engine_id, str):
        raise _invalid("HAPROXY-HELLO: engine-id is not a STRING")
    healthcheck = seen.get("healthcheck", False)
    if not isinstance(healthcheck, bool):
        raise _invalid("HAPROXY-HELLO: healthcheck is not a BOOLEAN")
    return HaproxyHelloReceived(frame, engine_id, healthcheck, int(size),
                                parse_capabilities(caps), versions)


def _haproxy_disconnected(body: bytes) -> HaproxyDisconnected:
    """The status and message of a HAPROXY-DISCONNECT; an unreadable one still
    ends the connection."""
    try:
        frame = decode_frame_body(body)
    except RemoteProtocolError:
        return HaproxyDisconnected(None, None)
    status: int | None = None
    message: str | None = None
    if isinstance(frame, HaproxyDisconnect):
        code = frame.status_code
        if isinstance(code, int) and not isinstance(code, bool):
            status = int(code)
        text = frame.message
        if isinstance(text, str):
            message = text
    return HaproxyDisconnected(status, message)


def _fragment_ack(stream_id: int, frame_id: int, data: bytes, max_frame_size: int) -> bytes:
    """An encoded ACK cut into frames: ACK without FIN, then type-0 frames."""
    # The payload starts after the 4-byte prefix and the header (type, flags, ids).
    header = encode_raw_frame(FrameType.ACK, FLAG_FIN, stream_id, frame_id, b"")
    payload = data[len(header):]
    pieces = split_payload(payload, max_frame_size)
    last = len(pieces) - 1
    return b"".join(
        encode_raw_frame(FrameType.ACK if i == 0 else FrameType.UNSET, FLAG_FIN if i == last else 0,
                         stream_id, frame_id, piece)
        for i, piece in enumerate(pieces))
