"""Converters (configuration.txt §7.3.1): ``fn(value, args, ctx) -> Value``.

The input is first cast to the converter's input type as HAProxy does; a cast or a conversion
that fails gives ``None`` (the sample is then NULL), never an exception.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, TypeVar
from urllib.parse import quote, unquote_to_bytes

from ..protocol.values import Value
from .casts import _wrap64, cast, to_bytes, to_text

__all__ = ["CONVERTERS", "ConverterDef"]

ConvFn = Callable[[Any, tuple[Any, ...], Any], Value]
C = TypeVar("C", bound=Callable[..., Any])


@dataclass(frozen=True)
class ConverterDef:
    name: str
    args: tuple[str, ...]
    in_type: str
    out: str
    fn: ConvFn


CONVERTERS: dict[str, ConverterDef] = {}


def conv(name: str, *args: str, in_: str, out: str) -> Callable[[C], C]:
    def register(fn: C) -> C:
        CONVERTERS[name] = ConverterDef(name, tuple(args), in_, out, fn)
        return fn
    return register


# --------------------------------------------------------------------------- text

conv("lower", in_="str", out="str")(lambda v, a, c: v.lower() if v.isascii() else
                                      "".join(ch.lower() if ch.isascii() else ch for ch in v))
conv("upper", in_="str", out="str")(lambda v, a, c: "".join(
    ch.upper() if ch.isascii() else ch for ch in v))
conv("ltrim", "str", in_="str", out="str")(lambda v, a, c: v.lstrip(a[0]))
conv("rtrim", "str", in_="str", out="str")(lambda v, a, c: v.rstrip(a[0]))
conv("cut_crlf", in_="str", out="str")(lambda v, a, c: re.split("[\r\n]", v, maxsplit=1)[0])
conv("length", in_="str", out="sint")(lambda v, a, c: len(to_bytes(v)))
conv("debug", "str?", "str?", in_="any", out="any")(lambda v, a, c: v)


@conv("regsub", "regex", "str", "str?", in_="str", out="str")
def _regsub(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    rx, subst = args[0], args[1]
    flags = args[2] if len(args) > 2 else ""
    if "i" in flags and not rx.flags & re.IGNORECASE:
        rx = re.compile(rx.pattern, rx.flags | re.IGNORECASE)
    # HAProxy's subst uses \1..\9 back-references; Python's expand does the same.
    result: str = rx.sub(lambda m: m.expand(subst), v, count=0 if "g" in flags else 1)
    return result


def _spans(v: str, delims: str) -> list[tuple[int, int]]:
    """(start, end) of each field of ``v`` split on any character of ``delims``."""
    spans, start = [], 0
    for i, ch in enumerate(v):
        if ch in delims:
            spans.append((start, i))
            start = i + 1
    spans.append((start, len(v)))
    return spans


def _pick(v: str, spans: list[tuple[int, int]], index: int, count: int,
          null_from_end: bool = False) -> str | None:
    """The original text from the ``index``-th span (1-based, negative from the end) over
    ``count`` spans (0: all the remaining ones in that direction).  Not found: empty for
    ``word``; ``field`` fails (NULL) either way, as HAProxy 2.6 ("Field not found")."""
    n = len(spans)
    if abs(index) > n:
        return None if null_from_end else ""
    if index > 0:
        first = index - 1
        last = n - 1 if count == 0 else min(n - 1, first + count - 1)
    else:
        last = n + index
        first = 0 if count == 0 else max(0, last - count + 1)
    return v[spans[first][0]:spans[last][1]]


@conv("field", "fieldidx", "delims", "int?", in_="str", out="str")
def _field(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    return _pick(v, _spans(v, args[1]), args[0], args[2] if len(args) > 2 else 1, True)


@conv("word", "fieldidx", "delims", "int?", in_="str", out="str")
def _word(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    words = [sp for sp in _spans(v, args[1]) if sp[1] > sp[0]]
    return _pick(v, words, args[0], args[2] if len(args) > 2 else 1)


_JSON_ESC = {"\"": "\\\"", "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
             "\r": "\\r", "\t": "\\t"}


@conv("json", "jsoncode?", in_="str", out="str")
def _json(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    mode = args[0] if args and args[0] else "ascii"  # HAProxy 2.6 default (observed)
    out = []
    for ch in v:
        if ch in _JSON_ESC:
            out.append(_JSON_ESC[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif mode == "ascii" and ord(ch) > 0x7E:
            # ascii: every byte above 0x7e on its own, as \u00XX
            out.extend(f"\\u00{b:02x}" for b in to_bytes(ch))
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that is not valid UTF-8
            if mode in ("utf8s", "utf8ps"):
                continue  # "s": skip bad sequences
            return None  # utf8 and utf8p fail on a bad sequence (observed with HAProxy 2.6)
        elif ord(ch) > 0x7E:
            # the utf8 modes decode the character, then escape it as ascii does ("%04x")
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


@conv("url_dec", "int?", in_="str", out="str")
def _url_dec(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    # HAProxy turns '+' into ' ' in the query part only (or everywhere when the arg is 1).
    data = to_bytes(v)
    in_form = bool(args and args[0])
    if not in_form and b"?" in data:
        path, query = data.split(b"?", 1)
        data = path + b"?" + query.replace(b"+", b" ")
    elif in_form:
        data = data.replace(b"+", b" ")
    if re.search(rb"%(?![0-9A-Fa-f]{2})", data):
        return None  # invalid escape: the conversion fails
    return to_text(unquote_to_bytes(data))


@conv("url_enc", "str?", in_="str", out="str")
def _url_enc(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    return quote(to_bytes(v), safe="")


# --------------------------------------------------------------------------- binary


conv("base64", in_="bin", out="str")(lambda v, a, c: base64.b64encode(v).decode())
conv("ub64enc", in_="bin", out="str")(
    lambda v, a, c: base64.urlsafe_b64encode(v).decode().rstrip("="))
conv("hex", in_="bin", out="str")(lambda v, a, c: v.hex().upper())


@conv("b64dec", in_="str", out="bin")
def _b64dec(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    try:
        return base64.b64decode(to_bytes(v), validate=True)
    except (binascii.Error, ValueError):
        return None


_UB64 = {c: i for i, c in enumerate(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_UB64[0x3D] = 63  # '=' decodes as '_' in HAProxy's base64urldec() (seen: "YQ==" is 61 0f ff)


@conv("ub64dec", in_="str", out="bin")
def _ub64dec(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    # base64urldec(): a length of 4n+1 fails, 4n+2 and 4n+3 are padded with zero bits, any
    # character outside the alphabet fails (no blank skipped, '+' and '/' refused)
    data = to_bytes(v)
    pad = (0, None, 2, 1)[len(data) % 4]
    if pad is None:
        return None
    bits = 0
    for c in data:
        six = _UB64.get(c)
        if six is None:
            return None
        bits = bits << 6 | six
    bits <<= 6 * pad
    size = (len(data) + pad) // 4 * 3
    return bits.to_bytes(size, "big")[:size - pad]


@conv("hex2i", in_="str", out="sint")
def _hex2i(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    # every character must be a hex digit, else the conversion fails (observed on 2.6)
    if not re.fullmatch(r"[0-9A-Fa-f]*", v):
        return None
    return _wrap64(int(v, 16)) if v else 0


@conv("bytes", "int", "int?", in_="any", out="bin")
def _bytes(v: Any, args: tuple[Any, ...], ctx: Any) -> Value:
    # The sample keeps its type: a string stays a string (observed with HAProxy 2.6).
    data = to_bytes(v) if isinstance(v, str) else cast(v, "bin")
    if not isinstance(data, bytes):
        return None
    offset = args[0]
    if offset >= len(data):
        data = b""  # an offset past the end gives an empty sample, not a failure
    out = data[offset:] if len(args) < 2 else data[offset:offset + args[1]]
    return to_text(out) if isinstance(v, str) else out


# --------------------------------------------------------------------------- integers and bools


def _int_arg(arg: Any, ctx: Any) -> int | None:
    """Arithmetic args are an integer or a variable name (HAProxy's ``sample_conv_var2smp``)."""
    if isinstance(arg, int):
        return arg
    value = ctx.vars.get(arg) if ctx is not None and ctx.vars is not None else None
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int) else None


