"""Map files and the ``map*`` converters (configuration.txt §7.3.1 ``map``).

A map file holds one ``key value`` per line: ``#`` lines and empty lines are skipped, leading
blanks are stripped, the key is the first word and the value what follows the blanks after it,
without trailing blanks.  Exact string and IP keys are looked up like HAProxy's trees (exact
match; longest IP prefix), the other methods in file order (first match).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from ..errors import ExpressionError
from ..protocol.values import Value
from .casts import cast, int_of_text, to_bytes
from .patterns import Pattern, match, parse_pattern

__all__ = ["MAP_CONVERTERS", "MapFile", "load_map", "map_lookup"]

_MATCHES = ("str", "beg", "sub", "dir", "dom", "end", "reg", "int", "ip")
_OUT = {"": "str", "str": "str", "int": "sint", "ip": "addr"}
_INPUT = {"int": "sint", "ip": "addr"}


@dataclass(frozen=True)
class MapFile:
    """A loaded map: ``(pattern, value)`` pairs in file order."""

    path: str
    method: str
    entries: tuple[tuple[Pattern, Value], ...]


def _out_value(text: str, out: str, where: str) -> Value:
    if out == "sint":
        n = int_of_text(to_bytes(text))
        if n is None or not text.lstrip("+-").isdigit():
            raise ExpressionError(f"{where}: '{text}' is not a valid integer")
        return n
    if out == "addr":
        value = cast(text, "addr")
        if value is None:
            raise ExpressionError(f"{where}: '{text}' is not a valid IP address")
        return value
    return text


def load_map(path: str, method: str, out: str, base_dir: str | None = None) -> MapFile:
    """Read a map file for ``method`` with values of type ``out`` (str, sint, addr).

    :raises ExpressionError: unreadable file, bad key or bad value (with the line number).
    """
    full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
    try:
        with open(full, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ExpressionError(f"failed to open map file <{path}> : {exc.strerror}") from None
    entries: list[tuple[Pattern, Value]] = []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        line = raw.split(b"\r", 1)[0].lstrip(b" \t")
        if not line or line.startswith(b"#"):
            continue
        key, _, rest = line.replace(b"\t", b" ").partition(b" ")
        raw_value = line[len(key):].lstrip(b" \t").rstrip(b" \t")
        del rest
        where = f"map file <{path}> line {lineno}"
        text_value = raw_value.decode("utf-8", "surrogateescape")
        entries.append((parse_pattern(method, key.decode("utf-8", "surrogateescape"), False),
                        _out_value(text_value, out, where)))
    return MapFile(path, method, tuple(entries))


def map_lookup(mapping: MapFile, sample: Value) -> Value:
    """The value of the first (or, for IP keys, most specific) matching key, or ``None``."""
    if mapping.method != "ip":
        return next((v for p, v in mapping.entries if match(mapping.method, sample, (p,))), None)
    hits = [(p, v) for p, v in mapping.entries if match(mapping.method, sample, (p,))]
    if not hits:
        return None
    if mapping.method == "ip":
        def prefix(hit: tuple[Pattern, Value]) -> int:
            net = hit[0].value
            length = net.prefixlen if isinstance(net, (IPv4Network, IPv6Network)) else 0
            return int(length)
        return max(hits, key=prefix)[1]
    return hits[0][1]


def _names() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {"map": ("str", "str")}
    for m in _MATCHES:
        out[f"map_{m}"] = (m, "str")
        for suffix in ("int", "ip"):
            out[f"map_{m}_{suffix}"] = (m, _OUT[suffix])
    return out


#: converter name -> (matching method, output type)
MAP_CONVERTERS: dict[str, tuple[str, str]] = _names()


def map_input_type(method: str) -> str:
    return _INPUT.get(method, "str")


def map_convert(value: Any, args: tuple[Any, ...], ctx: Any) -> Value:
    mapping, default = args[0], (args[1] if len(args) > 1 else None)
    found = map_lookup(mapping, value)
    return default if found is None else found
