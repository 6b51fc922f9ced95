"""The plain-Python fast paths of :mod:`.codec` (SPOE.txt §3.1-3.2).

Every request encodes a NOTIFY and decodes an ACK; the construct grammar takes
tens of microseconds for either, so these frames also have a hand-written path:

* encoding: varints, TYPED-DATA by exact Python type (:data:`_ENCODERS`), names;
* decoding: :func:`_fast_frame` and its helpers.  They never judge anything
  themselves: at the first irregularity (a short buffer, an unknown type, ...)
  they raise :class:`_Fallback` (or let an ``IndexError`` / ``ValueError``
  through) and :mod:`.codec` hands the *whole* frame to the grammar path, so
  errors always come from the grammar.  ACK actions are the exception, for a
  bound: an irregular action goes to the grammar *alone* (it decides whether
  the list is truncated there), so that no ACK costs more than its first
  ``max_actions`` actions, whatever an agent puts in it.

Tests prove with hypothesis that both paths give the same bytes and frames.
Nothing here is public: :mod:`.codec` is the API.
"""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from construct import ConstructError

from ..errors import LocalProtocolError
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
from .values import Int32, Int64, UInt32, UInt64, Value

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
_FLAGS_AT_1 = struct.Struct(">xI")  # the FLAGS of a frame body (after FRAME-TYPE)


# =========================================================== encoding

_SMALL = tuple(bytes((i,)) for i in range(240))


def _varint(value: int) -> bytes:
    """HAProxy's varint of a uint64 the caller has range-checked."""
    if value < 240:
        return _SMALL[value]
    if value < 2288:  # two bytes: every stream-id of a young engine
        return bytes(((value & 0xFF) | 0xF0, (value - 240) >> 4))
    if value < 264432:  # three bytes: the stream-ids of the next quarter million streams
        rest = (value - 240) >> 4
        return bytes(((value & 0xFF) | 0xF0, (rest & 0xFF) | 0x80, (rest - 128) >> 7))
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


#: The type byte and one-byte length of a string, and of binary data, shorter
#: than 240 bytes (most are): one concatenation and no _varint() call each.
_TEXT_HEADS = tuple(b"\x08" + length for length in _SMALL)
_BINARY_HEADS = tuple(b"\x09" + length for length in _SMALL)


def _text(value: str) -> bytes:
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"cannot encode string {value!r}: {exc.reason}", 4) from None
    size = len(data)
    if size < 240:
        return _TEXT_HEADS[size] + data
    return b"\x08" + _varint(size) + data


def _binary(value: bytes) -> bytes:
    size = len(value)
    if size < 240:
        return _BINARY_HEADS[size] + value
    return b"\x09" + _varint(size) + value


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


def _name(text: str) -> bytes:
    try:
        data = text.encode("utf-8", "surrogateescape")
    except (UnicodeEncodeError, AttributeError):
        raise LocalProtocolError(f"cannot encode name {text!r}", 4) from None
    return _varint(len(data)) + data


# =========================================================== decoding


class _Fallback(Exception):
    """Anything unusual: let the grammar path decide."""


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


# The integers 0..239 of each wire type (a one-byte varint), built once: the
# values are immutable, and building an int subclass costs more than decoding it.
_SMALL_INTS: dict[int, tuple[int, ...]] = {
    dtype: tuple(cls(i) for i in range(240)) for dtype, cls in _INT_CLASSES.items()}


def _read_value(buf: bytes, pos: int) -> tuple[Value, int]:
    tag = buf[pos]
    dtype = tag & 0x0F
    pos += 1
    if dtype == 8:
        data, pos = _read_bytes(buf, pos)
        return (data.decode("utf-8", "surrogateescape") if tag == 8 else data), pos
    if 2 <= dtype <= 5:
        raw = buf[pos]
        if raw < 240:  # a one-byte varint: the usual score or flag, shared
            return _SMALL_INTS[dtype][raw], pos + 1
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


#: No bound on the actions decoded (``max_actions`` of the public decoders).
UNBOUNDED = sys.maxsize


def _fast_actions(flags: int, sid: int, fid: int, buf: bytes, pos: int,
                  limit: int = UNBOUNDED) -> Ack:
    """The actions of an ACK payload, at most ``limit`` of them (the rest is
    counted in ``Ack.undecoded`` and never looked at).  An action the plain
    reader does not take is handed, alone, to the grammar: it decides whether
    it is valid, and a malformed one ends the list (``truncated``), as the
    grammar's ``ActionList`` and HAProxy do.  So the work is bounded by
    ``limit`` even for an agent that makes every action irregular."""
    end = len(buf)
    actions: list[Action] = []
    truncated = False
    while pos < end:
        if len(actions) >= limit:
            return Ack._trusted(sid, fid, tuple(actions), flags, False, end - pos)
        start = pos
        try:
            atype, nb_args, scope, size = buf[pos:pos + 4]
            pos += 4
            if scope > 4 or size >= 240 or pos + size > end:
                raise _Fallback
            name = buf[pos:pos + size].decode("utf-8", "surrogateescape")
            pos += size
            if atype == 1 and nb_args == 3:
                value, pos = _read_value(buf, pos)
                actions.append(SetVar._trusted(_SCOPES[scope], name, value))
            elif atype == 2 and nb_args == 2:
                actions.append(UnsetVar._trusted(_SCOPES[scope], name))
            else:
                raise _Fallback
        except (_Fallback, IndexError, ValueError):
            action, pos = _grammar_action(buf, start)
            if action is None:
                truncated = True
                break
            actions.append(action)
    return Ack._trusted(sid, fid, tuple(actions), flags, truncated)


