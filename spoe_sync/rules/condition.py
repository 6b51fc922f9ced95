"""Conditions: ``if|unless [!]acl1 [!]acl2 ... [or|'||' ...]`` (configuration.txt §7.2).

A condition is a disjunction of conjunctions of (possibly negated) ACLs, named or anonymous
(``{ <criterion> [flags] [patterns] }``).  A fetch that fails makes its ACL false, so ``!acl`` is
then true, as in HAProxy.

A condition runs for every request its rule guards, so on first use it is compiled into nested
closures (:func:`compile_condition`): plain loops instead of generator expressions, one
function per case for the shapes most rules have (one ACL, one AND-ed suite), and for an ACL of
one single-valued line a direct matcher: ``var(x) -m found`` becomes one variable lookup and
``-m int``/``-m bool`` compare a value of the right type without the casts.  Anything else goes
through :meth:`Acl.evaluate`, the general path, which the compiled form must always agree with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExpressionError
from .acl import Acl, AclExpr, AclRegistry, parse_acl_expr
from .patterns import Pattern, match
from .sample import EvalContext, wire
from .sources import SampleSource

__all__ = ["Condition", "compile_condition", "parse_condition"]

Test = Callable[[EvalContext], bool]
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
#: fetches whose value is their arguments' (fetches/literal.py; not var(), rand(), date()...)
_CONSTANT_FETCHES = frozenset(("always_true", "always_false", "str", "int", "bool", "bin",
                               "ipv4", "ipv6"))
#: what a constant line is evaluated against: it reads nothing of it
_NO_STREAM = EvalContext(SampleSource())


@dataclass(frozen=True)
class Term:
    acl: Acl
    negate: bool


@dataclass(frozen=True)
class Condition:
    """A parsed ``if``/``unless`` condition.

    :attr unless: ``True`` for ``unless``.
    :attr suites: the OR of AND-ed terms.
    :attr text: the condition as written (without ``if``/``unless``).
    """

    unless: bool
    suites: tuple[tuple[Term, ...], ...]
    text: str
    _test: Test | None = field(default=None, init=False, repr=False, compare=False)

    def evaluate(self, ctx: EvalContext) -> bool:
        """Whether the guarded action or message applies."""
        test = self._test
        if test is None:
            test = compile_condition(self)
            object.__setattr__(self, "_test", test)  # a cache: frozen for its fields only
            # and later calls go straight to it: an instance attribute shadows this method
            # (one Python call less per condition, per message and rule, per request)
            object.__setattr__(self, "evaluate", test)
        return test(ctx)

    def evaluate_general(self, ctx: EvalContext) -> bool:
        """:meth:`evaluate` without the compiled form: the definition it must agree with."""
        result = any(all(t.acl.evaluate(ctx) != t.negate for t in suite)
                     for suite in self.suites)
        return result != self.unless

    def _exprs(self) -> Iterator[AclExpr]:
        for suite in self.suites:
            for term in suite:
                yield from term.acl.exprs

    @property
    def var_refs(self) -> tuple[str, ...]:
        """Full names of the variables the condition reads."""
        refs: dict[str, None] = {}
        for e in self._exprs():
            refs.update(dict.fromkeys(e.expr.var_refs))
        return tuple(refs)

    @property
    def implemented(self) -> bool:
        return all(e.expr.implemented for e in self._exprs())

    def unavailable_at(self, point: str, proxy: str = "listen") -> str | None:
        """``None`` when every fetch of the condition can run at ``point``, else the reason."""
        for e in self._exprs():
            reason = e.expr.unavailable_at(point, proxy)
            if reason is not None:
                return reason
        return None


def parse_condition(words: Sequence[str], acls: AclRegistry, *,
                    base_dir: str | None = None) -> Condition:
    """Parse ``if ...`` / ``unless ...`` words.

    :raises ExpressionError: "no such ACL : 'x'", "missing closing '}' in condition", ...
    """
    words = list(words)
    if not words or words[0] not in ("if", "unless"):
        found = words[0] if words else "nothing"
        raise ExpressionError(f"expects either 'if' or 'unless' followed by a condition but "
                              f"found '{found}'")
    unless = words[0] == "unless"
    body = words[1:]
    if not any(w.strip("!") for w in body):
        raise ExpressionError(f"missing condition after '{words[0]}'")
    suites: list[list[Term]] = [[]]
    negate = False
    i = 0
    while i < len(body):
        word = body[i]
        while word.startswith("!"):
            negate = not negate
            word = word[1:]
        if not word:
            i += 1
            continue
        if word.lower() == "or" or word == "||":
            suites.append([])
            negate = False
            i += 1
            continue
        if word == "{":
            try:
                end = body.index("}", i + 1)
            except ValueError:
                raise ExpressionError("missing closing '}' in condition") from None
            inner = body[i + 1:end]
            acl = Acl("{" + " ".join(inner) + "}", fixed=True)
            acl._exprs.append(parse_acl_expr(inner, base_dir=base_dir))
            i = end + 1
        else:
            found_acl = acls.get(word)
            if found_acl is None:
                raise ExpressionError(f"no such ACL : '{word}'")
            acl = found_acl
            i += 1
        suites[-1].append(Term(acl, negate))
        negate = False
    return Condition(unless, tuple(tuple(s) for s in suites if s), " ".join(body))


# --------------------------------------------------------------------------- compiled form

def compile_condition(cond: Condition) -> Test:
    """``cond.evaluate`` as a function of the context (see the module's docstring)."""
    unless = cond.unless
    suites = tuple(tuple(_compile_term(t) for t in suite) for suite in cond.suites)
    if len(suites) == 1 and len(suites[0]) == 1:
        only = suites[0][0]
        if not unless:
            return only
        return lambda ctx: not only(ctx)
    if len(suites) == 1:
        terms = suites[0]

        def all_of(ctx: EvalContext) -> bool:
            for term in terms:
                if not term(ctx):
                    return unless
            return not unless
        return all_of

    def any_of(ctx: EvalContext) -> bool:
        for suite in suites:
            for term in suite:
                if not term(ctx):
                    break
            else:
                return not unless
        return unless
    return any_of


def _compile_term(term: Term) -> Test:
    acl, negate = term.acl, term.negate
    lines = acl._exprs
    matcher = _compile_line(lines[0]) if len(lines) == 1 else None
    if matcher is None:
        if negate:
            return lambda ctx: not acl.evaluate(ctx)
        return acl.evaluate
    if not acl.fixed:
        # A named ACL may be given more lines after this condition is compiled ("acl" lines
        # with its name are ORed, wherever they are): then the general path.
        fast = matcher

        def matcher(ctx: EvalContext) -> bool:
            return fast(ctx) if len(lines) == 1 else acl.evaluate(ctx)
    if negate:
        positive = matcher
        return lambda ctx: not positive(ctx)
    return matcher


def _compile_line(line: AclExpr) -> Test | None:
    """A direct matcher for an ACL line whose fetch gives one value, else ``None``."""
    expr = line.expr
    definition = expr._def
    if not expr.implemented or definition is None or definition.many is not None:
        return None  # not implemented: the general path raises; several values: it iterates
    method, patterns = line.method, line.patterns
    if expr.fetch in _CONSTANT_FETCHES and not expr._convs:
        # FALSE, TRUE, { int(3) gt 1 }...: the same answer for every stream (the fetch reads
        # its arguments only), so the general path's answer, computed once
        always = line.evaluate(_NO_STREAM)
        return lambda ctx: always
    value: Callable[[EvalContext], Any] = expr.evaluate
    var: str | None = None
    if expr.fetch == "var" and not expr._convs and len(expr.args) == 1:
        var = expr.args[0]
        value = _var_lookup(var)
    if method == "found":
        # wire() never turns a value into None: found is "not None", with or without it
        return lambda ctx: value(ctx) is not None
    if method == "int" and patterns:
        ranges = tuple(p.value for p in patterns)

        def int_match(ctx: EvalContext) -> bool:
            if var is None:
                v = value(ctx)
            else:  # _var_lookup(), written out: "var(txn.x.score) -m int ge 100" is common
                store = ctx.vars
                try:
                    v = None if store is None else store.get(var)
                except Exception:
                    v = None
            if v is None:
                return False  # what match() answers for None
            if type(v) is not int or not _INT64_MIN <= v <= _INT64_MAX:
                return match("int", wire(v), patterns)  # casts, 64-bit wrap: the matcher's job
            for low, high in ranges:
                if (low is None or v >= low) and (high is None or v <= high):
                    return True
            return False
        return int_match
    if method in _TEXT_TESTS and patterns:
        return _text_matcher(method, value, patterns)
    if method == "bool":
        def bool_match(ctx: EvalContext) -> bool:
            v = value(ctx)
            if v is None:
                return False  # what match() answers for None
            return v if type(v) is bool else match("bool", wire(v), patterns)
        return bool_match
    return lambda ctx: match(method, wire(value(ctx)), patterns)


#: string methods as byte tests (patterns.py's, for a sample already text)
_TEXT_TESTS: dict[str, Callable[[bytes, bytes], bool]] = {
    "str": bytes.__eq__, "beg": bytes.startswith, "end": bytes.endswith,
    "sub": lambda data, pattern: pattern in data,
}


def _text_matcher(method: str, value: Callable[[EvalContext], Any],
                  patterns: tuple[Pattern, ...]) -> Test:
    """``-m str|beg|end|sub`` on a text sample: its bytes (lowered once for ``-i``) against
    each pattern; any other sample goes through the general matcher (casts)."""
    test = _TEXT_TESTS[method]
    pairs = tuple((p.value, p.icase) for p in patterns)
    icase = any(ic for _, ic in pairs)

    def text_match(ctx: EvalContext) -> bool:
        v = value(ctx)
        if type(v) is not str:
            return v is not None and match(method, wire(v), patterns)  # None never matches
        data = v.encode("utf-8", "surrogateescape")
        lowered = data.lower() if icase else data  # ASCII only, as patterns.py (C locale)
        for pattern, ic in pairs:
            if test(lowered if ic else data, pattern):
                return True
        return False
    return text_match


def _var_lookup(name: str) -> Callable[[EvalContext], Any]:
    """``var(name)`` without a default or converters: the variable itself (not yet wired)."""
    def lookup(ctx: EvalContext) -> Any:
        found = ctx.vars
        if found is None:
            return None
        try:
            return found.get(name)
        except Exception:  # as SampleExpr.evaluate: a failing fetch is no sample
            return None
    return lookup
