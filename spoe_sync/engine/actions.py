"""Apply an ACK's actions to a stream's variables, as HAProxy 2.6 does.

SPOE.txt §3.4 and docs/explanation/haproxy-behaviour.md §4 (``spoe_process_actions()``,
``spoe_set_var()``, ``vars_set_by_name_ifexist()``):

* the variable is ``"<scope>.<var-prefix>.<name>"``, built by ``snprintf`` into a
  64-byte buffer: a full name over 63 bytes is dropped, and ``%.*s`` stops the
  agent's name at its first NUL byte;
* after the scope the name must be ``[A-Za-z0-9_.]``, else it is dropped;
* set-var with a NULL value unsets;
* integers of the four wire types become signed 64-bit by reinterpreting the
  uint64 bit pattern (UINT64 max reads -1; a 32-bit pattern is not sign-extended);
* ``sess``/``txn``/``req``/``res`` names are created freely; a ``proc`` name
  only when it exists (registered by ``register-var-names`` or a config
  reference, or set earlier) or with ``option force-set-var``;
* actions apply in order; a refused one does not stop the next.

HAProxy drops silently; here every dropped name comes back with its reason
(for ``ProcessingResult.dropped_vars``) and goes to the library's debug log.
On top of HAProxy, each store's :class:`~spoe_sync.engine.vars.VarLimits` caps
what an agent can make it hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..protocol.constants import VarScope
from ..protocol.frames import Ack, Action, SetVar, UnsetVar
from ..protocol.values import Value
from . import log
from .varnames import REASON_BAD_VALUE, check_var_name
from .vars import Vars

__all__ = [
    "MAX_VAR_NAME_BYTES",
    "REASON_NAME_TOO_LONG",
    "REASON_PROC_NOT_REGISTERED",
    "ActionReport",
    "DroppedVar",
    "agent_value",
    "apply_ack",
    "apply_actions",
    "spoe_var_name",
]

#: ``char varname[64]`` in ``spoe_set_var()``: 63 bytes and the NUL.
MAX_VAR_NAME_BYTES = 63

REASON_NAME_TOO_LONG = "name-too-long"
REASON_PROC_NOT_REGISTERED = "proc-not-registered"

_UINT64_MASK = (1 << 64) - 1
_LABELS = tuple(scope.label for scope in sorted(VarScope))


@dataclass(frozen=True, slots=True)
class DroppedVar:
    """An action that changed nothing, and why.

    :attr name: the full name as built (``"txn.pfx.b-ad"``), cut at the NUL.
    :attr reason: ``name-too-long``, ``invalid-name``, ``proc-not-registered``,
        ``too-many-vars``, ``too-many-bytes`` or ``bad-value``.
    :attr action: ``"set-var"`` or ``"unset-var"``.
    """

    name: str
    reason: str
    action: str = "set-var"

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


_EMPTY: Mapping[str, Value] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ActionReport:
    """What applying one ACK did.

    :attr vars_set: full name -> value now stored, in the order applied;
        ``None`` for a name unset (unset-var, or set-var with NULL).
    :attr dropped: every action refused, in order.
    :attr truncated: the ACK's action list was malformed part-way; the actions
        before that point were applied, the rest were never seen.
    """

    vars_set: Mapping[str, Value] = field(default_factory=lambda: _EMPTY)
    dropped: tuple[DroppedVar, ...] = ()
    truncated: bool = False


def spoe_var_name(scope: VarScope | int, var_prefix: str, name: str) -> str:
    """``"<scope>.<var-prefix>.<name>"`` with the agent's name cut at its first
    NUL, as ``snprintf("%s.%s.%.*s")`` builds it."""
    cut = name.find("\x00")
    if cut >= 0:
        name = name[:cut]
    return f"{_LABELS[scope]}.{var_prefix}.{name}"


def agent_value(value: Value) -> Value:
    """An action's value as HAProxy stores it (``spoe_decode_data()``): every
    integer type becomes a signed 64-bit ``int``; the rest is kept."""
    if isinstance(value, int) and not isinstance(value, bool):
        pattern = int(value) & _UINT64_MASK
        return pattern - (1 << 64) if pattern >> 63 else pattern
    return value


def _name_reason(full_name: str) -> str | None:
    if len(full_name.encode("utf-8", "surrogateescape")) > MAX_VAR_NAME_BYTES:
        return REASON_NAME_TOO_LONG
    return check_var_name(full_name)


def apply_actions(actions: Iterable[Action], vars: Vars, *, var_prefix: str,
                  force_set_var: bool = False, truncated: bool = False,
                  agent: str | None = None) -> ActionReport:
    """Apply set-var/unset-var actions to ``vars`` in order.

    :param var_prefix: the agent's ``option var-prefix`` (default: its name).
    :param force_set_var: ``option force-set-var``: ``proc`` names need not exist.
    :param truncated: the action list was cut at a malformed action (``Ack.truncated``);
        passed through to the report and logged.
    :param agent: the agent name, for the debug log.
    """
    done: dict[str, Value] = {}
    dropped: list[DroppedVar] = []
    seen = 0
    for action in actions:
        seen += 1
        is_set = isinstance(action, SetVar)
        kind = "set-var" if is_set else "unset-var"
        if not isinstance(action, (SetVar, UnsetVar)):
            dropped.append(DroppedVar(repr(action), REASON_BAD_VALUE, "unknown"))
            continue
        full_name = spoe_var_name(action.scope, var_prefix, action.name)
        reason = _name_reason(full_name)
        if reason is None:
            value = agent_value(action.value) if is_set else None  # type: ignore[union-attr]
            if (value is not None and action.scope == VarScope.PROC and not force_set_var
                    and not vars.proc.exists(full_name)):
                reason = REASON_PROC_NOT_REGISTERED
            else:
                reason = vars._set_valid(full_name, value)
        if reason is None:
            done.pop(full_name, None)  # keep the dict in the order of the last change
            done[full_name] = vars.get(full_name)
        else:
            dropped.append(DroppedVar(full_name, reason, kind))
    report = ActionReport(MappingProxyType(done) if done else _EMPTY, tuple(dropped), truncated)
    if report.dropped or truncated:
        _log_report(report, agent, seen)
    return report


def apply_ack(ack: Ack, vars: Vars, *, var_prefix: str, force_set_var: bool = False,
              agent: str | None = None) -> ActionReport:
    """:func:`apply_actions` for a whole ACK (its ``truncated`` flag included)."""
    return apply_actions(ack.actions, vars, var_prefix=var_prefix, force_set_var=force_set_var,
                         truncated=ack.truncated, agent=agent)


def _log_report(report: ActionReport, agent: str | None, seen: int) -> None:
    where = f"SPOE: [{agent}] " if agent else "SPOE: "
    for drop in report.dropped:
        log.debug(f"{where}{drop.action} {drop.name!r} dropped: {drop.reason}")
    if report.truncated:
        log.debug(f"{where}ACK action list malformed after {seen} action(s); the rest was ignored")
