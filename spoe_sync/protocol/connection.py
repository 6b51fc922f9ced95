"""The engine side of one SPOP connection, sans I/O (SPOE.txt §3.2.3, h11's shape).

One :class:`EngineConnection` per TCP connection to an agent.  It never touches
a socket: the caller writes what the methods return and feeds what it reads::

    conn = EngineConnection(max_frame_size=16380)
    sock.sendall(conn.initiate())                    # HAPROXY-HELLO
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            conn.receive_data(sock.recv(65536))      # b"" = the agent closed
        elif isinstance(ev, HelloDone):
            break
    for frame in conn.send_notify(sid, fid, payload):
        sock.sendall(frame)

``next_event()`` raises :class:`~spoe_sync.errors.RemoteProtocolError` when the
agent breaks SPOP; its ``.status`` is the code HAProxy would send, and the
connection then only allows :meth:`~EngineConnection.disconnect`.  Any other
exception escaping ``next_event()`` is a bug.

What is HAProxy's here (docs/explanation/haproxy-behaviour.md §1-2): the HELLO bytes, the
AGENT-HELLO checks and their status codes, the mode negotiation, how an ACK is
matched per mode, the DISCONNECT texts, ignoring frames of unknown type.  What
is ours: fragmented ACKs are reassembled instead of refused with status 10, up
to ``max_ack_size`` bytes; and the actions of one ACK are decoded up to
``max_ack_actions``, so that the work one ACK costs is bounded whatever the
agent sends (issue 11: one agent must not freeze the worker).  An action list
of a few hundred bytes already decoded is not decoded again: agents repeat
themselves (``ack_cache``, bounded, shared by the connections of an engine).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from .buffer import ReceiveBuffer
from .codec import decode_frame_body, decode_payload, encode_frame, encode_messages, encode_notify
from .constants import (
    DEFAULT_MAX_FRAME_SIZE,
    FLAG_ABORT,
    MIN_FRAME_SIZE,
    FrameStatus,
    FrameType,
    frame_status_reason,
)
from .events import (
    NEED_DATA,
    AckReceived,
    AgentDisconnected,
    ConnectionClosed,
    Event,
    HelloDone,
)
from .fastcodec import _Fallback, _fast_ack
from .fragments import Reassembler, abort_frame, fragment_notify
from .frames import (
    Ack,
    AgentDisconnect,
    AgentHello,
    Fragment,
    HaproxyDisconnect,
    HaproxyHello,
    Notify,
)
from .hello import Mode, Negotiated, check_hello_header, negotiate

__all__ = [
    "DEFAULT_MAX_ACK_ACTIONS",
    "DEFAULT_MAX_ACK_SIZE",
    "NEED_DATA",
    "AckReceived",
    "AgentDisconnected",
    "ConnectionClosed",
    "ConnectionState",
    "EngineConnection",
    "Event",
    "HelloDone",
]

#: The largest payload a fragmented ACK may reassemble to; past it the frame
#: ends with status 3 ("frame is too big") and nothing more is buffered.  An
#: unfragmented ACK is bounded by max-frame-size (16 KiB by default, at most
#: tune.bufsize in HAProxy, which refuses fragmented ACKs altogether); 256 KiB
#: is sixteen such frames, far above what any real agent sends (a handful of
#: variables, a body sample bounded by tune.bufsize), and small enough that
#: an agent cannot make one ACK cost the worker more than a few milliseconds.
DEFAULT_MAX_ACK_SIZE = 256 * 1024
#: The most actions of one ACK that are decoded; the bytes of the others are
#: counted in ``Ack.undecoded`` and never looked at.  4096 is more than any
#: unfragmented ACK of the default 16 KiB frame can carry (the smallest action,
#: an unset-var of a one-byte name, takes 5 bytes: 3276 of them), and four
#: times the variables one stream may hold by default (``DEFAULT_MAX_VARS``),
#: so only a flood is cut.
DEFAULT_MAX_ACK_ACTIONS = 4096


# --------------------------------------------------------------------------- states


class ConnectionState(enum.Enum):
    """HAProxy's applet states, reduced to what the protocol sees
    (``enum spoe_appctx_state``)."""

    CONNECTING = "CONNECTING"  #: created; the HAPROXY-HELLO is not out yet
    HELLO_SENT = "HELLO_SENT"  #: waiting for the AGENT-HELLO
    READY = "READY"  #: handshake done: NOTIFY out, ACK in
    DISCONNECTING = "DISCONNECTING"  #: our HAPROXY-DISCONNECT is out; waiting for the agent's
    CLOSED = "CLOSED"  #: nothing more to read; close the socket
    ERROR = "ERROR"  #: the agent broke SPOP; only disconnect() is allowed


_S = ConnectionState
# Members read once: in Python 3.11, ``EnumClass.MEMBER`` goes through the
# metaclass's ``__getattr__`` hook (a fraction of a microsecond each), too dear
# for the calls made for every ACK.
_READY = ConnectionState.READY
_ERROR = ConnectionState.ERROR
_CLOSED = ConnectionState.CLOSED
_CONNECTING = ConnectionState.CONNECTING
_ACK_TYPE = bytes((FrameType.ACK,))
# (state, input) -> next state.  Anything missing is a LocalProtocolError: the
# caller did something the current state does not allow (h11's rule).
_TRANSITIONS: dict[tuple[ConnectionState, str], ConnectionState] = {
    (_S.CONNECTING, "initiate"): _S.HELLO_SENT,
    (_S.HELLO_SENT, "hello"): _S.READY,
    (_S.HELLO_SENT, "disconnect"): _S.DISCONNECTING,
    (_S.READY, "disconnect"): _S.DISCONNECTING,
    (_S.ERROR, "disconnect"): _S.DISCONNECTING,
    (_S.HELLO_SENT, "remote_error"): _S.ERROR,
    (_S.READY, "remote_error"): _S.ERROR,
    (_S.HELLO_SENT, "agent_disconnect"): _S.CLOSED,
    (_S.READY, "agent_disconnect"): _S.CLOSED,
    (_S.DISCONNECTING, "agent_disconnect"): _S.CLOSED,
    (_S.HELLO_SENT, "eof"): _S.CLOSED,
    (_S.READY, "eof"): _S.CLOSED,
    (_S.DISCONNECTING, "eof"): _S.CLOSED,
}


@dataclass(frozen=True, slots=True)
class _Waiting:
    fragmented: bool
    frames: int


_SINGLE_FRAME = _Waiting(False, 1)  # shared: what almost every NOTIFY is


# --------------------------------------------------------------------------- connection


class EngineConnection:
    """The engine (HAProxy) side of one SPOP connection.

    :param max_frame_size: the ``max-frame-size`` we announce (256 or more);
        the agent's answer may lower it.
    :param pipelining: ``option pipelining`` (kept only if the agent has it).
    :param async_: ``option async`` (kept only if the agent has it).
    :param send_frag_payload: ``option send-frag-payload``: a NOTIFY too big for
        one frame is sent in fragments when the agent announced ``fragmentation``.
    :param engine_id: the ``engine-id`` text; a random UUIDv4 when None.  Not
        sent in a health check (HAProxy has no engine there).
    :param healthcheck: the HELLO of ``option spop-check``: ``healthcheck``
        true, empty capabilities, no engine-id; no NOTIFY may follow.
    :param max_ack_size: the largest payload a fragmented ACK may reach
        (:data:`DEFAULT_MAX_ACK_SIZE`); more is status 3.
    :param max_ack_actions: the most actions of one ACK decoded
        (:data:`DEFAULT_MAX_ACK_ACTIONS`); see ``Ack.undecoded``.
    :param ack_cache: where decoded action lists are kept by their bytes
        (agents repeat themselves; see ``fastcodec``): a dict the engine shares
        between its connections, which all have the same ``max_ack_actions``.
        A dict of this connection's own when None.
    :raises LocalProtocolError: status 9 for a max-frame-size out of range.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, pipelining: bool = True,
                 async_: bool = True, send_frag_payload: bool = True,
                 engine_id: str | None = None, healthcheck: bool = False, *,
                 max_ack_size: int = DEFAULT_MAX_ACK_SIZE,
                 max_ack_actions: int = DEFAULT_MAX_ACK_ACTIONS,
                 ack_cache: dict[bytes, Any] | None = None) -> None:
        if not MIN_FRAME_SIZE <= max_frame_size <= 0xFFFFFFFF:
            raise LocalProtocolError(f"max-frame-size {max_frame_size} is not between "
                                     f"{MIN_FRAME_SIZE} and {0xFFFFFFFF}", FrameStatus.BAD_FRAME_SIZE)
        self.configured_max_frame_size = max_frame_size
        self.pipelining = pipelining
        self.async_ = async_
        self.send_frag_payload = send_frag_payload
        self.healthcheck = healthcheck
        self.engine_id: str | None = None if healthcheck else (engine_id or str(uuid.uuid4()))
        self.state = ConnectionState.CONNECTING
        #: What the handshake settled (None before HelloDone).
        self.negotiated: Negotiated | None = None
        #: The AGENT-HELLO accepted (None before HelloDone).
        self.agent_hello: AgentHello | None = None
        #: The error that put the connection in ERROR.
        self.error: RemoteProtocolError | None = None
        #: The status of our HAPROXY-DISCONNECT, once sent.
        self.disconnect_status: int | None = None
        #: The agent's AGENT-DISCONNECT, once received.
        self.agent_disconnect: AgentDisconnected | None = None
        #: ACKs matching nothing and dropped (sync with nothing pending, pipelining).
        self.ignored_acks = 0
        #: Frames skipped: unknown or unexpected types (SPOE.txt §3.2.2).
        self.ignored_frames = 0
        self._buffer = ReceiveBuffer(max_frame_size)
        self._reassembler = Reassembler(max_ack_size)
        self.max_ack_actions = max_ack_actions
        #: decoded action lists by their bytes (fastcodec's ACK cache): agents repeat themselves
        self._ack_cache: dict[bytes, Any] = {} if ack_cache is None else ack_cache
        self._waiting: dict[tuple[int, int], _Waiting] = {}
        # What the handshake settled, as plain attributes for send_notify().
        self._sync = False
        self._limit = max_frame_size

    def __repr__(self) -> str:
        return (f"<EngineConnection {self.state.name} mode={self.mode} "
                f"max_frame_size={self.max_frame_size} waiting={self.waiting}>")

    # ------------------------------------------------------------------ properties

    @property
    def mode(self) -> Mode | None:
        """``"sync"``, ``"pipelining"`` or ``"async"`` after the handshake, else None."""
        return None if self.negotiated is None else self.negotiated.mode

    @property
    def max_frame_size(self) -> int:
        """The negotiated frame size after the handshake; the configured one before."""
        if self.negotiated is None:
            return self.configured_max_frame_size
        return self.negotiated.max_frame_size

    @property
    def agent_fragmentation(self) -> bool:
        """The agent announced ``fragmentation`` (it can receive fragmented NOTIFY)."""
        return self.negotiated is not None and self.negotiated.fragmentation

    @property
    def waiting(self) -> int:
        """Frames sent on this connection and not acknowledged yet."""
        return len(self._waiting)

    def is_waiting(self, stream_id: int, frame_id: int) -> bool:
        """The NOTIFY ``(stream_id, frame_id)`` was sent here and not acknowledged."""
        return (stream_id, frame_id) in self._waiting

    @property
    def capabilities(self) -> str:
        """The ``capabilities`` of our HELLO: HAProxy's order, never ``fragmentation``
        (HAProxy never announces it, and we do not either)."""
        if self.healthcheck:
            return ""
        return ",".join(name for name, on in (("pipelining", self.pipelining),
                                              ("async", self.async_)) if on)

    # ------------------------------------------------------------------ sending

    def _transition(self, what: str) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, what)]
        except KeyError:
            raise LocalProtocolError(f"cannot {what.replace('_', ' ')} in state {self.state.name}",
                                     FrameStatus.INVALID) from None

    def hello_frame(self) -> HaproxyHello:
        """The HAPROXY-HELLO as HAProxy 2.6 builds it (``spoe_prepare_hahello_frame()``)."""
        return HaproxyHello.make(max_frame_size=self.configured_max_frame_size,
                                 capabilities=self.capabilities, engine_id=self.engine_id,
                                 healthcheck=self.healthcheck)

    def initiate(self) -> bytes:
        """The HAPROXY-HELLO bytes to write first.

        :raises LocalProtocolError: when called twice.
        """
        self._transition("initiate")
        return encode_frame(self.hello_frame())

    def send_notify(self, stream_id: int, frame_id: int, payload: bytes) -> list[bytes]:
        """The wire frames of one NOTIFY: one frame, or fragments when the payload
        does not fit, ``send_frag_payload`` is on and the agent announced
        ``fragmentation``.  Write them all, in order.  The NOTIFY then waits for
        its ACK on this connection.

        :param payload: the LIST-OF-MESSAGES bytes (``MessageEncoder`` /
            ``encode_messages``).
        :raises LocalProtocolError: status 3 when it is too big and cannot be
            fragmented (nothing was sent; the connection is still usable); when
            the connection is not READY, is a health check, already waits for
            these ids, or is in sync mode with a NOTIFY already waiting.
        """
        if self.state is not _READY or self.healthcheck:
            what = "a health check" if self.healthcheck else f"state {self.state.name}"
            raise LocalProtocolError(f"cannot send a NOTIFY in {what}", FrameStatus.INVALID)
        key = (stream_id, frame_id)
        if key in self._waiting:
            raise LocalProtocolError(f"NOTIFY ({stream_id}, {frame_id}) is already waiting for its ACK",
                                     FrameStatus.INVALID)
        if self._sync and self._waiting:
            raise LocalProtocolError("sync mode: a NOTIFY is already waiting for its ACK",
                                     FrameStatus.INVALID)
        frame = encode_notify(stream_id, frame_id, payload)
        limit = self._limit
        if len(frame) - 4 <= limit:
            self._waiting[key] = _SINGLE_FRAME
            return [frame]
        if not self.send_frag_payload or not self.agent_fragmentation:
            why = ("option send-frag-payload is off" if not self.send_frag_payload
                   else "the agent did not announce fragmentation")
            raise LocalProtocolError(f"NOTIFY of {len(frame) - 4} bytes is over the max-frame-size "
                                     f"of {limit} and {why}: nothing sent", FrameStatus.TOO_BIG)
        frames = fragment_notify(stream_id, frame_id, payload, limit)
        self._waiting[key] = _Waiting(True, len(frames))
        return frames

    def send(self, frame: Notify | HaproxyDisconnect) -> bytes:
        """h11's ``send(event) -> bytes``: a :class:`Notify` (all its frames,
        joined) or a :class:`HaproxyDisconnect`."""
        if isinstance(frame, Notify):
            payload = encode_messages(frame.messages)
            return b"".join(self.send_notify(frame.stream_id, frame.frame_id, payload))
        if isinstance(frame, HaproxyDisconnect):
            code = frame.status_code
            text = frame.message
            return self.disconnect(int(code) if isinstance(code, int) else 0,
                                   text if isinstance(text, str) else None)
        raise LocalProtocolError(f"the engine does not send {type(frame).__name__} frames",
                                 FrameStatus.INVALID)

    def abandon(self, stream_id: int, frame_id: int, *, frames_written: int | None = None) -> bytes:
        """Forget a waiting NOTIFY (its processing timed out, or its ACK came on
        another connection): a later ACK for it matches nothing.

        :param frames_written: how many of its frames the caller wrote, when it
            stopped part-way through a fragmented NOTIFY.
        :returns: ``b""``, or the FIN|ABORT frame to write when a fragmented
            NOTIFY was left part-way (as HAProxy does).
        """
        waiting = self._waiting.pop((stream_id, frame_id), None)
        if waiting is None or not waiting.fragmented or frames_written is None:
            return b""
        if 0 < frames_written < waiting.frames:
            return abort_frame(stream_id, frame_id)
        return b""

    def disconnect(self, status: int = 0, message: str | None = None) -> bytes:
        """The HAPROXY-DISCONNECT to write (``message`` defaults to HAProxy's
        reason text for ``status``); then wait for the agent's AGENT-DISCONNECT or
        EOF.  Frames still waiting stay counted: the caller fails them.

        :raises LocalProtocolError: before ``initiate()``, or when already
            disconnecting or closed.
        """
        self._transition("disconnect")
        self.disconnect_status = status
        text = frame_status_reason(status) if message is None else message
        return encode_frame(HaproxyDisconnect.make(status, text))

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the agent; ``b""`` means it closed the connection.

        :raises LocalProtocolError: data after ``b""``.
        """
        self._buffer.feed(data)

    def next_event(self) -> Event | type[NEED_DATA]:
        """The next event: :class:`HelloDone`, :class:`AckReceived`,
        :class:`AgentDisconnected`, :class:`ConnectionClosed`, or ``NEED_DATA``.

        :raises RemoteProtocolError: the agent broke SPOP (``.status`` is the SPOP
            status to send with :meth:`disconnect`); raised again on every call.
        :raises LocalProtocolError: before :meth:`initiate`.
        """
        state = self.state
        if state is _ERROR:
            assert self.error is not None
            raise self.error
        if state is _CLOSED:
            return ConnectionClosed()
        if state is _CONNECTING:
            raise LocalProtocolError("call initiate() before next_event()", FrameStatus.INVALID)
        buffer = self._buffer
        while True:
            try:
                body = buffer.next_frame()
            except RemoteProtocolError as exc:
                if self.state is ConnectionState.DISCONNECTING:
                    # The stream is lost but we are leaving anyway.
                    self.state = ConnectionState.CLOSED
                    return ConnectionClosed(len(buffer))
                raise self._fail(exc) from None
            if body is None:
                if buffer.eof:
                    self._transition("eof")
                    return ConnectionClosed(len(buffer))
                return NEED_DATA
            if state is _READY and body[:1] == _ACK_TYPE:
                # The hot path: a whole ACK on a ready connection, decoded
                # without the type dispatch; any irregularity (fragments, a
                # malformed action, ...) takes the full path below.
                try:
                    ack = _fast_ack(body, self.max_ack_actions, self._ack_cache)
                except (_Fallback, IndexError, ValueError):
                    pass
                else:
                    key = (ack.stream_id, ack.frame_id)
                    waiting = self._waiting
                    # _match(), its usual answer inlined (one hash of the key)
                    entry = waiting.pop(key, None)
                    if entry is _SINGLE_FRAME:
                        return AckReceived._trusted(ack, True, False, False)
                    if entry is not None:
                        waiting[key] = entry  # _match() decides (a fragmented NOTIFY's)
                    try:
                        event = self._match(ack, aborted_ack=False)
                    except RemoteProtocolError as exc:  # sync: an ACK for another frame
                        raise self._fail(exc) from None
                    if event is not None:
                        return event
                    continue
            event = self._handle(body)
            if event is not None:
                return event

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        self._transition("remote_error")
        self.error = exc
        return exc

    def _handle(self, body: bytes) -> Event | None:
        if body and body[0] == FrameType.AGENT_DISCONNECT:
            # Checked first in every state, as HAProxy does.
            event = _agent_disconnected(body)
            self._transition("agent_disconnect")
            self.agent_disconnect = event
            return event
        state = self.state
        if state is ConnectionState.HELLO_SENT:
            return self._handle_hello(body)
        if state is ConnectionState.READY:
            return self._handle_ready(body)
        # DISCONNECTING: "All other frames will be ignored" (SPOE.txt §3.2.8).
        self.ignored_frames += 1
        return None

    def _handle_hello(self, body: bytes) -> Event:
        try:
            check_hello_header(body)
            try:
                frame = decode_frame_body(body)
            except RemoteProtocolError as exc:
                raise RemoteProtocolError(f"invalid AGENT-HELLO: {exc.message}",
                                          FrameStatus.INVALID) from None
            assert isinstance(frame, AgentHello)  # the header check saw type 101 and FIN
            negotiated = negotiate(frame, max_frame_size=self.configured_max_frame_size,
                                   pipelining=self.pipelining, async_=self.async_,
                                   healthcheck=self.healthcheck)
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        self._transition("hello")
        self.negotiated = negotiated
        self._sync = negotiated.mode == "sync"
        self._limit = negotiated.max_frame_size
        self.agent_hello = frame
        self._buffer.max_frame_size = negotiated.max_frame_size
        return HelloDone(frame, negotiated.mode, negotiated.max_frame_size, negotiated.fragmentation)

    def _handle_ready(self, body: bytes) -> Event | None:
        if len(body) < 7 or body[0] not in (FrameType.ACK, FrameType.UNSET):
            # HAProxy silently skips frames other than ACK (SPOE.txt §3.2.2).
            self.ignored_frames += 1
            return None
        try:
            frame = decode_frame_body(body, max_actions=self.max_ack_actions)
            if isinstance(frame, Fragment):
                done = self._reassembler.feed(frame)
                if done is None:
                    return None
                if done.abort:
                    ack = Ack(done.stream_id, done.frame_id, (), done.flags)
                    return self._match(ack, aborted_ack=True)
                decoded = decode_payload(FrameType.ACK, done.payload, stream_id=done.stream_id,
                                         frame_id=done.frame_id, max_actions=self.max_ack_actions)
                assert isinstance(decoded, Ack)
                return self._match(decoded, aborted_ack=False)
            assert isinstance(frame, Ack)
            return self._match(frame, aborted_ack=False)
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None

    def _match(self, ack: Ack, *, aborted_ack: bool) -> Event | None:
        """docs/explanation/haproxy-behaviour.md §2.3: exact match on both ids; what an
        unknown ACK does depends on the mode."""
        waiting = self._waiting.pop((ack.stream_id, ack.frame_id), None)
        if waiting is not None:
            if waiting is _SINGLE_FRAME and not aborted_ack:
                return AckReceived._trusted(ack, True, False, False)
            aborted = aborted_ack or (waiting.fragmented and bool(ack.flags & FLAG_ABORT))
            return AckReceived(ack, True, waiting.fragmented, aborted)
        mode = self.mode
        if mode == "async":
            return AckReceived(ack, False, False, aborted_ack)
        if mode == "sync" and self._waiting:
            raise RemoteProtocolError(
                f"ACK ({ack.stream_id}, {ack.frame_id}) does not answer the NOTIFY waiting "
                f"{next(iter(self._waiting))}", FrameStatus.FRAMEID_NOTFOUND)
        # pipelining, or sync with nothing pending any more (it timed out).
        self.ignored_acks += 1
        return None


def _agent_disconnected(body: bytes) -> AgentDisconnected:
    """The status and message of an AGENT-DISCONNECT, keys matched by prefix
    as in ``spoe_handle_agentdiscon_frame()``; an unreadable frame still ends the
    connection."""
    try:
        frame = decode_frame_body(body)
    except RemoteProtocolError:
        return AgentDisconnected(None, None)
    status: int | None = None
    message: str | None = None
    if isinstance(frame, AgentDisconnect):
        for key, value in frame.items:
            if key.startswith("status-code") and isinstance(value, int) and not isinstance(value, bool):
                status = int(value)
            elif key.startswith("message") and isinstance(value, str):
                message = value
    return AgentDisconnected(status, message)
