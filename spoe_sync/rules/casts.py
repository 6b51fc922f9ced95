"""HAProxy sample types and the casts between them (src/sample.c ``sample_casts``).

Runtime values are plain Python: bool, int (sint), str (STRING text; bytes that are not UTF-8 are
kept as surrogate escapes, like :mod:`spoe_sync.protocol.values`), bytes (bin), IPv4Address,
IPv6Address.  ``None`` is a failed fetch.  A cast that HAProxy cannot do yields ``None``.
"""

from __future__ import annotations

import re
import socket
from ipaddress import IPv4Address, IPv6Address

from ..protocol.values import Value

__all__ = ["TYPES", "cast", "header_ip", "int_of_text", "strl2ic", "to_bytes", "to_text", "type_of"]

TYPES = ("any", "bool", "sint", "addr", "ipv4", "ipv6", "str", "bin", "meth")

_INT_PREFIX = re.compile(rb"([-+]?)(\d*)")
_INT64_MAX = (1 << 63) - 1


def to_bytes(text: str) -> bytes:
    """STRING text back to the bytes HAProxy holds."""
    return text.encode("utf-8", "surrogateescape")


def to_text(data: bytes) -> str:
    """Bytes as STRING text (lossless)."""
    return data.decode("utf-8", "surrogateescape")


def type_of(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "sint"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bytes, bytearray)):
        return "bin"
    if isinstance(value, IPv4Address):
        return "ipv4"
    if isinstance(value, IPv6Address):
        return "ipv6"
    return "any"


def int_of_text(data: bytes) -> int | None:
    """HAProxy's ``c_str2int``: ``read_int64`` on the prefix; empty input fails.

    ``"12abc"`` is 12 and ``"abc"`` is 0, as in HAProxy; no blank is skipped (``" 5"`` is 0);
    past int64 the value saturates (``read_uint64`` stops at ``ULLONG_MAX``, ``read_int64``
    clamps to ``LLONG_MAX``/``LLONG_MIN``).
    """
    if not data:
        return None
    m = _INT_PREFIX.match(data)
    digits = m.group(2) if m else b""
    n = _read_uint64(digits)
    if m and m.group(1) == b"-":
        return -n if n <= _INT64_MAX + 1 else -_INT64_MAX - 1
    return min(n, _INT64_MAX)


def _wrap64(n: int) -> int:
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


def _read_uint64(digits: bytes) -> int:
    # read_uint64(): stops growing at ULLONG_MAX ("return ULLONG_MAX" on overflow)
    n = int(digits) if digits else 0
    return min(n, (1 << 64) - 1)


def strl2ic(data: bytes) -> int:
    """HAProxy's ``strl2ic()`` (``hdr_val``, ``cook_val``, ``urlp_val``): a 32-bit C ``int``
    built digit by digit until a byte past ``'9'``.  Bytes below ``'0'`` are not a stop: they
    count as negative digits (``"+5"`` is -45, ``"1 2"`` is -58), the empty text is 0, and the
    value wraps at 32 bits; bytes past 0x7F are negative (C's signed ``char``).  Odd, but it
    is what a rule on these fetches sees in HAProxy."""
    i = 0
    if data[:1] == b"-":
        for byte in data[1:]:
            j = _signed(byte) - 48
            if j > 9:
                break
            i = _wrap32(i * 10 - j)
    else:
        for byte in data:
            j = _signed(byte) - 48
            if j > 9:
                break
            i = _wrap32(i * 10 + j)
    return i


def _signed(byte: int) -> int:
    # a C char is signed on the platforms HAProxy is built for: 0xC3 is -61, a "digit"
    return byte - 256 if byte >= 128 else byte


def _wrap32(n: int) -> int:
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


def _buf2ip(text: str) -> IPv4Address | None:
    """HAProxy's ``buf2ip()``: the dotted quad the text starts with, whatever follows it
    (``"192.0.2.1:80"`` and ``"192.0.2.1/24"`` are 192.0.2.1, ``"01.2.3.4"`` is 1.2.3.4);
    three parts, a fifth one or an empty one fail."""
    return _url2ipv4(text)[0]


def _url2ipv4(text: str) -> tuple[IPv4Address | None, int]:
    """``url2ipv4()``: the leading dotted quad and how many characters it used."""
    parts = [0]
    count = 0
    saw_digit = False
    used = 0
    for ch in text:
        if "0" <= ch <= "9":
            value = parts[-1] * 10 + ord(ch) - 48
            if value > 255:
                return None, 0
            parts[-1] = value
            if not saw_digit:
                count += 1
                if count > 4:
                    return None, 0
                saw_digit = True
        elif ch == ".":
            if not saw_digit or count == 4:
                return None, 0
            parts.append(0)
            saw_digit = False
        else:
            break
        used += 1
    return (IPv4Address(bytes(parts)), used) if count == 4 else (None, 0)


