"""Conditions: ``if|unless [!]acl1 [!]acl2 ... [or|'||' ...]`` (configuration.txt §7.2).

A condition is a disjunction of conjunctions of (possibly negated) ACLs, named or anonymous
(``{ <criterion> [flags] [patterns] }``).  A fetch that fails makes its ACL false, so ``!acl`` is
then true, as in HAProxy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..errors import ExpressionError
from .acl import Acl, AclExpr, AclRegistry, parse_acl_expr
from .sample import EvalContext

__all__ = ["Condition", "parse_condition"]


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

    def evaluate(self, ctx: EvalContext) -> bool:
        """Whether the guarded action or message applies."""
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
            acl = Acl("{" + " ".join(inner) + "}")
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
