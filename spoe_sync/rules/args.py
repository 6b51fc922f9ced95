"""Typed arguments of fetches and converters, checked at parse time like HAProxy's
``make_arg_list()`` and the keywords' ``val_args`` callbacks, with HAProxy's messages."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from .lexer import Call
from .pcre import compile_pcre

__all__ = ["ArgError", "convert_args"]

_TYPE_NAMES = {"int": "integer", "str": "string", "ipv4": "IPv4 address", "ipv6": "IPv6 address",
               "var": "string", "varopt": "string", "bool": "string", "hex": "string",
               "regex": "regex", "msk4": "IPv4 mask", "msk6": "IPv6 mask", "intvar": "string",
               "jsoncode": "string", "fieldidx": "integer", "delims": "string",
               "map": "map file", "addr": "IP address"}
_JSON_CODES = ("ascii", "utf8", "utf8s", "utf8p", "utf8ps")
_INT = re.compile(r"[-+]?\d+\Z")
_SCOPES = ("proc", "sess", "txn", "req", "res", "check")


class ArgError(Exception):
    """Internal: carries HAProxy's text; the caller prefixes the keyword."""

    def __init__(self, message: str, validation: bool = False, position: int = 1) -> None:
        super().__init__(message)
        self.validation = validation
        self.position = position


def _var_name(text: str) -> str:
    if not text:
        raise ArgError("Empty variable name cannot be accepted", validation=True)
    scope, _, rest = text.partition(".")
    if scope not in _SCOPES or not rest:
        raise ArgError(f"invalid variable name '{text}'. A variable name must be start by its "
                       "scope. The scope can be 'proc', 'sess', 'txn', 'req', 'res' or 'check'",
                       validation=True)
    return text


def _one(kind: str, text: str, pos: int, base_dir: str | None = None) -> Any:
    if kind.startswith("map:"):
        from ..errors import ExpressionError
        from .maps import load_map

        _, method, out = kind.split(":")
        try:
            return load_map(text, method, out, base_dir)
        except ExpressionError as exc:
            raise ArgError(exc.message, validation=True) from None
    if kind == "addr":
        from .casts import cast

        value = cast(text, "addr")
        if value is None:
            raise ArgError(f"failed to parse '{text}' as type 'IP address' at position {pos}")
        return value
    failed = ArgError(f"failed to parse '{text}' as type '{_TYPE_NAMES[kind]}' at position {pos}")
    if kind == "int":
        if not _INT.match(text):
            raise failed
        return int(text)
    if kind == "intvar":
        return int(text) if _INT.match(text) else _var_name(text)
    if kind in ("str", "varopt"):
        return text
    if kind == "fieldidx":
        if not _INT.match(text):
            raise failed
        if int(text) == 0:
            raise ArgError("Unexpected value 0 for index", validation=True)
        return int(text)
    if kind == "delims":
        if not text:
            raise ArgError("Empty separators list", validation=True)
        return text
    if kind == "jsoncode":
        if text not in _JSON_CODES:
            raise ArgError("Unexpected input code type. Allowed value are 'ascii', 'utf8', "
                           "'utf8s', 'utf8p' and 'utf8ps'", validation=True)
        return text
    if kind == "var":
        return _var_name(text)
    if kind == "bool":
        low = text.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise ArgError("Expects 'true', 'false', '0' or '1'", validation=True)
    if kind == "hex":
        try:
            if len(text) % 2:
                raise ValueError
            return bytes.fromhex(text)
        except ValueError:
            raise ArgError("an even number of hex digit is expected", validation=True) from None
    if kind == "ipv4":
        try:
            if text.count(".") != 3:
                raise ValueError
            return IPv4Address(text)
        except ValueError:
            raise failed from None
    if kind == "ipv6":
        try:
            return IPv6Address(text)
        except ValueError:
            raise failed from None
    if kind == "regex":
        try:
            return compile_pcre(text)
        except re.error as exc:
            raise ArgError(f"regex '{text}' is invalid ({exc})") from None
    if kind == "msk4":
        return _mask(text, 32, failed)
    if kind == "msk6":
        return _mask(text, 128, failed)
    raise AssertionError(kind)


def _mask(text: str, bits: int, failed: ArgError) -> int:
    if text.isdigit() and int(text) <= bits:
        return int(text)
    if bits == 32:
        try:
            n = int(IPv4Address(text))
        except ValueError:
            raise failed from None
        length = bin(n).count("1")
        if n != ((1 << 32) - 1) ^ ((1 << (32 - length)) - 1):
            raise failed
        return length
    raise failed


def convert_args(call: Call, spec: tuple[str, ...], base_dir: str | None = None
                 ) -> tuple[Any, ...]:
    """Check and convert ``call.args`` against ``spec``.

    :raises ArgError: with HAProxy's text (without the keyword prefix).
    """
    given = call.args
    mandatory = [s for s in spec if not s.endswith("?")]
    # A missing string argument is an empty string for HAProxy (``str`` is ``str()``).
    if not given and mandatory and mandatory[0] in ("str", "hex", "var"):
        # make_arg_list() sees one empty argument: valid for a string, not for the others.
        kind = mandatory[0]
        if kind == "hex":
            raise ArgError("(null)", validation=True)
        if kind == "var":
            raise ArgError("Empty variable name cannot be accepted", validation=True)
        given = ("",)
    if len(given) > len(spec):
        rest = "," + ",".join(given[len(spec):]) + ")" if spec else ",".join(given) + ")"
        raise ArgError(f"expected ')' before '{rest}'", position=len(spec) + 1)
    if len(given) < len(mandatory):
        kind = _TYPE_NAMES.get(mandatory[len(given)].split(":")[0], "string")
        if not given:
            raise ArgError(f"expected type '{kind}' at position 1, but got nothing")
        raise ArgError(f"missing arguments (got {len(given)}/{len(mandatory)}), "
                       f"type '{kind}' expected", position=len(given) + 1)
    out = []
    for pos, (kind, text) in enumerate(zip(spec, given), 1):
        kind = kind.rstrip("?")
        if text == "" and kind not in ("str", "varopt", "hex", "delims"):
            if spec[pos - 1].endswith("?"):
                break  # an empty optional argument counts as absent
            raise ArgError(f"expected type '{_TYPE_NAMES.get(kind.split(':')[0], 'string')}' "
                           f"at position {pos}, "
                           "but got nothing")
        try:
            out.append(_one(kind, text, pos, base_dir))
        except ArgError as exc:
            exc.position = pos
            raise
    return tuple(out)