def header_ip(text: str) -> IPv4Address | IPv6Address | None:
    """``smp_fetch_hdr_ip()``: a whole IPv4 address, one followed by ``:`` and a port
    (0-65535), or a whole IPv6 address; anything else (``"10.0.0.1 x"``) is no address."""
    addr, used = _url2ipv4(text)
    if addr is not None:
        if used == len(text):
            return addr
        port = text[used + 1:]
        if text[used] == ":" and re.fullmatch(r"[-+]?\d+", port) and 0 <= int(port) <= 65535:
            return addr
    return _buf2ip6(text)


def _buf2ip6(text: str) -> IPv6Address | None:
    """HAProxy's ``buf2ip6()``: ``inet_pton(AF_INET6)`` of the whole text (up to a NUL), so
    no ``%zone`` and nothing after the address."""
    text = text.split("\x00", 1)[0]
    if len(text) > 46:  # INET6_ADDRSTRLEN
        return None
    try:
        return IPv6Address(socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        return None


def _parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    """``c_str2addr()``: an IPv4 prefix first, else a whole IPv6 address."""
    return _buf2ip(text) or _buf2ip6(text)


def ipv6_text(addr: IPv6Address) -> str:
    """An IPv6 address as ``inet_ntop()`` writes it (HAProxy's ``c_ipv62str``): the mapped
    and compatible forms keep their dotted quad (``::ffff:192.0.2.1``), which Python's
    ``str()`` does not do before 3.13."""
    return socket.inet_ntop(socket.AF_INET6, addr.packed)


def _v4_of_v6(addr: IPv6Address) -> IPv4Address | None:
    """An IPv4 address embedded as ::ffff:a.b.c.d, ::a.b.c.d or 2002:a.b.c.d:: (v6tov4)."""
    packed = addr.packed
    if packed[:10] == bytes(10) and packed[10:12] in (b"\xff\xff", b"\x00\x00"):
        return IPv4Address(packed[12:])
    if packed[:2] == b"\x20\x02":
        return IPv4Address(packed[2:6])
    return None


def cast(value: Value, to: str) -> Value:
    """Convert ``value`` to HAProxy type ``to`` the way HAProxy's implicit casts do."""
    if value is None or to in ("any", type_of(value)):
        return value
    src = type_of(value)
    if to == "meth":
        to = "str"
        if src == "str":
            return value
    if to == "addr":
        if src in ("ipv4", "ipv6"):
            return value
        to = "ipv4" if src == "sint" else "addr"
    if to == "str":
        if src == "bool":
            return "1" if value else "0"
        if src == "sint":
            return str(value)
        if src == "ipv4":
            return str(value)
        if src == "ipv6":
            return ipv6_text(value)  # type: ignore[arg-type]
        if src == "bin":
            # c_bin2str(): the string stops at the first NUL byte
            return to_text(bytes(value).split(b"\0", 1)[0])  # type: ignore[arg-type]
        return None
    if to == "bin":
        if src in ("ipv4", "ipv6"):
            return bytes(value.packed)  # type: ignore[union-attr]  # c_addr2bin: raw bytes
        if src in ("sint", "bool"):
            # c_int2bin: 8 bytes, big-endian two's complement
            return (int(value) & ((1 << 64) - 1)).to_bytes(8, "big")
        text = cast(value, "str")
        return None if text is None else to_bytes(text)  # type: ignore[arg-type]
    if to == "sint":
        if src == "bool":
            return int(value)
        if src == "str":
            return int_of_text(to_bytes(value))  # type: ignore[arg-type]
        if src == "bin":
            return int_of_text(bytes(value))  # type: ignore[arg-type]
        if src == "ipv4":
            return int(value)
        return None
    if to == "bool":
        if src == "sint":
            return value != 0
        if src in ("str", "bin"):
            n = cast(value, "sint")
            return None if n is None else n != 0
        return None
    if to == "ipv4":
        if src == "sint":
            return IPv4Address(value & 0xFFFFFFFF)  # type: ignore[operator]
        if src == "ipv6":
            return _v4_of_v6(value)  # type: ignore[arg-type]
        if src in ("str", "bin"):
            return _buf2ip(cast(value, "str"))  # type: ignore[arg-type]  # c_str2ipv4
        return None
    if to == "ipv6":
        if src == "ipv4":
            return IPv6Address(b"\x00" * 10 + b"\xff\xff" + value.packed)  # type: ignore[union-attr]
        if src in ("str", "bin"):
            return _buf2ip6(cast(value, "str"))  # type: ignore[arg-type]  # c_str2ipv6
        return None
    if to == "addr":  # from str/bin
        return _parse_ip(cast(value, "str"))  # type: ignore[arg-type]
    return None
