"""SPOP frames <-> bytes: the frozen dataclasses of :mod:`.frames` over the
construct grammar of :mod:`.grammar` (SPOE.txt §3).

Two paths give the same results:

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

import dataclasses
import struct
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from construct import ConstructError

from ..errors import LocalProtocolError, RemoteProtocolError
from . import grammar
from .constants import FLAG_FIN, DataType, FrameType, VarScope
from .frames import (
    KV,
    Ack,
    Action,
    AgentDisconnect,
    AgentHello,
    Fragment,
    Frame,
    HaproxyDisconnect,
    HaproxyHello,
    Message,
    Notify,
    SetVar,
    UnknownFrame,
    UnsetVar,
)
from .values import Int32, Int64, UInt32, UInt64, Value, data_type_of

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

_MASK = grammar.U64_MASK
_I64_MIN = -(1 << 63)
_I64_LIMIT = 1 << 63
_KV_CLASSES: dict[int, Any] = {
    FrameType.HAPROXY_HELLO: HaproxyHello,
    FrameType.HAPROXY_DISCONNECT: HaproxyDisconnect,
    FrameType.AGENT_HELLO: AgentHello,
    FrameType.AGENT_DISCONNECT: AgentDisconnect,
}
_SCOPES = tuple(VarScope)
_INT_CLASSES: dict[int, Callable[[int], int]] = {
    DataType.INT32: Int32, DataType.UINT32: UInt32, DataType.INT64: Int64, DataType.UINT64: UInt64,
}
_HEAD = struct.Struct(">IBI")  # FRAME-LENGTH, FRAME-TYPE, FLAGS
_TYPE_FLAGS = struct.Struct(">BI")
_LENGTH = struct.Struct(">I")


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


def _untagged(tagged: Any) -> Value:
    dtype = tagged.tag.type
    if dtype == DataType.NULL:
        return None
    if dtype == DataType.BOOL:
        return bool(tagged.tag.flags == 1)
    if dtype in _INT_CLASSES:
        return _INT_CLASSES[dtype](tagged.value)
    if dtype == DataType.STRING and tagged.tag.flags:
        # HAProxy (spoe_decode_data) keeps a STRING as text only when the type
        # byte is exactly 0x08; with flags it becomes binary.
        return bytes(tagged.value.encode("utf-8", "surrogateescape"))
    value: Value = tagged.value
    return value


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
        items = tuple((kv.name, _untagged(kv.value)) for kv in payload)
        cls = _KV_CLASSES[ftype]
        return cls(items, flags, sid, fid)
    if kind == "messages":
        msgs = tuple(Message(m.name, tuple((a.name, _untagged(a.value)) for a in m.args))
                     for m in payload)
        return Notify(sid, fid, msgs, flags)
    if kind == "actions":
        actions: list[Action] = []
        for act in payload.actions:
            scope = _SCOPES[act.args.scope]
            if act.type == 1:
                actions.append(SetVar(scope, act.args.name, _untagged(act.args.value)))
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

_SMALL = tuple(bytes((i,)) for i in range(240))


def _varint(value: int) -> bytes:
    """HAProxy's varint of a uint64 the caller has range-checked."""
    if value < 240:
        return _SMALL[value]
    out = bytearray(((value & 0xFF) | 0xF0,))
    value = (value - 240) >> 4
    while value >= 128:
        out.append((value & 0xFF) | 0x80)
        value = (value - 128) >> 7
    out.append(value)
    return bytes(out)


def _integer(prefix: bytes, low: int, high: int, what: str) -> Callable[[Any], bytes]:
    def enc(value: int) -> bytes:
        if low <= value <= high:
            return prefix + _varint(value & _MASK)
        raise LocalProtocolError(f"cannot encode {value!r}: not {what}", 4)
    return enc


_INT64 = _integer(b"\x04", _I64_MIN, _I64_LIMIT - 1, "an int64")
_ID = _integer(b"", 0, _MASK, "a uint64 stream-id/frame-id")


def _text(value: str) -> bytes:
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"cannot encode string {value!r}: {exc.reason}", 4) from None
    return b"\x08" + _varint(len(data)) + data


def _binary(value: bytes) -> bytes:
    return b"\x09" + _varint(len(value)) + value


# Exact type -> encoder; subclasses go through data_type_of() (see encode_value).
_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    str: _text,
    IPv4Address: lambda v: b"\x06" + v.packed,
    int: _INT64,
    type(None): lambda v: b"\x00",
    bool: lambda v: b"\x11" if v else b"\x01",
    bytes: _binary,
    IPv6Address: lambda v: b"\x07" + v.packed,
    Int64: _INT64,
    Int32: _integer(b"\x02", _I64_MIN, _I64_LIMIT - 1, "an int64"),
    UInt32: _integer(b"\x03", 0, _MASK, "a uint64"),
    UInt64: _integer(b"\x05", 0, _MASK, "a uint64"),
}
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


