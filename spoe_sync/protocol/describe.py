"""An annotated, human-readable decode of one SPOP frame (``spoe-sync decode``).

Every field is printed on its own line with its offset and bytes, the way the
``.txt`` files next to the golden frames read (SPOE.txt §3.1-3.4).  The walk
reads field by field with the construct grammar of :mod:`.grammar`, so a
malformed frame still shows everything up to the bad field; the last lines are
the verdict of :func:`~spoe_sync.protocol.codec.decode_frame` itself (the frame,
or the error and the SPOP status a peer would send).
"""

from __future__ import annotations

import io
import re
import string
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from construct import Byte, ConstructError, Int32ub, SizeofError, StreamError

from ..errors import RemoteProtocolError
from . import grammar
from .codec import decode_frame
from .constants import DataType, FrameType, VarScope, frame_status_reason
from .frames import Ack, Message, Notify

__all__ = ["describe_bytes", "describe_frame", "describe_hex", "parse_hex", "plain", "spop_words"]

_HEX_WIDTH = 48  # 16 bytes as "xx "


class _Malformed(Exception):
    pass


def parse_hex(text: str) -> bytes:
    """Bytes from hex text; whitespace, ``:`` separators and a ``0x`` prefix are
    ignored.

    :raises ValueError: empty input, an odd number of digits or a non-hex character.
    """
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned:
        raise ValueError("no hex digits given")
    for index, char in enumerate(cleaned):
        if char not in string.hexdigits:
            raise ValueError(f"not hex: {char!r} at position {index + 1}")
    if len(cleaned) % 2:
        raise ValueError(f"odd number of hex digits ({len(cleaned)}): a byte is cut in half")
    return bytes.fromhex(cleaned)


