"""SPOP frames <-> bytes: the frozen dataclasses of :mod:`.frames` over the
construct grammar of :mod:`.grammar` (SPOE.txt §3).

Two paths give the same results (the fast one's pieces live in :mod:`.fastcodec`):

* the **grammar path** (:func:`encode_frame_by_grammar`,
  :func:`decode_frame_body_by_grammar`) converts dataclasses to construct
  containers and back.  It is the reference: every check lives there.
* the **fast path** (the public functions) is plain Python for the frames seen
  on every request.  On decoding it never judges anything itself: at the first
  irregularity (a short buffer, an unknown type, a malformed action, ...) it gives
  the *whole* frame to the grammar path, so errors and truncated ACKs always
  come from the grammar.  Tests prove with hypothesis that both paths give the
  same bytes and the same frames.

Decoding raises :class:`~spoe_sync.errors.RemoteProtocolError` (status 4, invalid
frame) for malformed input and nothing else.  Encoding raises
:class:`~spoe_sync.errors.LocalProtocolError` (status 4) for a value SPOP cannot
carry (an integer outside int64/uint64, more than 255 args, a ``str`` with lone
surrogates, an object of no SPOP type).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from construct import ConstructError

from ..errors import LocalProtocolError, RemoteProtocolError
from . import grammar
from .constants import FLAG_FIN, DataType, FrameType
from .fastcodec import (
    _ENCODERS,
    _HEAD,
    _ID,
    _KV_CLASSES,
    _LENGTH,
    _MASK,
    _SCOPES,
    _SMALL,
    UNBOUNDED,
    _Fallback,
    _fast_frame,
    _fast_payload,
    _name,
    untagged,
)

# Re-exported: the fast path's pieces used to live here, and tests reach them here.
from .fastcodec import _read_value as _read_value
from .fastcodec import _read_varint as _read_varint
from .fastcodec import _varint as _varint
from .frames import (
    Ack,
    Action,
    Fragment,
    Frame,
    Message,
    Notify,
    SetVar,
    UnknownFrame,
    UnsetVar,
)
from .values import Value, data_type_of

_NOTIFY_FIN = bytes((FrameType.NOTIFY, 0, 0, 0, FLAG_FIN))  # FRAME-TYPE, FLAGS

__all__ = [
    "MessageEncoder",
    "decode_frame",
    "decode_frame_body",
    "decode_frame_body_by_grammar",
    "decode_payload",
    "encode_frame",
    "encode_frame_by_grammar",
    "encode_messages",
    "encode_notify",
    "encode_raw_frame",
    "encode_value",
]


def _frame_name(frame_type: int) -> str:
    try:
        return FrameType(frame_type).name.replace("_", "-")
    except ValueError:
        return f"type-{frame_type}"


def _remote_error(exc: ConstructError, what: str) -> RemoteProtocolError:
    # construct puts "Error in path (parsing) -> a -> b" on the first line.
    lines = str(exc).splitlines()
    detail = lines[-1] if lines else type(exc).__name__
    where = (exc.path or "").replace("(parsing) -> ", "").replace("(parsing)", "").strip()
    place = f" (in {where})" if where else ""
    return RemoteProtocolError(f"malformed {what}: {detail}{place}", 4)


# =========================================================== grammar path


def _tagged(value: Value) -> dict[str, Any]:
    """A Python value as a :data:`grammar.TypedData` container."""
    try:
        dtype = data_type_of(value)
    except TypeError as exc:
        raise LocalProtocolError(f"cannot encode {exc}", 4) from None
    if dtype == DataType.BOOL:
        return {"tag": {"flags": 1 if value else 0, "type": dtype}, "value": None}
    if dtype == DataType.BINARY:
        value = bytes(value)  # type: ignore[arg-type]
    return {"tag": {"flags": 0, "type": dtype}, "value": value}


def _payload_container(frame: Frame) -> Any:
    if isinstance(frame, (Fragment, UnknownFrame)):
        return bytes(frame.payload)
    if isinstance(frame, Notify):
        return [{"name": m.name, "args": [{"name": n, "value": _tagged(v)} for n, v in m.args]}
                for m in frame.messages]
    if isinstance(frame, Ack):
        actions = []
        for act in frame.actions:
            args: dict[str, Any] = {"scope": int(act.scope), "name": act.name}
            if isinstance(act, SetVar):
                args["value"] = _tagged(act.value)
            actions.append({"type": 1 if isinstance(act, SetVar) else 2, "args": args})
        return {"actions": actions, "rest": b""}
    return [{"name": n, "value": _tagged(v)} for n, v in frame.items]


def _frame_type(frame: Frame) -> int:
    return frame.frame_type if isinstance(frame, (Fragment, UnknownFrame)) else int(frame.TYPE)


def encode_frame_by_grammar(frame: Frame) -> bytes:
    """:func:`encode_frame` through the construct grammar (the reference)."""
    ftype = _frame_type(frame)
    raw = isinstance(frame, (Fragment, UnknownFrame))
    # The grammar the payload is written in; a Notify/Ack without FIN still
    # carries messages/actions even though a decoder will see a Fragment.
    kind = "raw" if raw else grammar.payload_kind(ftype, FLAG_FIN)
    header = {"type": ftype, "flags": frame.flags, "stream_id": frame.stream_id,
              "frame_id": frame.frame_id}
    try:
        payload = _payload_container(frame)
        if grammar.payload_kind(ftype, frame.flags) == kind:
            return bytes(grammar.Frame.build(dict(header, payload=payload)))
        body = grammar.FrameHeader.build(header) + grammar.PAYLOADS[kind].build(payload)
        return bytes(grammar.FrameLength.build(len(body)) + body)
    except ConstructError as exc:
        raise LocalProtocolError(f"cannot encode {_frame_name(ftype)} frame: {exc}", 4) from None


def _frame_from(ftype: int, flags: int, sid: int, fid: int, kind: str, payload: Any) -> Frame:
    if kind == "kv":
        items = tuple((kv.name, untagged(kv.value)) for kv in payload)
        cls = _KV_CLASSES[ftype]
        return cls(items, flags, sid, fid)
    if kind == "messages":
        msgs = tuple(Message(m.name, tuple((a.name, untagged(a.value)) for a in m.args))
                     for m in payload)
        return Notify(sid, fid, msgs, flags)
    if kind == "actions":
        actions: list[Action] = []
        for act in payload.actions:
            scope = _SCOPES[act.args.scope]
            if act.type == 1:
                actions.append(SetVar(scope, act.args.name, untagged(act.args.value)))
            else:
                actions.append(UnsetVar(scope, act.args.name))
        return Ack(sid, fid, tuple(actions), flags, bool(payload.rest))
    if ftype in (FrameType.UNSET, FrameType.NOTIFY, FrameType.ACK):
        return Fragment(ftype, sid, fid, bytes(payload), flags)
    return UnknownFrame(ftype, sid, fid, bytes(payload), flags)


def decode_frame_body_by_grammar(body: bytes) -> Frame:
    """:func:`decode_frame_body` through the construct grammar (the reference)."""
    try:
        c = grammar.FrameBody.parse(bytes(body))
    except ConstructError as exc:
        what = f"{_frame_name(body[0])} frame" if len(body) else "frame"
        raise _remote_error(exc, what) from None
    kind = grammar.payload_kind(c.type, c.flags)
    return _frame_from(c.type, c.flags, c.stream_id, c.frame_id, kind, c.payload)


# =========================================================== fast path: encoding

def encode_value(value: Value) -> bytes:
    """The TYPED-DATA bytes of one value (SPOE.txt §3.1; type in the low nibble).

    :raises LocalProtocolError: the value has no SPOP type or does not fit it.
    """
    enc = _ENCODERS.get(type(value))
    if enc is not None:
        return enc(value)
    try:  # subclasses, bytearray, memoryview: rare enough for the grammar
        return bytes(grammar.TypedData.build(_tagged(value)))
    except ConstructError as exc:
        raise LocalProtocolError(f"cannot encode {value!r}: {exc}", 4) from None


class MessageEncoder:
    """Encodes one message of a NOTIFY payload (SPOE.txt §3.2.6) again and again.

    The message name, NB-ARGS and the arg names are built once here; each
    :meth:`encode` call only encodes the values.  The engine keeps one per
    ``spoe-message``.

    :param name: the message name.
    :param arg_names: the arg names in order (``""`` for an unnamed arg; at most 255).
    :raises LocalProtocolError: more than 255 args, or a name that cannot be encoded.
    """

    __slots__ = ("_head", "_names", "_one", "arg_names", "name")

    def __init__(self, name: str, arg_names: Sequence[str]) -> None:
        if len(arg_names) > 255:
            raise LocalProtocolError(
                f"message {name!r} has {len(arg_names)} args; SPOP allows 255", 4)
        self.name = name
        self.arg_names = tuple(arg_names)
        self._head = _name(name) + bytes((len(arg_names),))
        self._names = tuple(_name(n) for n in arg_names)
        #: a message of one arg: everything before its value, in one piece
        self._one = self._head + self._names[0] if len(self._names) == 1 else None

    def encode(self, values: Sequence[Value]) -> bytes:
        """The bytes of the message with these values (one per arg name).

        :raises LocalProtocolError: wrong number of values, or a value SPOP
            cannot carry.
        """
        names = self._names
        if len(values) != len(names):
            raise LocalProtocolError(
                f"message {self.name!r} takes {len(names)} values, got {len(values)}", 4)
        if len(names) == 1:
            return self.encode_one(values[0])
        parts = [self._head]
        get = _ENCODERS.get
        for arg, value in zip(names, values):
            enc = get(type(value))
            parts.append(arg)
            parts.append(enc(value) if enc is not None else encode_value(value))
        return b"".join(parts)


    def encode_one(self, value: Value) -> bytes:
        """``encode((value,))`` for a message of one arg, the usual one (``src``,
        an IP reputation check): no sequence to build or check.

        :raises LocalProtocolError: the message does not take one value, or
            SPOP cannot carry this one.
        """
        one = self._one
        if one is None:
            raise LocalProtocolError(
                f"message {self.name!r} takes {len(self._names)} values, got 1", 4)
        enc = _ENCODERS.get(type(value))
        return one + (enc(value) if enc is not None else encode_value(value))


def encode_messages(messages: Sequence[Message]) -> bytes:
    """A NOTIFY payload (LIST-OF-MESSAGES) of these messages."""
    return b"".join(
        MessageEncoder(m.name, [n for n, _ in m.args]).encode([v for _, v in m.args])
        for m in messages)


def encode_raw_frame(frame_type: int, flags: int, stream_id: int, frame_id: int,
                     payload: bytes) -> bytes:
    """Length prefix, header and ``payload`` as given (used for fragments).

    :raises LocalProtocolError: a field out of its range.
    """
    if not 0 <= frame_type <= 255 or not 0 <= flags <= 0xFFFFFFFF:
        raise LocalProtocolError(f"cannot encode frame type {frame_type} flags {flags}", 4)
    ids = _ID(stream_id) + _ID(frame_id)
    size = 5 + len(ids) + len(payload)
    if size > 0xFFFFFFFF:
        raise LocalProtocolError(f"frame of {size} bytes does not fit FRAME-LENGTH", 3)
    return _HEAD.pack(size, frame_type, flags) + ids + bytes(payload)


def encode_notify(stream_id: int, frame_id: int, payload: bytes, flags: int = FLAG_FIN) -> bytes:
    """A whole NOTIFY frame (length prefix included) around a payload made by
    :class:`MessageEncoder` / :func:`encode_messages`.  The hot path."""
    if flags == FLAG_FIN and 0 <= stream_id <= _MASK and 0 <= frame_id <= _MASK \
            and type(payload) is bytes:
        # encode_raw_frame() with the checks that cannot fail here left out, and
        # the one-byte varint of a stream's first 239 frames read from its table.
        sid = _SMALL[stream_id] if stream_id < 240 else _varint(stream_id)
        fid = _SMALL[frame_id] if frame_id < 240 else _varint(frame_id)
        size = 5 + len(sid) + len(fid) + len(payload)
        if size <= 0xFFFFFFFF:
            return b"".join((_LENGTH.pack(size), _NOTIFY_FIN, sid, fid, payload))
    return encode_raw_frame(FrameType.NOTIFY, flags, stream_id, frame_id, payload)


def _encode_payload(frame: Frame) -> bytes:
    if isinstance(frame, Notify):
        return encode_messages(frame.messages)
    if isinstance(frame, Ack):
        parts = []
        for act in frame.actions:
            scope = int(act.scope)
            if not 0 <= scope <= 4:
                raise LocalProtocolError(f"cannot encode var scope {act.scope!r}", 4)
            if isinstance(act, SetVar):
                parts.append(b"\x01\x03" + _SMALL[scope] + _name(act.name) + encode_value(act.value))
            else:
                parts.append(b"\x02\x02" + _SMALL[scope] + _name(act.name))
        return b"".join(parts)
    if isinstance(frame, (Fragment, UnknownFrame)):
        return bytes(frame.payload)
    return b"".join(_name(n) + encode_value(v) for n, v in frame.items)


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of a frame, 4-byte length prefix included.

    A decoded truncated :class:`Ack` re-encodes its kept actions only.

    :raises LocalProtocolError: a field or value SPOP cannot carry.
    """
    return encode_raw_frame(_frame_type(frame), frame.flags, frame.stream_id, frame.frame_id,
                            _encode_payload(frame))



