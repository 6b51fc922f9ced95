"""Small value parsers of HAProxy's config reader: times, integers, names.

Each mirrors the C function HAProxy 2.6 uses, including its leniencies (``atol``
ignores trailing garbage; a timer suffix followed by junk is only a warning).
"""

from __future__ import annotations

__all__ = [
    "TIMER_MAX_MS",
    "TimeParse",
    "atol_u32",
    "invalid_char",
    "invalid_var_char",
    "parse_time_ms",
]

TIMER_MAX_MS = 2147483647
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ASCII_ALNUM | frozenset(".:_-")
_VAR_CHARS = _ASCII_ALNUM | frozenset("._")


def invalid_char(name: str) -> str | None:
    """HAProxy's ``invalid_char()`` for section/ACL names: the first character that
    is not ``[A-Za-z0-9.:_-]``, ``"\\0"`` for an empty name, or ``None``."""
    if not name:
        return "\0"
    for c in name:
        if c not in _NAME_CHARS:
            return c
    return None


def invalid_var_char(name: str) -> int | None:
    """Index of the first character outside ``[A-Za-z0-9_.]`` (variable names and
    prefixes), or ``None``."""
    for i, c in enumerate(name):
        if c not in _VAR_CHARS:
            return i
    return None


def atol_u32(text: str) -> int:
    """C ``atol()`` stored in an ``unsigned int``: leading blanks, an optional sign,
    digits; anything after is ignored; no digits gives 0; negatives wrap."""
    s = text.lstrip(" \t\n\r\v\f")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    digits = ""
    for c in s:
        if not c.isascii() or not c.isdigit():
            break
        digits += c
    value = int(digits) if digits else 0
    value = min(value, 2**63 - 1) * sign  # strtol saturates at LONG_MAX/LONG_MIN
    return value & 0xFFFFFFFF


class TimeParse:
    """Outcome of :func:`parse_time_ms`: ``ms`` (int) or ``error`` text, plus an
    optional ``warning`` (HAProxy 2.6 only warns about junk after a unit)."""

    __slots__ = ("error", "ms", "warning")

    def __init__(self, ms: int | None = None, error: str | None = None,
                 warning: str | None = None) -> None:
        self.ms = ms
        self.error = error
        self.warning = warning


def parse_time_ms(text: str, keyword: str) -> TimeParse:
    """HAProxy's ``parse_time_err(text, ..., TIME_UNIT_MS)``: a decimal number with an
    optional unit ``us ms s m h d`` (default ms), rounded up to the millisecond.

    ``keyword`` is the directive (``"timeout hello"``) used in the messages.
    """
    i = 0
    while i < len(text) and "0" <= text[i] <= "9":
        i += 1
    if i == 0:
        bad = text[:1] or "\\0"
        return TimeParse(error=f"unexpected character '{bad}' in '{keyword}'")
    value = int(text[:i])
    rest = text[i:]
    mult, div = 1, 1  # relative to milliseconds
    consumed = 0
    if rest == "":
        pass
    elif rest[0] == "s":
        mult, consumed = 1000, 1
    elif rest[0] == "u" and rest[1:2] == "s":
        div, consumed = 1000, 2
    elif rest[0] == "m" and rest[1:2] == "s":
        consumed = 2
    elif rest[0] == "m":
        mult, consumed = 60_000, 1
    elif rest[0] == "h":
        mult, consumed = 3_600_000, 1
    elif rest[0] == "d":
        mult, consumed = 86_400_000, 1
    else:
        return TimeParse(error=f"unexpected character '{rest[0]}' in '{keyword}'")
    warning = None
    junk = rest[consumed:]
    if junk:
        warning = (f"unexpected character '{junk[0]}' after the timer value '{text}', only "
                   "(us=microseconds,ms=milliseconds,s=seconds,m=minutes,h=hours,d=days) are "
                   "supported. This will be reported as an error in next versions.")
    result = (value * mult + div - 1) // div
    if result > TIMER_MAX_MS:
        return TimeParse(error=f"timer overflow in argument <{text}> to <{keyword}>, maximum "
                               "value is 2147483647 ms (~24.8 days).")
    return TimeParse(ms=result, warning=warning)
