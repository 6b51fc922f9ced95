"""Hash, digest, binary and time converters (configuration.txt §7.3.1): ``crc32 crc32c djb2
sdbm wt6`` (with the optional avalanche), ``sha1 sha2 digest hmac``, ``htonl be2dec be2hex``,
``host_only port_only``, ``utime ltime http_date``.  Results checked against HAProxy 2.6."""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from typing import Any

from ..protocol.values import Value
from .converters import conv

conv("sha1", in_="bin", out="bin")(lambda v, a, c: hashlib.sha1(v).digest())
conv("sha2", "int?", in_="bin", out="bin")(
    lambda v, a, c: hashlib.new(f"sha{a[0] if a else 256}", v).digest())


def _avalanche(h: int, args: tuple[Any, ...]) -> int:
    from .fetches.hashes import full_hash

    return full_hash(h) if args and args[0] else h


def _djb2_raw(v: bytes) -> int:
    h = 5381
    for b in v:
        h = (h * 33 + b) & 0xFFFFFFFF
    return h


def _sdbm_raw(v: bytes) -> int:
    h = 0
    for b in v:
        h = (b + (h << 6) + (h << 16) - h) & 0xFFFFFFFF
    return h


def _wt6_raw(v: bytes) -> int:
    """HAProxy's ``hash_wt6()``."""
    m = 0xFFFFFFFF
    h0, h1, step0, step1 = 0xA53C965A, 0x5CA6953A, 6, 18
    for t in v:
        h0 = ~(h0 ^ t) & m
        h1 = ~(h1 + t) & m
        t2 = ((h1 << step0) | (h1 >> (32 - step0))) & m
        h1 = ((h0 << step1) | (h0 >> (32 - step1))) & m
        h0 = t2
        t3 = ((h0 >> 16) ^ h1) & 0xFFFF
        step0 = t3 & 0x1F
        step1 = t3 >> 11
    return h0 ^ h1


def _crc32c_raw(v: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in v:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


for _name, _fn in (("crc32", zlib.crc32), ("djb2", _djb2_raw), ("sdbm", _sdbm_raw),
                   ("wt6", _wt6_raw), ("crc32c", _crc32c_raw)):
    conv(_name, "int?", in_="bin", out="sint")(
        lambda v, a, c, fn=_fn: _avalanche(fn(v), a))


@conv("digest", "str", in_="bin", out="bin")
def _digest(v: bytes, args: tuple[Any, ...], ctx: Any) -> Value:
    try:
        return hashlib.new(args[0].lower(), v).digest()
    except ValueError:
        return None


@conv("hmac", "str", "str", in_="bin", out="bin")
def _hmac(v: bytes, args: tuple[Any, ...], ctx: Any) -> Value:
    import hmac

    key_text = args[1]
    if "." in key_text and ctx is not None and ctx.vars is not None:
        var = ctx.vars.get(key_text)  # a variable holding the base64 key
        if isinstance(var, (str, bytes)):
            key_text = var if isinstance(var, str) else var.decode("latin-1")
    try:
        key = base64.b64decode(key_text, validate=True)
        return hmac.new(key, v, args[0].lower()).digest()
    except (binascii.Error, ValueError):
        return None


conv("htonl", in_="sint", out="bin")(lambda v, a, c: (v & 0xFFFFFFFF).to_bytes(4, "big"))


def _be2(v: bytes, args: tuple[Any, ...], fmt: Any) -> str:
    sep = args[0] if args else ""
    size = args[1] if len(args) > 1 and args[1] else (len(v) or 1)
    truncate = bool(args[2]) if len(args) > 2 else False
    chunks = [v[i:i + size] for i in range(0, len(v), size)]
    if truncate and chunks and len(chunks[-1]) < size:
        chunks.pop()
    return sep.join(fmt(chunk) for chunk in chunks)


conv("be2dec", "str", "int", "int?", in_="bin", out="str")(
    lambda v, a, c: _be2(v, a, lambda ch: str(int.from_bytes(ch, "big"))))
conv("be2hex", "str?", "int?", "int?", in_="bin", out="str")(
    lambda v, a, c: _be2(v, a, lambda ch: ch.hex().upper()))


def _host_port(v: str) -> tuple[str, str]:
    if v.startswith("["):
        host, _, rest = v.partition("]")
        return host + "]", rest[1:] if rest.startswith(":") else ""
    host, _, port = v.partition(":")
    return host, port


conv("host_only", in_="str", out="str")(lambda v, a, c: _host_port(v)[0].lower())
conv("port_only", in_="str", out="sint")(
    lambda v, a, c: int(_host_port(v)[1]) if _host_port(v)[1].isdigit() else 0)


def _format_time(v: int, args: tuple[Any, ...], local: bool) -> Value:
    import time as _time

    # sample_conv_utime()/ltime(): the offset added, then 55 bits kept, as http_date
    ts = (v + (args[1] if len(args) > 1 else 0)) & 0x007FFFFFFFFFFFFF
    tm: Any
    try:
        tm = _time.localtime(ts) if local else _time.gmtime(ts)
    except (OverflowError, OSError, ValueError):
        tm = _far_time(ts - (_time.timezone if local else 0))
    try:
        return _time.strftime(args[0], tm)
    except (OverflowError, ValueError):
        return None


def _far_time(ts: int) -> tuple[int, ...]:
    """``struct tm`` of a UTC timestamp past what the C library's gmtime() takes here."""
    days, rest = divmod(ts, 86400)
    year, month, day = _civil_from_days(days)
    yday = days - _days_from_civil(year, 1, 1) + 1
    return (year, month, day, rest // 3600, rest // 60 % 60, rest % 60, (days + 3) % 7, yday, 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


conv("utime", "str", "int?", in_="sint", out="str")(lambda v, a, c: _format_time(v, a, False))
conv("ltime", "str", "int?", in_="sint", out="str")(lambda v, a, c: _format_time(v, a, True))

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@conv("http_date", "int?", "str?", in_="sint", out="str")
def _http_date(v: int, args: tuple[Any, ...], ctx: Any) -> Value:
    unit = args[1] if len(args) > 1 and args[1] else "s"
    scale = {"s": 1, "ms": 1000, "us": 1000000}.get(unit, 1)
    total = v + (args[0] if args else 0)
    # C division truncates toward zero; then HAProxy keeps 55 bits ("the date returned can be
    # negative, the 55 bits mask prevent this"): -1 is a date in the year 1141709097
    ts = abs(total) // scale * (1 if total >= 0 else -1)
    frac = total - ts * scale
    ts &= 0x007FFFFFFFFFFFFF
    days, rest = divmod(ts, 86400)
    year, month, day = _civil_from_days(days)
    # sub-second units keep their fraction: "...:20.123 GMT" (observed, 2.6)
    fraction = f".{frac}" if scale > 1 else ""
    return (f"{_DAYS[(days + 3) % 7]}, {day:02d} {_MONTHS[month - 1]} {year} "
            f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}{fraction} GMT")


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar,
    for any year (``time.gmtime`` stops at year 9999 or earlier)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day
