"""Python values for SPOP typed data (SPOE.txt §3.1).

Values are plain Python objects::

    None -> NULL        bool -> BOOL        int -> INT64 (what HAProxy sends for any integer)
    str  -> STRING      bytes -> BINARY     IPv4Address -> IPV4    IPv6Address -> IPV6

The four ``int`` subclasses below name an explicit integer wire type.  The decoder
returns them for every integer it reads, so a decoded frame re-encodes byte for
byte (an AGENT-HELLO's ``max-frame-size`` is a :class:`UInt32`).

Integer semantics: the varint on the wire is a uint64 bit pattern.  Signed types
(:class:`Int32`, :class:`Int64`, plain ``int``) are encoded as two's complement
mod 2**64 and decoded back to a signed value; unsigned types keep the raw value.
STRING text is decoded as UTF-8 with ``surrogateescape`` because HAProxy strings
are bytes: an invalid sequence still re-encodes to the same bytes.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Union

from .constants import DataType

__all__ = ["Int32", "Int64", "UInt32", "UInt64", "Value", "data_type_of"]


class Int32(int):
    """An integer sent as SPOP INT32."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Int32({int(self)})"


class UInt32(int):
    """An integer sent as SPOP UINT32 (HELLO ``max-frame-size``, DISCONNECT ``status-code``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"UInt32({int(self)})"


class Int64(int):
    """An integer sent as SPOP INT64 (plain ``int`` means the same)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Int64({int(self)})"


class UInt64(int):
    """An integer sent as SPOP UINT64."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"UInt64({int(self)})"


Value = Union[None, bool, int, str, bytes, IPv4Address, IPv6Address]

_INT_TYPES: dict[type, DataType] = {
    Int32: DataType.INT32,
    UInt32: DataType.UINT32,
    Int64: DataType.INT64,
    UInt64: DataType.UINT64,
}


def data_type_of(value: Value) -> DataType:
    """The SPOP type a Python value is sent as.

    :raises TypeError: for a value of no SPOP type.
    """
    if value is None:
        return DataType.NULL
    if isinstance(value, bool):
        return DataType.BOOL
    if isinstance(value, int):
        return _INT_TYPES.get(type(value), DataType.INT64)
    if isinstance(value, str):
        return DataType.STRING
    if isinstance(value, (bytes, bytearray, memoryview)):
        return DataType.BINARY
    if isinstance(value, IPv4Address):
        return DataType.IPV4
    if isinstance(value, IPv6Address):
        return DataType.IPV6
    raise TypeError(f"no SPOP type for {type(value).__name__} value {value!r}")
