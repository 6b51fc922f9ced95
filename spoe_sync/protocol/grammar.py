"""The SPOP wire grammar as construct declarations (SPOE.txt §3.1, §3.2, §3.4).

This module only declares structures; :mod:`spoe_sync.protocol.codec` turns the
parsed ``Container`` objects into the frozen dataclasses of
:mod:`spoe_sync.protocol.frames` and back, and maps every construct error to
:class:`~spoe_sync.errors.RemoteProtocolError`.

Nothing here is ``.compile()``-d: construct's compiled parsers drop checks, and
ACK frames come from the network.  Every structure is strict (a frame must be
consumed exactly), except the ACK action list, which follows HAProxy's
``spoe_process_actions()``: it stops at the first malformed action and the rest
is kept aside as ``rest``.

Two custom constructs exist because construct has no equivalent:
:class:`SpopVarint` (HAProxy's ``encode_varint``/``decode_varint`` from
``include/haproxy/intops.h``, *not* LEB128) and :class:`UntilEnd` (a strict
``GreedyRange`` that lets an element's error through instead of stopping).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

from construct import (
    Adapter,
    BitStruct,
    Byte,
    Bytes,
    Const,
    Construct,
    Error,
    GreedyBytes,
    GreedyRange,
    Int32ub,
    IntegerError,
    ListContainer,
    Nibble,
    OneOf,
    Pass,
    Prefixed,
    PrefixedArray,
    SizeofError,
    StringError,
    Struct,
    Switch,
    stream_read,
    stream_write,
    this,
)

from .constants import FLAG_FIN, MAX_VARINT_BYTES, DataType, FrameType

__all__ = [
    "KV",
    "PAYLOADS",
    "U64_MASK",
    "Action",
    "ActionList",
    "Binary",
    "Frame",
    "FrameBody",
    "FrameHeader",
    "FrameLength",
    "IPv4",
    "IPv6",
    "KVList",
    "Message",
    "MessageList",
    "Name",
    "Scope",
    "SignedVarint",
    "SpopVarint",
    "Text",
    "TypeByte",
    "TypedData",
    "UntilEnd",
    "Varint",
    "payload_kind",
]

U64_MASK = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_LIMIT = 1 << 63


# ============================================================ varint (intops.h)


class SpopVarint(Construct):  # type: ignore[misc]
    r"""HAProxy's variable-length unsigned integer (the "Peers encoding").

    ``x < 240`` is one byte.  Otherwise the first byte is ``x | 0xF0`` and
    ``x = (x - 240) >> 4``; then while ``x >= 128`` a byte ``x | 0x80`` and
    ``x = (x - 128) >> 7``; then a last byte ``x``.  Decoding adds each byte
    shifted by 4, 11, 18, ... until a byte below 128.

    Values are uint64: the sum is taken mod 2**64 as HAProxy's C arithmetic does,
    and at most :data:`~spoe_sync.protocol.constants.MAX_VARINT_BYTES` bytes are
    read (HAProxy has no bound; an eleventh byte is hostile and an error here).

    >>> Varint.build(2288)
    b'\xf0\x80\x00'
    """

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        value = stream_read(stream, 1, path)[0]
        if value < 240:
            return value
        shift = 4
        for _ in range(MAX_VARINT_BYTES - 1):
            byte = stream_read(stream, 1, path)[0]
            value += byte << shift
            if byte < 128:
                return value & U64_MASK
            shift += 7
        raise IntegerError(f"varint longer than {MAX_VARINT_BYTES} bytes", path=path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> int:
        if not isinstance(obj, int) or not 0 <= obj <= U64_MASK:
            raise IntegerError(f"varint value {obj!r} is not a uint64", path=path)
        value = obj
        if value < 240:
            out = bytes((value,))
        else:
            buf = bytearray(((value & 0xFF) | 0xF0,))
            value = (value - 240) >> 4
            while value >= 128:
                buf.append((value & 0xFF) | 0x80)
                value = (value - 128) >> 7
            buf.append(value)
            out = bytes(buf)
        stream_write(stream, out, len(out), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("a varint has no fixed size", path=path)


Varint = SpopVarint()


class _Signed64(Adapter):  # type: ignore[misc]
    """A varint read as a two's complement int64 (INT32/INT64 typed data: HAProxy
    sends signed integers as their uint64 bit pattern, so -5 takes 10 bytes)."""

    def _decode(self, obj: int, context: Any, path: str) -> int:
        return obj - (1 << 64) if obj >= _I64_LIMIT else obj

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        if not isinstance(obj, int) or not _I64_MIN <= obj < _I64_LIMIT:
            raise IntegerError(f"signed value {obj!r} is not an int64", path=path)
        return obj & U64_MASK


SignedVarint = _Signed64(Varint)


# ============================================================ strings and addresses


class _SurrogateText(Adapter):  # type: ignore[misc]
    """Bytes <-> str as UTF-8 with ``surrogateescape``: HAProxy strings are bytes,
    and an invalid sequence must still re-encode to the same bytes."""

    def _decode(self, obj: bytes, context: Any, path: str) -> str:
        return obj.decode("utf-8", "surrogateescape")

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        try:
            return bytes(obj.encode("utf-8", "surrogateescape"))
        except (UnicodeEncodeError, AttributeError):
            raise StringError(f"cannot encode {obj!r} as UTF-8", path=path) from None


class _Address(Adapter):  # type: ignore[misc]
    def __init__(self, size: int, cls: type[IPv4Address] | type[IPv6Address]) -> None:
        super().__init__(Bytes(size))
        self._cls = cls

    def _decode(self, obj: bytes, context: Any, path: str) -> IPv4Address | IPv6Address:
        return self._cls(obj)

    def _encode(self, obj: IPv4Address | IPv6Address, context: Any, path: str) -> bytes:
        return obj.packed


#: An untyped name (message, arg, KV and variable names): varint length + bytes.
Name = _SurrogateText(Prefixed(Varint, GreedyBytes))
#: STRING data: varint length + bytes, as ``str``.
Text = _SurrogateText(Prefixed(Varint, GreedyBytes))
#: BINARY data: varint length + bytes.
Binary = Prefixed(Varint, GreedyBytes)
#: IPV4 data: 4 bytes in network order.
IPv4 = _Address(4, IPv4Address)
#: IPV6 data: 16 bytes in network order.
IPv6 = _Address(16, IPv6Address)


# ============================================================ typed data (§3.1)

#: The type byte: flags in the HIGH nibble, type in the LOW one (SPOE.txt draws
#: it the other way round; HAProxy and every agent put the type low).
TypeByte = BitStruct("flags" / Nibble, "type" / OneOf(Nibble, list(range(10))))

#: ``{"tag": {"flags", "type"}, "value"}``.  BOOL keeps its value in the flags
#: (true is 0x11); NULL and BOOL have no data bytes; types 10-15 are errors
#: (HAProxy skips nothing for them and desyncs; refusing is the safe reading).
TypedData = Struct(
    "tag" / TypeByte,
    "value" / Switch(this.tag.type, {
        DataType.NULL: Pass,
        DataType.BOOL: Pass,
        DataType.INT32: SignedVarint,
        DataType.UINT32: Varint,
        DataType.INT64: SignedVarint,
        DataType.UINT64: Varint,
        DataType.IPV4: IPv4,
        DataType.IPV6: IPv6,
        DataType.STRING: Text,
        DataType.BINARY: Binary,
    }, default=Error),
)


# ============================================================ lists


class UntilEnd(Construct):  # type: ignore[misc]
    """Elements repeated until the end of the (sub)stream, each one required to
    parse: unlike ``GreedyRange``, a malformed element is an error, not the end of
    the list.  Zero elements is valid (an empty payload)."""

    def __init__(self, subcon: Any) -> None:
        super().__init__()
        self.subcon = subcon

    def _parse(self, stream: Any, context: Any, path: str) -> ListContainer:
        items = ListContainer()
        start = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(start)
        while stream.tell() < end:
            items.append(self.subcon._parsereport(stream, context, path))
        return items

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        for item in obj:
            self.subcon._build(item, stream, context, path)
        return obj


#: KV-NAME KV-VALUE.
KV = Struct("name" / Name, "value" / TypedData)
#: KV-LIST: the payload of HELLO and DISCONNECT frames.
KVList = UntilEnd(KV)

#: MESSAGE-NAME NB-ARGS:1 KV-LIST (NB-ARGS entries; an arg name may be empty).
Message = Struct("name" / Name, "args" / PrefixedArray(Byte, KV))
#: LIST-OF-MESSAGES: the payload of a NOTIFY frame.
MessageList = UntilEnd(Message)


# ============================================================ actions (§3.4)

#: VAR-SCOPE: proc, sess, txn, req, res.
Scope = OneOf(Byte, [0, 1, 2, 3, 4])

_SetVarArgs = Struct(
    "nb_args" / Const(3, Byte), "scope" / Scope, "name" / Name, "value" / TypedData)
_UnsetVarArgs = Struct("nb_args" / Const(2, Byte), "scope" / Scope, "name" / Name)

#: ACTION-TYPE:1 NB-ARGS:1 ACTION-ARGS.  Unknown type, wrong count or bad scope
#: fail (and so end the list, see :data:`ActionList`).
Action = Struct(
    "type" / OneOf(Byte, [1, 2]),
    "args" / Switch(this.type, {1: _SetVarArgs, 2: _UnsetVarArgs}, default=Error),
)

#: LIST-OF-ACTIONS the HAProxy way: the actions up to the first one that does not
#: parse, and the bytes left from there (``rest`` non-empty = truncated).
#: ``GreedyRange`` re-raises ``ExplicitError``, which is why unknown action and
#: data types are rejected by ``OneOf`` (a ValidationError) rather than by the
#: ``Error`` defaults of the Switches, which are unreachable.
ActionList = Struct(
    "actions" / GreedyRange(Action),
    "rest" / GreedyBytes,
)


# ============================================================ frames (§3.2)

_KV_FRAMES = frozenset({
    FrameType.HAPROXY_HELLO, FrameType.HAPROXY_DISCONNECT,
    FrameType.AGENT_HELLO, FrameType.AGENT_DISCONNECT,
})


def payload_kind(frame_type: int, flags: int) -> str:
    """Which payload grammar a frame uses: ``"kv"``, ``"messages"``,
    ``"actions"`` or ``"raw"`` (fragments, type 0, unknown types).

    HELLO and DISCONNECT payloads cannot be fragmented (SPOE.txt §3.2.4-3.2.9),
    so they are KV lists whatever their FIN flag says; NOTIFY and ACK without
    FIN are the first piece of a fragmented payload."""
    if frame_type in _KV_FRAMES:
        return "kv"
    if flags & FLAG_FIN:
        if frame_type == FrameType.NOTIFY:
            return "messages"
        if frame_type == FrameType.ACK:
            return "actions"
    return "raw"


#: FRAME-TYPE:1 FLAGS:4 STREAM-ID:varint FRAME-ID:varint.
FrameHeader = Struct(
    "type" / Byte,
    "flags" / Int32ub,
    "stream_id" / Varint,
    "frame_id" / Varint,
)

#: A frame without its length prefix (what a receive buffer yields).
FrameBody = Struct(
    "type" / Byte,
    "flags" / Int32ub,
    "stream_id" / Varint,
    "frame_id" / Varint,
    "payload" / Switch(lambda ctx: payload_kind(ctx.type, ctx.flags), {
        "kv": KVList,
        "messages": MessageList,
        "actions": ActionList,
    }, default=GreedyBytes),
)

#: FRAME-LENGTH: 4 bytes, big-endian.
FrameLength = Int32ub
#: FRAME-LENGTH FRAME.
Frame = Prefixed(FrameLength, FrameBody)

#: The same payload grammars, by :func:`payload_kind`.
PAYLOADS: dict[str, Any] = {
    "kv": KVList,
    "messages": MessageList,
    "actions": ActionList,
    "raw": GreedyBytes,
}