def decode_frame_body(body: bytes, *, max_actions: int = UNBOUNDED) -> Frame:
    """Decode one frame without its 4-byte length prefix (what a receive buffer
    yields once it has checked the length against max-frame-size).

    :param max_actions: decode at most this many actions of an ACK; the bytes
        of the others are counted in ``Ack.undecoded``.
    :raises RemoteProtocolError: the frame is malformed (status 4).
    """
    buf = bytes(body)
    try:
        return _fast_frame(buf, 0, max_actions)
    except (_Fallback, IndexError, ValueError):  # the grammar path decides
        return decode_frame_body_by_grammar(buf)


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one whole frame, 4-byte length prefix included.

    :raises RemoteProtocolError: the frame is malformed or its FRAME-LENGTH does
        not match the bytes given (status 4).
    """
    buf = bytes(data)
    if len(buf) < 4:
        raise RemoteProtocolError(f"malformed frame: {len(buf)} bytes, no FRAME-LENGTH", 4)
    (size,) = _LENGTH.unpack_from(buf)
    if size != len(buf) - 4:
        raise RemoteProtocolError(
            f"malformed frame: FRAME-LENGTH says {size} bytes, {len(buf) - 4} given", 4)
    try:
        return _fast_frame(buf, 4)
    except (_Fallback, IndexError, ValueError):  # the grammar path decides
        return decode_frame_body_by_grammar(buf[4:])


def decode_payload(frame_type: int, payload: bytes, *, flags: int = FLAG_FIN,
                   stream_id: int = 0, frame_id: int = 0, max_actions: int = UNBOUNDED) -> Frame:
    """Decode a (reassembled) payload as the payload of a frame of this type and
    header; the connection uses it once the fragments of a frame are joined.

    :param max_actions: as for :func:`decode_frame_body`.
    :raises RemoteProtocolError: the payload is malformed (status 4).
    """
    buf = bytes(payload)
    try:
        return _fast_payload(frame_type, flags, stream_id, frame_id, buf, 0, max_actions)
    except (_Fallback, IndexError, ValueError):  # the grammar path decides
        pass
    kind = grammar.payload_kind(frame_type, flags)
    try:
        parsed = grammar.PAYLOADS[kind].parse(buf)
    except ConstructError as exc:
        raise _remote_error(exc, f"{_frame_name(frame_type)} payload") from None
    return _frame_from(frame_type, flags, stream_id, frame_id, kind, parsed)
