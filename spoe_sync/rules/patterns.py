"""ACL pattern matching methods (configuration.txt §7.1, HAProxy's src/pattern.c).

Each method has a pattern parser (config time, raises :class:`ExpressionError`) and a matcher
``match(sample, patterns) -> bool``.  The sample is first cast to the method's input type; a sample
that cannot be cast does not match.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from ..errors import ExpressionError
from ..protocol.values import Value
from .casts import _v4_of_v6, cast, to_bytes
from .pcre import compile_pcre

__all__ = ["METHODS", "Pattern", "parse_pattern"]

METHODS = ("found", "bool", "int", "ip", "bin", "len", "str", "sub", "reg", "beg", "end",
           "dir", "dom")

# HAProxy's well-known methods (enum http_meth_t); others are compared as strings.
KNOWN_METHODS = frozenset((b"OPTIONS", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"TRACE",
                           b"CONNECT"))

# Which sample type each method works on (before matching).
_INPUT = {"meth": "str", "bool": "bool", "int": "sint", "ip": "addr", "bin": "bin", "len": "str", "str": "str",
          "sub": "str", "reg": "str", "beg": "str", "end": "str", "dir": "str", "dom": "str"}

_OPS: dict[str, Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b, "ge": lambda a, b: a >= b, "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}
INT_OPERATORS = frozenset(_OPS)


@dataclass(frozen=True)
class Pattern:
    """One parsed pattern.  ``value`` depends on the method: bytes (string methods), compiled
    regex, ``(low, high)`` int range, bytes (bin), or an IP network."""

    method: str
    text: str
    value: Any
    icase: bool = False


def _int_pattern(text: str, operator: str) -> tuple[int | None, int | None]:
    def num(s: str) -> int:
        if not re.fullmatch(r"[-+]?\d+", s):
            raise ExpressionError(f"'{text}' is not a number.", text)
        return int(s)
    # pat_parse_int(): the first ':' or '-' separates a range, so "-3" is "up to 3" and
    # "1-5" is 1 to 5 (a negative number cannot be written as a pattern)
    sep = next((i for i, c in enumerate(text) if c in ":-"), -1)
    if sep >= 0:
        lo, hi = text[:sep], text[sep + 1:]
        if lo and hi and num(lo) > num(hi):
            raise ExpressionError(f"'{text}' is not a valid integer range.", text)
        return (num(lo) if lo else None, num(hi) if hi else None)
    n = num(text)
    if operator == "eq":
        return (n, n)
    if operator == "ge":
        return (n, None)
    if operator == "gt":
        return (n + 1, None)
    if operator == "le":
        return (None, n)
    return (None, n - 1)  # lt


def _ipv4_network(text: str) -> IPv4Network:
    addr, _, mask = text.partition("/")
    # inet_aton() rules, as HAProxy: "10.12" is 10.0.0.12, "127.1" is 127.0.0.1.
    packed = socket.inet_aton(addr)
    if not mask:
        return IPv4Network((packed, 32))
    if mask.isdigit():
        return IPv4Network((packed, int(mask)), strict=False)
    return IPv4Network(f"{IPv4Address(packed)}/{mask}", strict=False)


def _ip_pattern(text: str) -> IPv4Network | IPv6Network:
    try:
        return _ipv4_network(text)
    except (OSError, ValueError):
        pass
    try:
        return IPv6Network(text, strict=False)
    except ValueError:
        raise ExpressionError(f"'{text}' is not a valid IPv4 or IPv6 address.", text) from None


def parse_pattern(method: str, text: str, icase: bool, operator: str = "eq") -> Pattern:
    """Parse one pattern for ``method``.

    :raises ExpressionError: with HAProxy's wording ("'x' is not a number.", ...).
    """
    if method in ("int", "len"):
        return Pattern(method, text, _int_pattern(text, operator), icase)
    if method == "ip":
        return Pattern(method, text, _ip_pattern(text), icase)
    if method == "bin":
        try:
            return Pattern(method, text, bytes.fromhex(text), icase)
        except ValueError:
            raise ExpressionError(f"'{text}' is not a valid hex string.", text) from None
    if method == "reg":
        try:
            return Pattern(method, text, compile_pcre(to_bytes(text), re.I if icase else 0), icase)
        except re.error as exc:
            raise ExpressionError(f"regex '{text}' is invalid ({exc})", text) from None
    raw = to_bytes(text)
    return Pattern(method, text, raw.lower() if icase else raw, icase)


def _lower(b: bytes) -> bytes:
    return b.lower()  # ASCII only, like HAProxy's tolower() in the C locale


def _match_word(sample: bytes, pat: bytes, icase: bool, delims: bytes) -> bool:
    """HAProxy's ``match_word()``: ``pat`` found between delimiters (or the string edges)."""
    pat = pat.strip(delims)
    if icase:
        sample = _lower(sample)
    if not pat:
        # only delimiters: HAProxy's loop matches at the string's end after a delimiter
        return not sample or sample[-1] in delims
    if len(pat) > len(sample):
        return False
    may_match = True
    for i in range(len(sample) - len(pat) + 1):
        c = sample[i]
        if c in delims:
            may_match = True
            continue
        if not may_match:
            continue
        end = i + len(pat)
        if sample[i:end] == pat and (end == len(sample) or sample[end] in delims):
            return True
        may_match = False
    return False


def _match_meth(sample: bytes, pat: Pattern) -> bool:
    """``pat_match_meth()``: a well-known pattern compares by method (case-sensitively, -i or
    not); another pattern matches only another method, as a string (-i applies)."""
    raw = to_bytes(pat.text)
    if raw in KNOWN_METHODS:
        return sample == raw
    if sample in KNOWN_METHODS:
        return False
    return _lower(sample) == _lower(raw) if pat.icase else sample == raw


def _match_one(method: str, sample: Any, pat: Pattern) -> bool:
    if method in ("int", "len"):
        n = len(to_bytes(sample)) if method == "len" else sample
        lo, hi = pat.value
        return (lo is None or n >= lo) and (hi is None or n <= hi)
    if method == "ip":
        net = pat.value
        if isinstance(net, IPv4Network):
            v4 = sample if isinstance(sample, IPv4Address) else _v4_of_v6(sample)
            return v4 is not None and v4 in net
        v6 = sample if isinstance(sample, IPv6Address) else cast(sample, "ipv6")
        return isinstance(v6, IPv6Address) and v6 in net
    if method == "bin":
        return bool(bytes(sample) == pat.value)
    if method == "reg":
        return bool(pat.value.search(to_bytes(sample)) is not None)
    if method == "meth":
        return _match_meth(to_bytes(sample), pat)
    data = to_bytes(sample)
    if pat.icase:
        data = _lower(data)
    p: bytes = pat.value
    if method == "str":
        return data == p
    if method == "beg":
        return data.startswith(p)
    if method == "end":
        return data.endswith(p)
    if method == "sub":
        return p in data
    if method == "dir":
        return _match_word(data, p, False, b"/?")
    if method == "dom":
        return _match_word(data, p, False, b"/?.:")
    raise AssertionError(method)


def match(method: str, sample: Value, patterns: tuple[Pattern, ...]) -> bool:
    """Whether ``sample`` matches ``patterns`` with ``method`` (``None`` never matches)."""
    if sample is None:
        return False
    if method == "found":
        return True
    value = cast(sample, _INPUT[method])
    if value is None:
        return False
    if method == "bool":
        return bool(value)
    return any(_match_one(method, value, p) for p in patterns)
