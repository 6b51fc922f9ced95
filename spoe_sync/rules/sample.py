"""Sample expressions: ``fetch[(args)][,converter[(args)]]...`` (configuration.txt §7.3).

``parse_sample()`` checks everything HAProxy checks when it loads a config (known keyword, argument
count and types); ``SampleExpr.evaluate()`` never raises on data problems: a fetch or converter that
cannot produce a value gives ``None``, which the engine sends as NULL (SPOE.txt §2.3: "if a sample
expression is not available, it is set to NULL").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

from ..errors import ExpressionError
from ..protocol.values import Value
from . import names
from .args import ArgError, convert_args
from .casts import cast
from .converters import CONVERTERS, ConverterDef
from .fetches import ALIASES, REGISTRY, FetchDef
from .lexer import Call, split_expression
from .points import POINTS, unavailable_message
from .sources import NOTSET, SampleSource

__all__ = ["EvalContext", "SampleExpr", "VarLookup", "parse_sample", "wire"]


class VarLookup(Protocol):
    """What ``var()`` reads: full names such as ``txn.coraza.app``."""

    def get(self, full_name: str) -> Value | None: ...


@dataclass(frozen=True)
class EvalContext:
    """What an expression is evaluated against: the stream's samples and its variables."""

    samples: SampleSource
    vars: VarLookup | None = None


@dataclass(frozen=True)
class _Conv:
    name: str
    definition: ConverterDef | None
    args: tuple[Any, ...]


#: the types a fetch returns that go on the wire as they are (one set lookup, no isinstance())
_AS_IS = frozenset((str, bytes, bool, type(None), IPv4Address, IPv6Address))


def wire(value: Any) -> Value:
    """A Python value as a SPOP-typed one: HAProxy's integers are 64-bit, bytearrays are bytes."""
    kind = type(value)
    plain: Value = value
    if kind in _AS_IS:
        return plain
    if kind is int and -(1 << 63) <= value < (1 << 63):
        return plain
    if isinstance(value, int):  # an int subclass (Int64...) or out of range: plain, wrapped
        n = int(value) & ((1 << 64) - 1)
        return n - (1 << 64) if n >= 1 << 63 else n
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    result: Value = value
    return result


@dataclass(frozen=True)
class SampleExpr:
    """A parsed sample expression.

    :attr text: the expression as written.
    :attr fetch: the canonical fetch name (``hdr`` -> ``req.hdr``).
    :attr implemented: ``False`` for a fetch or converter HAProxy has and spoe_sync does not;
        evaluating it raises :class:`~spoe_sync.errors.ExpressionError`.
    :attr var_refs: full variable names the expression reads.
    :attr out_type: HAProxy's output type of the whole expression (bool sint addr ipv4 ipv6 str
        bin meth any).
    """

    text: str
    fetch: str
    implemented: bool
    var_refs: tuple[str, ...]
    out_type: str
    args: tuple[Any, ...] = field(repr=False, default=())
    _info: names.FetchInfo | None = field(repr=False, default=None, compare=False)
    _def: FetchDef | None = field(repr=False, default=None, compare=False)
    _convs: tuple[_Conv, ...] = field(repr=False, default=(), compare=False)
    _keys: tuple[str, ...] = field(repr=False, default=(), compare=False)

    def unavailable_at(self, point: str, proxy: str = "listen") -> str | None:
        """``None`` when the fetch can run at ``point`` (an SPOE event or a rule set, see
        :mod:`spoe_sync.rules.points`), else HAProxy's reason.

        :param proxy: ``"listen"`` (spoe_sync's default: frontend and backend in one),
            ``"frontend"`` or ``"backend"``: the capabilities of the proxy the filter is in.
        """
        if point not in POINTS:
            raise ExpressionError(f"unknown sample point '{point}'")
        if proxy not in ("listen", "frontend", "backend"):
            raise ExpressionError(f"unknown proxy kind '{proxy}'")
        if self._info is None:
            return None
        return unavailable_message(self._info, point, proxy)

    def _check_implemented(self) -> None:
        if not self.implemented:
            missing = [c.name for c in self._convs if c.definition is None]
            what = (f"converter '{missing[0]}'" if missing and self._def is not None
                    else f"fetch method '{self.fetch}'")
            raise ExpressionError(f"{what} is not implemented by spoe_sync", self.text)

    def _fetch_one(self, ctx: EvalContext) -> Value:
        assert self._def is not None
        if not self._def.literal:
            found = ctx.samples.lookup(self._keys)
            if found is not NOTSET:
                return found  # type: ignore[return-value]
        try:
            return self._def.fn(ctx, self.args)
        except Exception:
            return None

    def _convert(self, value: Value, ctx: EvalContext) -> Value:
        for conv in self._convs:
            if value is None:
                return None
            assert conv.definition is not None
            value = cast(value, conv.definition.in_type)
            if value is None:
                return None
            try:
                value = conv.definition.fn(value, conv.args, ctx)
            except Exception:
                return None
        return wire(value)

    def evaluate(self, ctx: EvalContext) -> Value:
        """The sample, or ``None`` when the fetch or a converter failed (sent as NULL)."""
        # _check_implemented(), _fetch_one() and _convert() written out: this
        # runs for every argument of every message sent.
        if not self.implemented:
            self._check_implemented()
        fdef = self._def
        assert fdef is not None
        samples = ctx.samples
        # SampleSource.lookup() answers NOTSET: not called on samples that keep it
        value: Any = samples.lookup(self._keys) if (
            samples._own_lookup and not fdef.literal) else NOTSET
        if value is NOTSET:
            try:
                value = fdef.fn(ctx, self.args)
            except Exception:
                value = None
        if self._convs:
            return self._convert(value, ctx)
        if type(value) in _AS_IS:  # wire()'s first case (text, addresses...), written out
            return value  # type: ignore[no-any-return]
        return wire(value)

    def evaluate_all(self, ctx: EvalContext) -> list[Value]:
        """Every value an ACL iterates over (all header occurrences, all cookies...)."""
        self._check_implemented()
        assert self._def is not None
        if self._def.many is None or ctx.samples.lookup(self._keys) is not NOTSET:
            return [self.evaluate(ctx)]
        try:
            values = list(self._def.many(ctx, self.args))
        except Exception:
            return [None]
        return [self._convert(v, ctx) for v in values] or [None]


