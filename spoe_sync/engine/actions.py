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

HAProxy drops silently; here what was dropped comes back with its reason (for
``ProcessingResult.dropped_vars``) and goes to the library's debug log, once
per ACK: one :class:`DroppedVar` per reason and action kind, with the first
name dropped for it and how many were, and one log line.  On top of HAProxy,
each store's :class:`~spoe_sync.engine.vars.VarLimits` caps what an agent can
make it hold, and the connection decodes at most ``max_ack_actions`` actions
of one ACK: the work an ACK costs is bounded by its useful work (issue 11: one
agent flooding ACKs must not freeze the worker).  Once a store is full, a
refused name costs a cached name lookup and a dict lookup.

Agents answer with the same few action lists, which the connection hands
over as the same decoded tuple: from its second ACK such a list is applied
from a *plan* (:func:`apply_ack`), its names checked, values converted and
report built once; only the stores' caps are checked each time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any

from ..errors import VariableError
from ..protocol.constants import VarScope
from ..protocol.frames import Ack, Action, SetVar, UnsetVar
from ..protocol.values import Value
from . import log
from .varnames import (
    REASON_BAD_VALUE,
    REASON_INVALID_NAME,
    VAR_NAME_RE,
    check_var_name,
    normalize_value,
    var_size,
)
from .vars import Vars, _Store

__all__ = [
    "MAX_VAR_NAME_BYTES",
    "REASON_NAME_TOO_LONG",
    "REASON_PROC_NOT_REGISTERED",
    "REASON_TOO_MANY_ACTIONS",
    "ActionReport",
    "DroppedVar",
    "Journal",
    "agent_value",
    "apply_ack",
    "apply_actions",
    "spoe_var_name",
    "undo",
]

#: ``char varname[64]`` in ``spoe_set_var()``: 63 bytes and the NUL.
MAX_VAR_NAME_BYTES = 63

REASON_NAME_TOO_LONG = "name-too-long"
REASON_PROC_NOT_REGISTERED = "proc-not-registered"
#: The ACK carried more actions than the connection decodes (``Ack.undecoded``).
REASON_TOO_MANY_ACTIONS = "too-many-actions"

_UINT64_MASK = (1 << 64) - 1
_LABELS = tuple(scope.label for scope in sorted(VarScope))
_PROC = VarScope.PROC
_TXN = int(VarScope.TXN)
_REQ = int(VarScope.REQ)


@dataclass(frozen=True, slots=True)
class DroppedVar:
    """Actions that changed nothing, and why: one per reason and action kind
    of an ACK.

    :attr name: the full name as built (``"txn.pfx.b-ad"``), cut at the NUL:
        the first one dropped for this reason; ``"*"`` for the actions past the
        connection's decode bound, never looked at.
    :attr reason: ``name-too-long``, ``invalid-name``, ``proc-not-registered``,
        ``too-many-vars``, ``too-many-bytes``, ``bad-value`` or
        ``too-many-actions``.
    :attr action: ``"set-var"``, ``"unset-var"`` or ``"unknown"``.
    :attr count: how many actions were dropped for this reason; 0 for
        ``too-many-actions`` (they were never decoded, so never counted).
    """

    name: str
    reason: str
    action: str = "set-var"
    count: int = 1

    def __str__(self) -> str:
        more = f" x{self.count}" if self.count != 1 else ""
        return f"{self.name} ({self.reason}){more}"


_EMPTY: Mapping[str, Value] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ActionReport:
    """What applying one ACK did.

    :attr vars_set: full name -> value now stored, in the order applied;
        ``None`` for a name unset (unset-var, or set-var with NULL).
    :attr dropped: the actions refused, one :class:`DroppedVar` per reason
        and action kind, in the order each was first met.
    :attr truncated: the ACK's action list was malformed part-way; the actions
        before that point were applied, the rest were never seen.
    """

    vars_set: Mapping[str, Value] = field(default_factory=lambda: _EMPTY)
    dropped: tuple[DroppedVar, ...] = ()
    truncated: bool = False

    @property
    def nb_dropped(self) -> int:
        """Actions dropped (those past the decode bound, never counted, aside)."""
        return sum(d.count for d in self.dropped)


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


