"""The ``tcp-request content`` and ``tcp-response content`` rules of the TCP proxy, and the
variables they read and write (docs/explanation/agents.md §6).

The rule lines are parsed by :func:`spoe_sync.config.rule_lines.parse_rules`; this module runs
them, in order, with the ACL engine: ``accept``, ``reject``, ``silent-drop``, ``send-spoe-group``,
``set-var``, ``set-var-fmt``, ``unset-var`` and Python hooks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from loguru import logger

from ..config.haproxy_cfg import build_acl_registry
from ..config.rule_lines import (
    Accept,
    Hook,
    Reject,
    Rule,
    SendSpoeGroup,
    SetVar,
    SilentDrop,
    UnsetVar,
    parse_rules,
)
from ..engine.vars import Vars
from ..errors import VariableError
from ..rules import AclRegistry, EvalContext
from ..rules.sources import TCPSamples

__all__ = ["RuleSet", "Verdict", "build_acls", "build_rules"]


class Verdict(enum.Enum):
    """What a rule set decided: go on (no rule ended it), ``accept``, ``reject`` (close the
    connection) or ``silent-drop`` (reset it, without a FIN)."""

    CONTINUE = "continue"
    ACCEPT = "accept"
    REJECT = "reject"
    SILENT_DROP = "silent-drop"


#: a hook rule's answer (a string or a Verdict) as a Verdict
_HOOK_VERDICTS = {v.value: v for v in Verdict}


class RuleSet:
    """``tcp-request content`` or ``tcp-response content`` rules, evaluated in order.

    :param rules: parsed rules (:func:`spoe_sync.config.rule_lines.parse_rules`).

    A hook rule (a Python callable) is called as ``hook(samples, vars)`` and may return
    ``"accept"``, ``"reject"``, ``"silent-drop"`` (or a :class:`Verdict`) to end the rule set;
    ``None`` goes on to the next rule.
    """

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = tuple(rules)

    def __len__(self) -> int:
        return len(self.rules)

    def evaluate(self, samples: TCPSamples, vars: Vars,
                 send_group: Callable[[str, str], None]) -> Verdict:
        """Run the rules until one ends the set; ``send-spoe-group`` blocks this greenlet
        until the group was processed."""
        ctx = EvalContext(samples, vars)
        for rule in self.rules:
            if not rule.applies(ctx):
                continue
            action = rule.action
            if isinstance(action, Accept):
                return Verdict.ACCEPT
            if isinstance(action, Reject):
                return Verdict.REJECT
            if isinstance(action, SilentDrop):
                return Verdict.SILENT_DROP
            if isinstance(action, SendSpoeGroup):
                send_group(action.engine, action.group)
            elif isinstance(action, SetVar):
                _set_var(action, ctx, vars)
            elif isinstance(action, UnsetVar):
                vars.unset(action.name)
            elif isinstance(action, Hook):
                answer = action.fn(samples, vars)
                verdict = answer if isinstance(answer, Verdict) else (
                    _HOOK_VERDICTS.get(answer) if isinstance(answer, str) else None)
                if verdict is not None and verdict is not Verdict.CONTINUE:
                    return verdict
        return Verdict.CONTINUE


def _set_var(action: SetVar, ctx: EvalContext, vars: Vars) -> None:
    try:
        action.apply(ctx, vars)
    except VariableError as exc:  # as in HAProxy, a variable that cannot be set is skipped
        logger.debug("proxy: set-var({}) skipped: {}", action.name, exc)


def build_rules(rules: Iterable[Any], point: str, acls: AclRegistry, *,
                engines: Mapping[str, Any]) -> RuleSet:
    """Parse ``rules`` of the rule set ``point`` (:class:`RuleSet` objects pass through).

    :raises ConfigError: a bad rule, with HAProxy's wording.
    """
    if isinstance(rules, RuleSet):
        return rules
    groups = {engine_id: tuple(engine.groups) for engine_id, engine in engines.items()}
    return RuleSet(parse_rules(list(rules), point, acls=acls, engines=groups))


def build_acls(lines: Iterable[str]) -> AclRegistry:
    """An ACL registry from ``acl`` lines (``"[acl] <name> <criterion> [flags] [patterns]"``).

    :raises ConfigError: a bad line.
    """
    return build_acl_registry(lines)