def _grammar_action(buf: bytes, pos: int) -> tuple[Action | None, int]:
    """The action at ``pos`` read by the grammar, and where it ends; ``None``
    when it does not parse (the list ends there)."""
    stream = io.BytesIO(buf)  # shares the bytes object: no copy
    stream.seek(pos)
    try:
        parsed = grammar.Action.parse_stream(stream)
    except ConstructError:
        return None, pos
    scope = _SCOPES[parsed.args.scope]
    action: Action
    if parsed.type == 1:
        action = SetVar(scope, parsed.args.name, untagged(parsed.args.value))
    else:
        action = UnsetVar(scope, parsed.args.name)
    return action, stream.tell()


def untagged(tagged: Any) -> Value:
    """A :data:`grammar.TypedData` container as a Python value."""
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


def _fast_payload(ftype: int, flags: int, sid: int, fid: int, buf: bytes, pos: int,
                  max_actions: int = UNBOUNDED) -> Frame:
    kind = grammar.payload_kind(ftype, flags)
    end = len(buf)
    if kind == "actions":
        return _fast_actions(flags, sid, fid, buf, pos, max_actions)
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


#: Decoded action lists by their bytes (:func:`_fast_ack`'s ``cache``): an
#: agent answers with the same few action lists again and again, and their
#: values are immutable, so one decoding serves every ACK that repeats it.
#: Bounded in entries and in the bytes of each key (one dict per engine,
#: shared by its connections).
ACK_CACHE_ENTRIES = 64
ACK_CACHE_MAX_BYTES = 256
_AckActions = tuple[tuple[Action, ...], bool, int]  # actions, truncated, undecoded


def _fast_ack(buf: bytes, max_actions: int = UNBOUNDED,
              cache: dict[bytes, _AckActions] | None = None) -> Ack:
    """The ACK (type 103, FIN) whose body is ``buf``, at most ``max_actions``
    actions decoded: what an engine reads for every NOTIFY, so the frame type
    is not dispatched again.  Anything else (no FIN, a short frame, ...)
    raises :class:`_Fallback`.

    With ``cache`` (one per ``max_actions``: a connection's), an action list
    of at most :data:`ACK_CACHE_MAX_BYTES` bytes already decoded is reused."""
    if len(buf) < 7:
        raise _Fallback
    flags = _FLAGS_AT_1.unpack_from(buf)[0]
    if not flags & FLAG_FIN:
        raise _Fallback
    sid = buf[5]
    pos = 6
    if sid >= 240:
        if buf[6] < 128:  # two bytes: the stream-ids of a young engine
            sid += buf[6] << 4
            pos = 7
        elif buf[7] < 128:  # three bytes: up to about a million streams
            sid += (buf[6] << 4) + (buf[7] << 11)
            pos = 8
        else:
            sid, pos = _read_varint(buf, 5)
    fid = buf[pos]
    pos += 1
    if fid >= 240:
        if buf[pos] < 128:  # two bytes: a long-lived stream's first 2288 frames
            fid += buf[pos] << 4
            pos += 1
        else:
            fid, pos = _read_varint(buf, pos - 1)
    if pos == len(buf):
        return Ack._trusted(sid, fid, (), flags)
    if cache is None or len(buf) - pos > ACK_CACHE_MAX_BYTES:
        return _fast_actions(flags, sid, fid, buf, pos, max_actions)
    raw = buf[pos:]
    hit = cache.get(raw)
    if hit is not None:
        return Ack._trusted(sid, fid, hit[0], flags, hit[1], hit[2])
    ack = _fast_actions(flags, sid, fid, buf, pos, max_actions)
    if len(cache) >= ACK_CACHE_ENTRIES:
        cache.clear()  # an agent that never repeats itself: start afresh
    cache[raw] = (ack.actions, ack.truncated, ack.undecoded)
    return ack


def _fast_frame(buf: bytes, start: int, max_actions: int = UNBOUNDED) -> Frame:
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
        return _fast_actions(flags, sid, fid, buf, pos, max_actions)
    return _fast_payload(ftype, flags, sid, fid, buf, pos)