def _name(text: str) -> bytes:
    try:
        data = text.encode("utf-8", "surrogateescape")
    except (UnicodeEncodeError, AttributeError):
        raise LocalProtocolError(f"cannot encode name {text!r}", 4) from None
    return _varint(len(data)) + data


class MessageEncoder:
    """Encodes one message of a NOTIFY payload (SPOE.txt §3.2.6) again and again.

    The message name, NB-ARGS and the arg names are built once here; each
    :meth:`encode` call only encodes the values.  The engine keeps one per
    ``spoe-message``.

    :param name: the message name.
    :param arg_names: the arg names in order (``""`` for an unnamed arg; at most 255).
    :raises LocalProtocolError: more than 255 args, or a name that cannot be encoded.
    """

    __slots__ = ("_head", "_names", "arg_names", "name")

    def __init__(self, name: str, arg_names: Sequence[str]) -> None:
        if len(arg_names) > 255:
            raise LocalProtocolError(
                f"message {name!r} has {len(arg_names)} args; SPOP allows 255", 4)
        self.name = name
        self.arg_names = tuple(arg_names)
        self._head = _name(name) + bytes((len(arg_names),))
        self._names = tuple(_name(n) for n in arg_names)

    def encode(self, values: Sequence[Value]) -> bytes:
        """The bytes of the message with these values (one per arg name).

        :raises LocalProtocolError: wrong number of values, or a value SPOP
            cannot carry.
        """
        names = self._names
        if len(values) != len(names):
            raise LocalProtocolError(
                f"message {self.name!r} takes {len(names)} values, got {len(values)}", 4)
        parts = [self._head]
        get = _ENCODERS.get
        for arg, value in zip(names, values):
            enc = get(type(value))
            parts.append(arg)
            parts.append(enc(value) if enc is not None else encode_value(value))
        return b"".join(parts)


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


# =========================================================== fast path: decoding


class _Fallback(Exception):
    """Anything unusual: let the grammar path decide."""


