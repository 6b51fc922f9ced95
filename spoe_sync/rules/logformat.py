"""Log-format strings: ``%[fetch,conv]``, ``%%`` and a few ``%X`` variables (configuration.txt
§8.2.6 "Custom log format").

A :class:`LogFormat` is compiled once (every sample expression parsed, every error reported with
its position) and rendered per stream.  Rendering follows what HAProxy 2.6 does for the
log-format arguments of ``http-request``/``http-response`` rules (``set-header``, ``redirect``,
``return lf-string``, ``hdr``...), observed on the wire:

* a sample that fails (NULL) or is empty renders as nothing (not ``-``: that is the log line's
  convention, available with ``http=False``);
* ``bool`` renders ``1``/``0``, integers in decimal, addresses in their usual text form; a binary
  sample stops at its first NUL byte;
* the bytes 0x00-0x08, 0x0a-0x1f and 0x7f are written ``%XX`` (HAProxy's ``http_encode_map``:
  a header value can never be split by a CR LF coming from a variable); tab and bytes >= 0x80
  are kept;
* the ``E`` flag (``%{+E}[...]``) escapes ``"``, ``\\`` and ``]`` with a backslash; ``Q`` and
  ``X`` have no effect in HTTP rules (as in HAProxy 2.6) and apply with ``http=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ExpressionError
from ..protocol.values import Value
from .casts import cast, to_bytes
from .sample import EvalContext, SampleExpr, parse_sample

__all__ = ["LOG_VARIABLES", "LogFormat", "parse_logformat"]

#: ``%X`` variables spoe_sync can compute, as the sample expression that gives their value.
LOG_VARIABLES: dict[str, str] = {
    "ci": "src",
    "cp": "src_port",
    "fi": "dst",
    "fp": "dst_port",
    "HM": "method",
    "HU": "url",
    "HP": "path",
    "HPO": "path",
    "HV": "req.ver",
    "ID": "unique-id",
    "ST": "status",
}

# HAProxy's http_encode_map (log.c): CTLs except HTAB, and DEL.
_ENCODED = frozenset(list(range(0x00, 0x09)) + list(range(0x0A, 0x20)) + [0x7F])
_HEXDIGITS = "0123456789ABCDEF"


@dataclass(frozen=True)
class _Node:
    expr: SampleExpr
    escape: bool = False
    quote: bool = False
    hexa: bool = False
    prefix: str = ""  # "HTTP/" for %HV


Part = str | _Node


def _encode(data: bytes, escape: bool) -> str:
    out: list[str] = []
    for byte in data:
        if escape and byte in b'"\\]':
            out.append("\\" + chr(byte))
        elif byte in _ENCODED:
            out.append("%" + _HEXDIGITS[byte >> 4] + _HEXDIGITS[byte & 15])
        else:
            out.append(chr(byte))
    return "".join(out)


def _as_bytes(value: Value) -> bytes | None:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).split(b"\0", 1)[0]
    text = cast(value, "str")
    return None if text is None else to_bytes(text)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LogFormat:
    """A compiled log-format string.

    :attr text: the string as written (quotes already removed by the config reader).
    :attr http: HTTP-rule rendering (the default), or log-line rendering (``-`` for a missing
        value, ``Q``/``X`` flags honoured) when ``False``.
    """

    text: str
    parts: tuple[Part, ...]
    http: bool = True
    _static: str | None = field(default=None, repr=False, compare=False)

    @property
    def exprs(self) -> tuple[SampleExpr, ...]:
        return tuple(p.expr for p in self.parts if isinstance(p, _Node))

    @property
    def var_refs(self) -> tuple[str, ...]:
        refs: dict[str, None] = {}
        for e in self.exprs:
            refs.update(dict.fromkeys(e.var_refs))
        return tuple(refs)

    @property
    def is_static(self) -> bool:
        """No sample expression: the text is the same for every stream."""
        return self._static is not None

    def unavailable_at(self, point: str) -> str | None:
        """``None`` when every fetch can run at ``point``; else HAProxy's complaint."""
        for e in self.exprs:
            reason = e.unavailable_at(point)
            if reason is not None:
                return (f"sample fetch <{e.text}> may not be reliably used here: {reason}")
        return None

    def render(self, ctx: EvalContext) -> str:
        """The expanded string; each character stands for one byte (latin-1), which is what
        PEP 3333 header values hold.  Use :meth:`render_bytes` for a body."""
        if self._static is not None:
            return self._static
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            out.append(self._node(part, part.expr.evaluate(ctx)))
        return "".join(out)

    def render_bytes(self, ctx: EvalContext) -> bytes:
        return self.render(ctx).encode("latin-1")

    def _node(self, node: _Node, value: Value) -> str:
        if (not self.http and node.hexa and value is not None
                and not isinstance(value, (str, bytes))):
            hexed = _hex(value)
            if hexed is not None:
                return hexed
        data = _as_bytes(value)
        if data is None or not data:
            if self.http:
                return ""
            return '""' if node.quote else "-"
        text = node.prefix + _encode(data, node.escape)
        return f'"{text}"' if node.quote and not self.http else text