def _arith(name: str, op: Callable[[int, int], int | None]) -> None:
    def fn(v: int, args: tuple[Any, ...], ctx: Any) -> Value:
        other = _int_arg(args[0], ctx)
        if other is None:
            return None
        result = op(v, other)
        return None if result is None else _saturate(result)
    conv(name, "intvar", in_="sint", out="sint")(fn)


_MIN64, _MAX64 = -(1 << 63), (1 << 63) - 1


def _saturate(n: int) -> int:
    """HAProxy's arithmetic converters cap at the int64 limits instead of wrapping."""
    return max(_MIN64, min(_MAX64, n))


def _div(a: int, b: int) -> int:
    if b == 0:
        return (1 << 63) - 1  # HAProxy returns LLONG_MAX on division by zero
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _mod(a: int, b: int) -> int:
    if b == 0:
        return 0
    return a - _div(a, b) * b


def _arith_add(a: int, b: int) -> int:
    """HAProxy's ``arith_add()``, its capping check included: for two negative operands that
    do not underflow, ``LLONG_MAX - a`` wraps in C and the sum is capped to ``LLONG_MAX``
    (``-1 + -1`` is 9223372036854775807 in HAProxy 2.6; seen by the fuzz tier)."""
    if (a ^ b) >= 0:
        if a < 0 and _MIN64 - a > b:
            return _MIN64
        if _wrap64(_MAX64 - a) < b:
            return _MAX64
    return a + b