# --------------------------------------------------------------------------- checked names

# The names an agent sends are few and come back on every request: each is
# built and checked once ("<scope>.<prefix>.<name>", the 63-byte cap, HAProxy's
# characters) and kept here, by var-prefix, then by scope (a list indexed by
# the scope byte: hashing a VarScope would call Enum code), then by the
# agent's name.  Bounded: a flood of distinct names empties a prefix's table
# rather than growing it.
_NameEntry = tuple[str, str, "str | None"]  # full name, name after the scope, reason
_NAMES: dict[str, tuple[dict[str, _NameEntry], ...]] = {}
_NAMES_PER_SCOPE = 4096


def _names_of(var_prefix: str) -> tuple[dict[str, _NameEntry], ...]:
    tables = _NAMES.get(var_prefix)
    if tables is None:
        if len(_NAMES) >= 64:  # prefixes come from configurations: a handful
            _NAMES.clear()
        tables = _NAMES[var_prefix] = tuple({} for _ in _LABELS)
    return tables


def _check_name(table: dict[str, _NameEntry], scope: int, var_prefix: str, name: str) -> _NameEntry:
    """:func:`_name_reason` for a name whose scope is known good (the label
    comes from the scope byte): only the length and the characters are left."""
    full_name = spoe_var_name(scope, var_prefix, name)
    local = full_name.partition(".")[2]
    size = len(full_name) if full_name.isascii() else len(full_name.encode("utf-8", "surrogateescape"))
    reason = (REASON_NAME_TOO_LONG if size > MAX_VAR_NAME_BYTES
              else None if VAR_NAME_RE.match(local) else REASON_INVALID_NAME)
    entry = (full_name, local, reason)
    if len(table) >= _NAMES_PER_SCOPE:
        table.clear()
    table[name] = entry
    return entry


# --------------------------------------------------------------------------- values

# Exact wire types stored as they are; integers are reinterpreted (agent_value).
_AS_IS = frozenset({str, bytes, bool, IPv4Address, IPv6Address})


def _stored(value: Any) -> Value:
    """:func:`agent_value` then :func:`~.varnames.normalize_value`, with the
    wire's own types first.

    :raises VariableError: a value no variable can hold (``bad-value``).
    """
    kind = type(value)
    if kind in _AS_IS:
        return value  # type: ignore[no-any-return]
    if isinstance(value, int) and kind is not bool:  # the four wire integer types
        pattern = value & _UINT64_MASK
        return pattern - (1 << 64) if pattern >> 63 else pattern
    return normalize_value(agent_value(value))


# --------------------------------------------------------------------------- applying

#: An undo log of what :func:`apply_actions` changed: ``(store, scope, name,
#: old value or None)`` in order (or one :data:`_FILLED` entry).  :func:`undo`
#: takes the changes back.
Journal = list[tuple[_Store, str, Any, Value]]
#: The scope of the one journal entry of a new stream's first variables
#: (``Vars._fill_new``), whose name is the (scope, name) of each: one entry
#: instead of one per variable.
_FILLED = "<filled>"


def undo(journal: Journal) -> None:
    """Take back the changes recorded in ``journal``, newest first (an ACK
    that finished applying past its deadline: nothing of it may stay)."""
    for store, scope, name, old in reversed(journal):
        if scope is _FILLED:  # Vars._fill_new: ``name`` holds the (scope, name) of each
            for label, local in name:
                store._pop(label, local)
        elif old is None:
            store._pop(scope, name)
        else:
            store._put(scope, name, old, enforce=False)
    journal.clear()