def _hex(value: Value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"{value & 0xFFFFFFFF:X}" if value >= 0 else f"{value & (2**64 - 1):X}"
    packed = getattr(value, "packed", None)
    return packed.hex().upper() if isinstance(packed, bytes) else None


def _latin1(text: str) -> str:
    """Literal text as one character per byte (its UTF-8 bytes)."""
    return to_bytes(text).decode("latin-1")


def _flags(text: str, start: int, current: dict[str, bool]) -> tuple[dict[str, bool], int]:
    end = text.find("}", start)
    if end < 0:
        raise ExpressionError("missing '}' after '%{'", text, start)
    flags = dict(current)
    for item in text[start + 1:end].split(","):
        item = item.strip()
        if not item:
            continue
        sign, name = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
        if name not in ("Q", "X", "E"):
            raise ExpressionError(f"unknown flag '{name}' in '%{{...}}'", text, start)
        flags[name] = sign == "+"
    return flags, end + 1


def _expr_end(text: str, start: int) -> int:
    """Index of the ``]`` closing the expression that starts at ``start`` (after ``[``)."""
    depth = 0
    quote = ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == "]" and depth == 0:
            return i
    raise ExpressionError("missing ']' after sample expression", text, start - 1)


def parse_logformat(text: str, *, http: bool = True, point: str | None = None) -> LogFormat:
    """Compile a log-format string.

    :param http: render as HAProxy's HTTP rules do (see the module docstring).
    :param point: a sample point (``"http-request"``...): a fetch not usable there is an
        error, as HAProxy says when it loads the config.
    :raises ExpressionError: unknown fetch or converter, missing ``]``, unknown ``%X``
        variable, or a fetch unavailable at ``point``.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"a log-format string must be text, not {type(text).__name__}")
    parts: list[Part] = []
    literal: list[str] = []
    sticky: dict[str, bool] = {}  # %o flags apply to every following variable
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "%":
            literal.append(c)
            i += 1
            continue
        if i + 1 < n and text[i + 1] == "%":
            literal.append("%")
            i += 2
            continue
        j = i + 1
        flags = sticky
        if j < n and text[j] == "{":
            flags, j = _flags(text, j, sticky)
        if j < n and text[j] == "[":
            end = _expr_end(text, j + 1)
            source = text[j + 1:end].strip()
            if not source:
                raise ExpressionError("empty sample expression in '%[]'", text, j)
            try:
                expr = parse_sample(source)
            except ExpressionError as exc:
                raise ExpressionError(f"failed to parse sample expression <{source}> : "
                                      f"{exc.message}", text, j + 1) from None
            node = _Node(expr, flags.get("E", False), flags.get("Q", False), flags.get("X", False))
            i = end + 1
        else:
            k = j
            while k < n and (text[k].isalnum() or text[k] == "_"):
                k += 1
            name = text[j:k]
            if name == "o":
                sticky = flags
                i = k
                continue
            if name not in LOG_VARIABLES:
                shown = name or text[j:j + 1]
                raise ExpressionError(f"no such format variable '{shown}'. If you wanted to emit "
                                      "the '%' character verbatim, you need to use '%%'",
                                      text, i)
            node = _Node(parse_sample(LOG_VARIABLES[name]), flags.get("E", False),
                         flags.get("Q", False), flags.get("X", False),
                         "HTTP/" if name == "HV" else "")
            i = k
        if literal:
            parts.append(_latin1("".join(literal)))
            literal.clear()
        parts.append(node)
    if literal:
        parts.append(_latin1("".join(literal)))
    static = "".join(p for p in parts if isinstance(p, str)) if all(
        isinstance(p, str) for p in parts) else None
    fmt = LogFormat(text, tuple(parts), http, static)
    if point is not None:
        reason = fmt.unavailable_at(point)
        if reason is not None:
            raise ExpressionError(reason, text)
    return fmt