def _setters(cls: Any, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    # Frozen __init__ pays an object.__setattr__ call per field: a third of the
    # cost of decoding an ACK.  These frames have no __post_init__ to skip.
    assert not hasattr(cls, "__post_init__")
    assert [f.name for f in dataclasses.fields(cls)] == list(names)
    return tuple(cls.__dict__[name].__set__ for name in names)


_ACK_SLOTS = _setters(Ack, "stream_id", "frame_id", "actions", "flags", "truncated")
_SET_VAR_SLOTS = _setters(SetVar, "scope", "name", "value")


def _new_ack(sid: int, fid: int, actions: tuple[Action, ...], flags: int) -> Ack:
    s_sid, s_fid, s_actions, s_flags, s_truncated = _ACK_SLOTS
    ack: Ack = object.__new__(Ack)
    s_sid(ack, sid)
    s_fid(ack, fid)
    s_actions(ack, actions)
    s_flags(ack, flags)
    s_truncated(ack, False)
    return ack


def _new_set_var(scope: VarScope, name: str, value: Value) -> SetVar:
    s_scope, s_name, s_value = _SET_VAR_SLOTS
    action: SetVar = object.__new__(SetVar)
    s_scope(action, scope)
    s_name(action, name)
    s_value(action, value)
    return action


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = buf[pos]
    pos += 1
    if value < 240:
        return value, pos
    shift = 4
    for _ in range(9):
        byte = buf[pos]
        pos += 1
        value += byte << shift
        if byte < 128:
            return value & _MASK, pos
        shift += 7
    raise _Fallback


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    size = buf[pos]
    pos += 1
    if size >= 240:
        size, pos = _read_varint(buf, pos - 1)
    end = pos + size
    if end > len(buf):
        raise _Fallback
    return buf[pos:end], end


def _read_name(buf: bytes, pos: int) -> tuple[str, int]:
    data, pos = _read_bytes(buf, pos)
    return data.decode("utf-8", "surrogateescape"), pos


def _read_value(buf: bytes, pos: int) -> tuple[Value, int]:
    tag = buf[pos]
    dtype = tag & 0x0F
    pos += 1
    if dtype == 8:
        data, pos = _read_bytes(buf, pos)
        return (data.decode("utf-8", "surrogateescape") if tag == 8 else data), pos
    if 2 <= dtype <= 5:
        raw, pos = _read_varint(buf, pos)
        if dtype & 1:  # UINT32, UINT64
            return (UInt32 if dtype == 3 else UInt64)(raw), pos
        return (Int32 if dtype == 2 else Int64)(raw - (1 << 64) if raw >= _I64_LIMIT else raw), pos
    if dtype == 9:
        return _read_bytes(buf, pos)
    if dtype == 6:
        if pos + 4 > len(buf):
            raise _Fallback
        return IPv4Address(buf[pos:pos + 4]), pos + 4
    if dtype == 1:
        return tag >> 4 == 1, pos
    if dtype == 0:
        return None, pos
    if dtype == 7 and pos + 16 <= len(buf):
        return IPv6Address(buf[pos:pos + 16]), pos + 16
    raise _Fallback


def _fast_actions(flags: int, sid: int, fid: int, buf: bytes, pos: int) -> Ack:
    end = len(buf)
    actions: list[Action] = []
    while pos < end:
        atype, nb_args, scope, size = buf[pos:pos + 4]
        pos += 4
        if scope > 4 or size >= 240 or pos + size > end:
            raise _Fallback
        name = buf[pos:pos + size].decode("utf-8", "surrogateescape")
        pos += size
        if atype == 1 and nb_args == 3:
            value, pos = _read_value(buf, pos)
            actions.append(_new_set_var(_SCOPES[scope], name, value))
        elif atype == 2 and nb_args == 2:
            actions.append(UnsetVar(_SCOPES[scope], name))
        else:
            raise _Fallback
    return _new_ack(sid, fid, tuple(actions), flags)


def _fast_payload(ftype: int, flags: int, sid: int, fid: int, buf: bytes, pos: int) -> Frame:
    kind = grammar.payload_kind(ftype, flags)
    end = len(buf)
    if kind == "actions":
        return _fast_actions(flags, sid, fid, buf, pos)
    if kind == "kv":
        items: list[KV] = []
        while pos < end:
            name, pos = _read_name(buf, pos)
            value, pos = _read_value(buf, pos)
            items.append((name, value))
        return _KV_CLASSES[ftype](tuple(items), flags, sid, fid)
    if kind == "messages":
        messages = []
        while pos < end:
            name, pos = _read_name(buf, pos)
            count = buf[pos]
            pos += 1
            args: list[KV] = []
            for _ in range(count):
                arg, pos = _read_name(buf, pos)
                value, pos = _read_value(buf, pos)
                args.append((arg, value))
            messages.append(Message(name, tuple(args)))
        return Notify(sid, fid, tuple(messages), flags)
    if ftype in (FrameType.UNSET, FrameType.NOTIFY, FrameType.ACK):
        return Fragment(ftype, sid, fid, buf[pos:], flags)
    return UnknownFrame(ftype, sid, fid, buf[pos:], flags)


def _fast_frame(buf: bytes, start: int) -> Frame:
    """The frame whose body starts at ``start`` and ends with ``buf``."""
    if len(buf) - start < 7:
        raise _Fallback
    ftype, flags = _TYPE_FLAGS.unpack_from(buf, start)
    sid, fid = buf[start + 5:start + 7]
    pos = start + 7
    if sid >= 240 or fid >= 240:
        sid, pos = _read_varint(buf, start + 5)
        fid, pos = _read_varint(buf, pos)
    if ftype == FrameType.ACK and flags & FLAG_FIN:
        return _fast_actions(flags, sid, fid, buf, pos)
    return _fast_payload(ftype, flags, sid, fid, buf, pos)


def decode_frame_body(body: bytes) -> Frame:
    """Decode one frame without its 4-byte length prefix (what a receive buffer
    yields once it has checked the length against max-frame-size).

    :raises RemoteProtocolError: the frame is malformed (status 4).
    """
    buf = bytes(body)
    try:
        return _fast_frame(buf, 0)
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
                   stream_id: int = 0, frame_id: int = 0) -> Frame:
    """Decode a (reassembled) payload as the payload of a frame of this type and
    header; the connection uses it once the fragments of a frame are joined.

    :raises RemoteProtocolError: the payload is malformed (status 4).
    """
    buf = bytes(payload)
    try:
        return _fast_payload(frame_type, flags, stream_id, frame_id, buf, 0)
    except (_Fallback, IndexError, ValueError):  # the grammar path decides
        pass
    kind = grammar.payload_kind(frame_type, flags)
    try:
        parsed = grammar.PAYLOADS[kind].parse(buf)
    except ConstructError as exc:
        raise _remote_error(exc, f"{_frame_name(frame_type)} payload") from None
    return _frame_from(frame_type, flags, stream_id, frame_id, kind, parsed)