def apply_actions(actions: Iterable[Action], vars: Vars, *, var_prefix: str,
                  force_set_var: bool = False, truncated: bool = False,
                  agent: str | None = None, undecoded: int = 0,
                  journal: Journal | None = None) -> ActionReport:
    """Apply set-var/unset-var actions to ``vars`` in order.

    :param var_prefix: the agent's ``option var-prefix`` (default: its name).
    :param force_set_var: ``option force-set-var``: ``proc`` names need not exist.
    :param truncated: the action list was cut at a malformed action (``Ack.truncated``);
        passed through to the report and logged.
    :param agent: the agent name, for the debug log.
    :param undecoded: bytes of actions the connection did not decode
        (``Ack.undecoded``): reported as one ``too-many-actions`` drop.
    :param journal: when given, every change is recorded there for :func:`undo`.
    """
    tables = _names_of(var_prefix)
    owners: tuple[_Store, ...] = (vars.proc, vars.session, vars, vars, vars)  # by scope byte
    proc_exists = vars.proc.exists
    done: dict[str, Value] = {}
    drops: dict[tuple[str, str], list[Any]] = {}  # (reason, kind) -> [first name, count]
    seen = 0
    for action in actions:
        seen += 1
        kind = type(action)
        if kind is SetVar or kind is UnsetVar or isinstance(action, (SetVar, UnsetVar)):
            scope = action.scope
            name = action.name
        else:
            _drop(drops, repr(action), REASON_BAD_VALUE, "unknown")
            continue
        try:
            table = tables[scope]
        except (IndexError, TypeError):  # not a scope byte: only a hand-made action
            _drop(drops, repr(action), REASON_BAD_VALUE, "unknown")
            continue
        entry = table.get(name)
        if entry is None:
            entry = _check_name(table, scope, var_prefix, name)
        full_name, local, reason = entry
        is_set = kind is SetVar or isinstance(action, SetVar)
        if reason is None:
            store = owners[scope]
            label = _LABELS[scope]
            if is_set:
                try:
                    value = _stored(action.value)  # type: ignore[union-attr]
                except VariableError as exc:
                    value, reason = None, exc.reason or REASON_BAD_VALUE
            else:
                value = None
            if reason is not None:
                pass
            elif value is None:
                if journal is not None:
                    journal.append((store, label, local, store._data[label].get(local)))
                store._pop(label, local)
            elif scope == _PROC and not force_set_var and not proc_exists(full_name):
                reason = REASON_PROC_NOT_REGISTERED
            else:
                reason = store._put(label, local, value, True, None, journal)
        if reason is None:
            done.pop(full_name, None)  # keep the dict in the order of the last change
            done[full_name] = value
        else:
            _drop(drops, full_name, reason, "set-var" if is_set else "unset-var")
    dropped = tuple(DroppedVar(name, reason, kind_, count)
                    for (reason, kind_), (name, count) in drops.items())
    if undecoded:
        dropped += (DroppedVar("*", REASON_TOO_MANY_ACTIONS, "unknown", 0),)
    report = ActionReport(MappingProxyType(done) if done else _EMPTY, dropped, truncated)
    if dropped or truncated:
        _log_report(report, agent, seen, undecoded)
    return report


def _drop(drops: dict[tuple[str, str], list[Any]], name: str, reason: str, kind: str) -> None:
    counted = drops.get((reason, kind))
    if counted is None:
        drops[(reason, kind)] = [name, 1]
    else:
        counted[1] += 1