def _arith_sub(a: int, b: int) -> int:
    # sample_conv_arith_sub(): -LLONG_MIN cannot be written, LLONG_MAX and one more stand in
    if b == _MIN64:
        a = _arith_add(a, _MAX64)
        return a + 1 if a < _MAX64 else a
    return _arith_add(a, -b)


_arith("add", _arith_add)
_arith("sub", _arith_sub)
_arith("mul", lambda a, b: a * b)
_arith("div", _div)
_arith("mod", _mod)
_arith("and", lambda a, b: a & b)
_arith("or", lambda a, b: a | b)
_arith("xor", lambda a, b: a ^ b)
conv("neg", in_="sint", out="sint")(lambda v, a, c: _saturate(-v))
conv("cpl", in_="sint", out="sint")(lambda v, a, c: _wrap64(~v))
conv("bool", in_="sint", out="bool")(lambda v, a, c: v != 0)
conv("not", in_="sint", out="bool")(lambda v, a, c: v == 0)
conv("odd", in_="sint", out="bool")(lambda v, a, c: bool(v & 1))
conv("even", in_="sint", out="bool")(lambda v, a, c: not v & 1)


@conv("iif", "str", "str", in_="bool", out="str")
def _iif(v: bool, args: tuple[Any, ...], ctx: Any) -> Value:
    chosen: str = args[0] if v else args[1]
    return chosen


@conv("strcmp", "var", in_="str", out="sint")
def _strcmp(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    other = ctx.vars.get(args[0]) if ctx is not None and ctx.vars is not None else None
    if not isinstance(other, (str, bytes)):
        return None
    a, b = to_bytes(v), other if isinstance(other, bytes) else to_bytes(other)
    return (a > b) - (a < b)


@conv("concat", "str?", "varopt?", "str?", in_="str", out="str")
def _concat(v: str, args: tuple[Any, ...], ctx: Any) -> Value:
    mid = ""
    if len(args) > 1 and args[1]:
        value = ctx.vars.get(args[1]) if ctx is not None and ctx.vars is not None else None
        if value is not None:
            mid = value if isinstance(value, str) else to_text(value) if isinstance(
                value, bytes) else str(value)
    return v + (args[0] if args else "") + mid + (args[2] if len(args) > 2 else "")


# --------------------------------------------------------------------------- addresses


@conv("ipmask", "msk4", "msk6?", in_="addr", out="addr")
def _ipmask(v: Any, args: tuple[Any, ...], ctx: Any) -> Value:
    if isinstance(v, IPv6Address) and v.ipv4_mapped is not None:
        # HAProxy 2.6 masks a v4-mapped address (::ffff:a.b.c.d, a dual-stack listener's
        # IPv4 client) as the IPv4 address it is; ::a.b.c.d and 2002:: stay IPv6 (checked
        # against haproxy)
        v = v.ipv4_mapped
    if isinstance(v, IPv4Address):
        return IPv4Network(f"{v}/{args[0]}", strict=False).network_address
    if isinstance(v, IPv6Address):
        if len(args) < 2:
            return None
        return IPv6Network(f"{v}/{args[1]}", strict=False).network_address
    return None


# --------------------------------------------------------------------------- maps


def _register_maps() -> None:
    from .maps import MAP_CONVERTERS, map_convert, map_input_type

    for name, (method, out) in MAP_CONVERTERS.items():
        default_kind = {"sint": "int?", "addr": "addr?"}.get(out, "str?")
        conv(name, f"map:{method}:{out}", default_kind, in_=map_input_type(method),
             out=out)(map_convert)


_register_maps()

from . import converters_bin  # noqa: E402, F401 - registers the hash, binary and time converters