def _count(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


_STREAM_READ = re.compile(r"stream read less than specified amount, expected (\d+), found (\d+)")
_PATH = re.compile(r" \(in [^)]*\)|\(parsing\)( -> )?")


def spop_words(text: str) -> str:
    """An error message from the grammar with construct's phrases put in SPOP words: its
    last line, "cut short" for a short read, no parse path (``payload -> name``)."""
    lines = text.strip().splitlines()
    text = _PATH.sub("", lines[-1] if lines else text).strip()
    return _STREAM_READ.sub(lambda m: f"cut short, {_count(int(m.group(1)))} needed, "
                            f"{_count(int(m.group(2)))} left", text)


def plain(value: Any) -> str:
    """A decoded SPOP value as an operator reads it: numbers and addresses bare (``16380``,
    not ``UInt32(16380)``), strings quoted, ``true``/``false``, ``NULL``, binary as hex."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, (IPv4Address, IPv6Address)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        shown = bytes(value[:32]).hex(" ") + (" ..." if len(value) > 32 else "")
        return f"<{_count(len(value))}: {shown}>" if value else "<0 bytes>"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _dtype_name(dtype: int) -> str:
    try:
        return DataType(dtype).name
    except ValueError:
        return "reserved"


class _Walker:
    """Reads fields from a stream and records one annotated line per field."""

    def __init__(self, data: bytes, lines: list[str]) -> None:
        self.data = data
        self.stream = io.BytesIO(data)
        self.lines = lines

    def at_end(self) -> bool:
        return self.stream.tell() >= len(self.data)

    def line(self, start: int, end: int, text: str, indent: int = 0) -> None:
        chunk = self.data[start:end]
        shown = " ".join(f"{b:02x}" for b in chunk[:16])
        if len(chunk) > 16:
            shown = " ".join(f"{b:02x}" for b in chunk[:15]) + "..."
        self.lines.append(f"{start:04x}  {shown:<{_HEX_WIDTH}} {'  ' * indent}{text}")

    def read(self, con: Any, what: str) -> tuple[Any, int, int]:
        """One field, or :class:`_Malformed` saying in SPOP words which field is cut short or
        invalid (never construct's own wording: the reader knows SPOE.txt, not construct)."""
        start = self.stream.tell()
        left = len(self.data) - start
        try:
            size = con.sizeof()
        except SizeofError:  # a varint: its size is known once read
            size = None
        if size is not None and size > left:
            raise _Malformed(f"{what} at offset {start:#06x}: cut short, {_count(size)} "
                             f"needed, {_count(left)} left before the frame's end")
        try:
            value = con.parse_stream(self.stream)
        except StreamError:
            raise _Malformed(f"{what} at offset {start:#06x}: cut short, the frame ends inside "
                             "this varint (each byte but the last has its high bit set)") from None
        except ConstructError as exc:
            raise _Malformed(f"{what} at offset {start:#06x}: {spop_words(str(exc))}") from None
        return value, start, self.stream.tell()

    def take(self, size: int, label: str) -> bytes:
        """``size`` bytes, checked against what is left before reading (a
        length may claim up to 2**64 - 1 bytes)."""
        start = self.stream.tell()
        left = len(self.data) - start
        if size > left:
            raise _Malformed(f"{label} at offset {start:#06x}: cut short, {size} bytes announced, "
                             f"{_count(left)} left before the frame's end")
        return bytes(self.stream.read(size))

    def varint(self, label: str, indent: int = 0) -> int:
        value, start, end = self.read(grammar.Varint, label)
        self.line(start, end, f"{label} = {value} (varint, {end - start} byte(s))", indent)
        return int(value)

    def name(self, label: str, indent: int = 0) -> str:
        size = self.varint(f"{label} length", indent)
        start = self.stream.tell()
        raw = self.take(size, label)
        text = raw.decode("utf-8", "surrogateescape")
        self.line(start, start + size, f"{label} = {text!r}", indent)
        return text

    def typed(self, label: str, indent: int = 0) -> None:
        tag, start, end = self.read(Byte, f"{label} type byte")
        dtype, flags = tag & 0x0F, tag >> 4
        note = f"{label} type byte 0x{tag:02x}: type={dtype} {_dtype_name(dtype)} (low nibble), " \
               f"flags=0x{flags:x} (high nibble)"
        if dtype == DataType.BOOL:
            note += f" -> {flags == 1}"
        self.line(start, end, note, indent)
        if dtype in (DataType.NULL, DataType.BOOL):
            return
        if dtype > DataType.BINARY:
            raise _Malformed(f"{label} at offset {start:#06x}: reserved data type {dtype}")
        name = DataType(dtype).name
        if DataType.INT32 <= dtype <= DataType.UINT64:
            raw, start, end = self.read(grammar.Varint, f"{label} {name} value")
            text = f"{label} {name} value = {raw} (varint, {end - start} byte(s))"
            if dtype in (DataType.INT32, DataType.INT64) and raw >= 1 << 63:
                text += f" -> as int64: {raw - (1 << 64)}"
            self.line(start, end, text, indent)
        elif dtype in (DataType.IPV4, DataType.IPV6):
            con = grammar.IPv4 if dtype == DataType.IPV4 else grammar.IPv6
            addr, start, end = self.read(con, f"{label} {name}")
            self.line(start, end, f"{label} {name} = {addr}", indent)
        else:
            size = self.varint(f"{label} {name} length", indent)
            start = self.stream.tell()
            raw = self.take(size, label)
            if dtype == DataType.STRING and tag == DataType.STRING:
                self.line(start, start + size, f"{label} STRING = "
                          f"{raw.decode('utf-8', 'surrogateescape')!r}", indent)
            else:
                self.line(start, start + size, f"{label} {name} bytes", indent)


def _describe_payload(walker: _Walker, kind: str) -> None:
    if kind == "kv":
        while not walker.at_end():
            key = walker.name("KV-NAME")
            walker.typed(f"KV-VALUE[{key}]")
    elif kind == "messages":
        while not walker.at_end():
            walker.name("MESSAGE-NAME")
            count, start, end = walker.read(Byte, "NB-ARGS")
            walker.line(start, end, f"NB-ARGS = {count} (1 byte)")
            for index in range(count):
                arg = walker.name(f"ARG[{index}] name", 1)
                walker.typed(f"ARG[{index}] ({arg or '<unnamed>'})", 1)
    elif kind == "actions":
        index = 0
        while not walker.at_end():
            start = walker.stream.tell()
            try:
                _describe_action(walker, index)
            except _Malformed as exc:
                left = len(walker.data) - start
                walker.lines.append(
                    f"{start:04x}  {'':<{_HEX_WIDTH}} ACTION[{index}] malformed ({exc}): HAProxy "
                    f"stops here and ignores the last {left} byte(s) (Ack.truncated)")
                return
            index += 1
    else:
        start = walker.stream.tell()
        rest = walker.data[start:]
        walker.line(start, len(walker.data), f"PAYLOAD = {len(rest)} raw byte(s)")
        walker.stream.seek(len(walker.data))


def _describe_action(walker: _Walker, index: int) -> None:
    if len(walker.data) - walker.stream.tell() < 4:
        raise _Malformed("fewer than 3 bytes after the action type")
    atype, start, end = walker.read(Byte, "ACTION-TYPE")
    label = {1: "set-var", 2: "unset-var"}.get(atype)
    if label is None:
        raise _Malformed(f"unknown action type {atype}")
    walker.line(start, end, f"ACTION[{index}] type = {atype} {label}")
    count, start, end = walker.read(Byte, "NB-ARGS")
    if count != (3 if atype == 1 else 2):
        raise _Malformed(f"{label} with {count} args")
    walker.line(start, end, f"NB-ARGS = {count}", 1)
    scope, start, end = walker.read(Byte, "VAR-SCOPE")
    if scope > 4:
        raise _Malformed(f"unknown scope {scope}")
    walker.line(start, end, f"VAR-SCOPE = {scope} {VarScope(scope).label}", 1)
    var = walker.name("VAR-NAME", 1)
    if atype == 1:
        walker.typed(f"VAR-VALUE[{var}]", 1)


def _summary(data: bytes, found: str | None = None) -> tuple[list[str], bool]:
    """The verdict lines, and whether the frame decoded cleanly (no error, nothing ignored).
    ``found`` is the field-level error the walk found, in SPOP words: when the decoder's own
    error is about a field too, that one is said instead of the grammar's wording."""
    try:
        frame = decode_frame(data)
    except RemoteProtocolError as exc:
        message = exc.message
        head, sep, _ = message.partition(": ")
        if found is not None and sep and head.startswith("malformed ") and head != \
                "malformed frame":  # "malformed frame: FRAME-LENGTH says..." is already plain
            message = f"{head}: {found}"
        else:
            message = spop_words(message)
        return [f"=> error: {message}",
                f"=> SPOP status {exc.status} ({frame_status_reason(exc.status)}): the "
                f"engine answers with a DISCONNECT carrying this status"], False
    ids = f"stream-id {frame.stream_id}, frame-id {frame.frame_id}, flags 0x{frame.flags:08x}"
    if isinstance(frame, Notify):
        what = f"{len(frame.messages)} message(s): " + ", ".join(_message(m) for m in frame.messages)
    elif isinstance(frame, Ack):
        what = f"{len(frame.actions)} action(s)" + (", truncated" if frame.truncated else "")
    elif hasattr(frame, "items"):
        what = ", ".join(f"{k}={plain(v)}" for k, v in frame.items)
    else:
        what = f"frame type {frame.frame_type}, {len(frame.payload)} payload byte(s)"
    # a truncated ACK is accepted (HAProxy ignores the rest) but did not decode cleanly
    return [f"=> {type(frame).__name__} ({ids}): {what}"], not getattr(frame, "truncated", False)


def _message(msg: Message) -> str:
    return f"{msg.name}({len(msg.args)} arg(s))"


def describe_bytes(data: bytes) -> str:
    """The annotated decode of one frame given as bytes (length prefix included)."""
    return describe_frame(data)[0]


def describe_frame(data: bytes) -> tuple[str, bool]:
    """:func:`describe_bytes` and whether the frame decoded cleanly: ``False`` for a frame
    :func:`~spoe_sync.protocol.codec.decode_frame` rejects, or an ACK whose last actions
    are ignored (``Ack.truncated``).  The text always shows what could be read."""
    lines = [f"{len(data)} byte(s)", ""]
    if len(data) < 4:
        lines.append(f"0000  {data.hex(' '):<{_HEX_WIDTH}} FRAME-LENGTH cut short")
        verdict, ok = _summary(data)
        return "\n".join([*lines, "", *verdict]), ok
    size = int.from_bytes(data[:4], "big")
    end = min(len(data), 4 + size)
    walker = _Walker(data[:end], lines)
    note = "" if size == len(data) - 4 else f"; MISMATCH: {len(data) - 4} byte(s) follow"
    walker.line(0, 4, f"FRAME-LENGTH = {size} (uint32 big-endian{note})")
    found: str | None = None
    walker.stream.seek(4)
    try:
        ftype, start, stop = walker.read(Byte, "FRAME-TYPE")
        try:
            type_name = FrameType(ftype).name.replace("_", "-")
        except ValueError:
            type_name = "unknown (agents and HAProxy skip it)"
        walker.line(start, stop, f"FRAME-TYPE = {ftype} {type_name}")
        flags, start, stop = walker.read(Int32ub, "FLAGS")
        walker.line(start, stop, f"FLAGS = 0x{flags:08x} (FIN={flags & 1}, ABORT={flags >> 1 & 1})")
        walker.varint("STREAM-ID")
        walker.varint("FRAME-ID")
        _describe_payload(walker, grammar.payload_kind(ftype, flags))
    except _Malformed as exc:
        found = str(exc)
        lines.append(f"{'':4}  {'':<{_HEX_WIDTH}} ERROR: {found}")
    if len(data) > end:
        lines.append(f"{end:04x}  {data[end:end + 16].hex(' '):<{_HEX_WIDTH}} "
                     f"{len(data) - end} byte(s) after the frame")
    verdict, ok = _summary(data, found)
    return "\n".join([*lines, "", *verdict]), ok


def describe_hex(text: str) -> str:
    """The annotated decode of one frame given as hex (4-byte length prefix
    included; whitespace ignored).

    :raises ValueError: the text is not hex.  A malformed *frame* is not an
        error here: what could be read is shown, then the error and its SPOP status.
    """
    return describe_bytes(parse_hex(text))