def apply_ack(ack: Ack, vars: Vars, var_prefix: str, force_set_var: bool = False,
              agent: str | None = None, journal: Journal | None = None) -> ActionReport:
    """:func:`apply_actions` for a whole ACK (its ``truncated`` and
    ``undecoded`` included).

    An action list seen before (the connection hands the same decoded tuple
    to every ACK that repeats its bytes) is applied from its *plan*: the
    names already checked, the values already converted, the report already
    built; only the stores' caps are left to check (see :func:`_plan_of`)."""
    actions = ack.actions
    entry = _PLANS.get(id(actions))
    if entry is not None and entry[0] is actions and entry[1] == var_prefix \
            and type(entry[2]) is tuple:  # _plan_of(), its usual answer inlined
        plan: _Plan | None = entry[2]
    elif not ack.truncated and not ack.undecoded and len(actions) <= _PLAN_MAX_ACTIONS:
        plan = _plan_of(actions, var_prefix)
    else:
        plan = None
    if plan is None:
        return apply_actions(actions, vars, var_prefix=var_prefix, force_set_var=force_set_var,
                             truncated=ack.truncated, agent=agent, undecoded=ack.undecoded,
                             journal=journal)
    steps, report, fresh = plan
    if fresh is not None:
        # What the loop below does, in one step, in two common cases
        # (tests/engine/test_actions.py compares them): a new stream's first
        # ACK, and the same values again on a long-lived stream.
        bags = fresh[2]
        if vars._fill_new(fresh[0], fresh[1], bags):
            if journal is not None:
                journal.append((vars, _FILLED, fresh[3], None))
            return report
        if vars._holds(bags):
            # No journal entry: each would put back the value that stays (undo
            # of it changes nothing).
            return report
    # The plan's steps, applied in order (here rather than in a function of
    # their own: this runs for every ACK that carries actions).
    refused: list[tuple[int, str]] | None = None
    index = -1
    for scope, label, local, _, value, size in steps:
        index += 1
        store: _Store = vars if scope > 1 else vars.session  # never proc (see _build_plan)
        if value is None:
            if journal is not None:
                journal.append((store, label, local, store._data[label].get(local)))
            store._pop(label, local)
            continue
        reason = store._put(label, local, value, True, size, journal)
        if reason is not None:
            if refused is None:
                refused = []
            refused.append((index, reason))
    if refused is None:
        return report
    return _refused_report(steps, refused, agent)


# --------------------------------------------------------------------------- plans

#: One step of a plan: (scope byte, scope label, name after the scope, full
#: name, stored value or None to unset, its ``var_size``).
_Step = tuple[int, str, str, str, Value, int]
#: What the steps store, when they are only set-vars of distinct ``txn``/``req``
#: names (``Vars._fill_new``, ``Vars._holds``): the count, the bytes,
#: ``(scope, ((name, value), ...))`` per scope, and the ``(scope, name)`` of
#: each step in order (the journal's).
_Fresh = tuple[int, int, tuple[tuple[str, tuple[tuple[str, Value], ...]], ...],
               tuple[tuple[str, str], ...]]
#: The steps of an action list, the report of applying all of them, and its
#: :data:`_Fresh` or None.
_Plan = tuple[tuple[_Step, ...], ActionReport, _Fresh | None]
#: Plans by ``id()`` of the action tuple, each entry holding the tuple itself (so
#: that its id cannot be reused while the entry lives), the var-prefix, and the
#: plan: None while the tuple was seen only once (a list that does not repeat
#: costs one dict entry, not a plan), or ``_NO_PLAN`` when it has none.
_PLANS: dict[int, tuple[tuple[Action, ...], str, Any]] = {}
_PLANS_MAX = 256
_PLAN_MAX_ACTIONS = 16
_NO_PLAN = object()


def _plan_of(actions: tuple[Action, ...], var_prefix: str) -> _Plan | None:
    """The plan of ``actions`` from the second time the same tuple is seen;
    None the first time, or when it has none: an action that is not a plain
    set-var or unset-var, a ``proc`` name (whether it may be set changes at
    run time), a name refused, or a value no variable can hold.  Those take
    :func:`apply_actions`, which reports them."""
    key = id(actions)
    entry = _PLANS.get(key)
    if entry is not None and entry[0] is actions and entry[1] == var_prefix:
        plan = entry[2]
        if plan is not None:
            return None if plan is _NO_PLAN else plan
        plan = _build_plan(actions, var_prefix)
        _PLANS[key] = (actions, var_prefix, _NO_PLAN if plan is None else plan)
        return plan
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()  # tuples that do not repeat: start afresh
    _PLANS[key] = (actions, var_prefix, None)
    return None