def _var_refs(args: Sequence[Any], spec: Sequence[str]) -> list[str]:
    return [a for a, s in zip(args, spec)
            if s.rstrip("?") in ("var", "varopt", "intvar") and isinstance(a, str) and a]


def _fetch_text(text: str, call: Call) -> str:
    if not call.has_parens:
        return call.name
    depth_end = text.find(")", call.position + len(call.name))
    return text[call.position:depth_end + 1] if depth_end >= 0 else text


def build_expr(text: str, fetch_call: Call, conv_calls: Sequence[Call],
               fetch_name: str | None = None, base_dir: str | None = None) -> SampleExpr:
    """Build a :class:`SampleExpr` from already-split calls (also used by ACL keywords, which
    name the fetch differently from what is written)."""
    written = fetch_name or fetch_call.name
    info = names.FETCHES.get(written)
    if info is None:
        raise ExpressionError(f"unknown fetch method '{written}'", text, fetch_call.position)
    canonical = ALIASES.get(written, written)
    fdef = REGISTRY.get(canonical)
    refs: list[str] = []
    args: tuple[Any, ...] = ()
    if fdef is not None:
        try:
            args = convert_args(fetch_call, fdef.args)
        except ArgError as exc:
            prefix = ("invalid args in fetch method" if exc.validation else "fetch method")
            raise ExpressionError(f"{prefix} '{written}' : {exc}", text,
                                  fetch_call.position) from None
        refs += _var_refs(args, fdef.args)
    elif fetch_call.has_parens and info.signature is None and fetch_call.args:
        raise ExpressionError(f"fetch method '{written}' : expected ')' before "
                              f"'{','.join(fetch_call.args)})'", text, fetch_call.position)
    out = fdef.out if fdef is not None else info.out_type
    convs: list[_Conv] = []
    for call in conv_calls:
        cinfo = names.CONVERTERS.get(call.name)
        cdef = CONVERTERS.get(call.name)
        if cinfo is None and cdef is None:
            raise ExpressionError(f"unknown converter '{call.name}'", text, call.position)
        cargs: tuple[Any, ...] = ()
        if cdef is not None:
            try:
                cargs = convert_args(call, cdef.args, base_dir)
            except ArgError as exc:
                where = ("invalid args in converter" if exc.validation
                         else f"invalid arg {exc.position} in converter")
                raise ExpressionError(f"{where} '{call.name}' : {exc}", text,
                                      call.position) from None
            refs += _var_refs(cargs, cdef.args)
            out = cdef.out
        elif cinfo is not None:
            out = cinfo.out_type
        convs.append(_Conv(call.name, cdef, cargs))
    implemented = fdef is not None and all(c.definition is not None for c in convs)
    fetch_text = _fetch_text(text, fetch_call)
    keys = [fetch_text]
    canonical_text = canonical + (f"({','.join(fetch_call.args)})" if fetch_call.args else "")
    if canonical_text not in keys:
        keys.append(canonical_text)
    return SampleExpr(text=text, fetch=canonical, implemented=implemented,
                      var_refs=tuple(dict.fromkeys(refs)), out_type=out, args=args,
                      _info=info, _def=fdef, _convs=tuple(convs), _keys=tuple(keys))


def parse_sample(text: str, *, base_dir: str | None = None) -> SampleExpr:
    """Parse one sample expression (a config word, quotes already removed).

    :param base_dir: where relative map files (``map(hosts.map)``) are looked up.

    :raises ExpressionError: "unknown fetch method 'x'", "unknown converter 'x'", an argument
        error in HAProxy's words, or a syntax error, with the position.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"a sample expression must be text, not {type(text).__name__}")
    fetch_call, conv_calls = split_expression(text)
    return build_expr(text, fetch_call, conv_calls, base_dir=base_dir)