def _build_plan(actions: tuple[Action, ...], var_prefix: str) -> _Plan | None:
    tables = _names_of(var_prefix)
    steps: list[_Step] = []
    done: dict[str, Value] = {}
    for action in actions:
        kind = type(action)
        if kind is not SetVar and kind is not UnsetVar:
            return None
        scope = action.scope
        if type(scope) is not VarScope or scope == _PROC:
            return None
        table = tables[scope]
        entry = table.get(action.name)
        if entry is None:
            entry = _check_name(table, scope, var_prefix, action.name)
        full_name, local, reason = entry
        if reason is not None:
            return None
        try:
            value = _stored(action.value) if kind is SetVar else None  # type: ignore[union-attr]
        except VariableError:
            return None
        size = 0 if value is None else var_size(local, value)
        steps.append((int(scope), _LABELS[scope], local, full_name, value, size))
        done.pop(full_name, None)  # the order of the last change, as apply_actions
        done[full_name] = value
    report = ActionReport(MappingProxyType(done) if done else _EMPTY, (), False)
    return tuple(steps), report, _fresh_of(steps)


def _fresh_of(steps: list[_Step]) -> _Fresh | None:
    """The steps' :data:`_Fresh`, or None: an unset, a name set twice, or a
    scope a new stream does not hold open (``sess``: its session; ``res``:
    closed in the request phase)."""
    bags: dict[str, list[tuple[str, Value]]] = {}
    names: set[str] = set()
    nbytes = 0
    for scope, label, local, full_name, value, size in steps:
        if value is None or full_name in names or scope not in (_TXN, _REQ):
            return None
        names.add(full_name)
        bags.setdefault(label, []).append((local, value))
        nbytes += size
    return (len(steps), nbytes, tuple((label, tuple(items)) for label, items in bags.items()),
            tuple((label, local) for _, label, local, _, _, _ in steps))


def _refused_report(steps: tuple[_Step, ...], refused: list[tuple[int, str]],
                    agent: str | None) -> ActionReport:
    """The report :func:`apply_actions` would have made of a plan's steps
    when a store's cap refused some (``refused``: (step index, reason))."""
    reasons = dict(refused)
    done: dict[str, Value] = {}
    drops: dict[tuple[str, str], list[Any]] = {}
    for index, (_, _, _, full_name, value, _) in enumerate(steps):
        reason = reasons.get(index)
        if reason is None:
            done.pop(full_name, None)
            done[full_name] = value
        else:
            _drop(drops, full_name, reason, "set-var")
    dropped = tuple(DroppedVar(name, reason, kind_, count)
                    for (reason, kind_), (name, count) in drops.items())
    report = ActionReport(MappingProxyType(done) if done else _EMPTY, dropped, False)
    _log_report(report, agent, len(steps), 0)
    return report


def _log_report(report: ActionReport, agent: str | None, seen: int, undecoded: int) -> None:
    """One debug line per ACK, however many actions it drops."""
    where = f"SPOE: [{agent}] " if agent else "SPOE: "
    parts = []
    counted = [d for d in report.dropped if d.count]
    if counted:
        parts.append(f"{sum(d.count for d in counted)} action(s) dropped: "
                     + ", ".join(f"{d.action} {d.name!r} ({d.reason})"
                                 + (f" x{d.count}" if d.count > 1 else "") for d in counted))
    if undecoded:
        parts.append(f"{undecoded} bytes of actions past the first {seen} not decoded")
    if report.truncated:
        parts.append(f"action list malformed after {seen} action(s); the rest was ignored")
    log.debug(f"{where}ACK: " + "; ".join(parts))
