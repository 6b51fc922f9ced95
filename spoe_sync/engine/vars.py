"""HAProxy variables: the ``proc``, ``sess``, ``txn``, ``req`` and ``res`` scopes.

Names are full HAProxy names, ``"<scope>.<name>"`` (``"txn.iprep.score"``), the
same text a haproxy.cfg writes in ``var(...)``.  Three stores hold them, by
lifetime (SPOE.txt §2.2 "option var-prefix", docs/explanation/agents.md §5):

* :class:`ProcVars`: ``proc.*``, one per engine (HAProxy: the process);
* :class:`Session`: ``sess.*``, one per client connection;
* :class:`Vars`: one per stream; holds ``txn.*``, ``req.*`` and ``res.*`` itself
  and reads ``sess.*`` through its session and ``proc.*`` through the engine's
  :class:`ProcVars`.  It is the rules layer's ``VarLookup``.

Values are plain Python: ``bool``, ``int`` (signed 64-bit, as HAProxy's
``SMP_T_SINT``), ``str``, ``bytes``, ``IPv4Address``, ``IPv6Address``.  Storing
``None`` removes the variable: HAProxy has no NULL variable, and an agent's
set-var with a NULL value unsets (docs/explanation/haproxy-behaviour.md §4).

Reads are lenient, writes strict, as in HAProxy: ``get()`` of a name that
is not a variable name (``"nonsense"``, ``"txn."``, an unknown scope) returns the
default, as ``var()`` of an unknown name is simply absent, while ``set()`` and
``unset()`` of such a name raise :class:`~spoe_sync.errors.VariableError` (a
``set-var``/``unset-var`` with a bad name is a configuration error in HAProxy).
A name that is not a ``str`` is a programming error: :class:`TypeError`, from
reads and writes alike.

Every store has a cap on its variable count and on its size in bytes, so a
rogue agent (or ``option force-set-var``, which SPOE.txt warns "opens to a
variety of attacks") cannot exhaust memory.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ..errors import VariableError
from ..protocol.values import Value
from .varnames import (
    _DEFAULT_LIMITS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_VARS,
    REASON_BAD_SCOPE,
    REASON_TOO_BIG,
    REASON_TOO_MANY,
    SCOPES,
    VarLimits,
    _not_a_name,
    check_var_name,
    normalize_value,
    split_var_name,
    var_size,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_VARS",
    "REASON_SCOPE_CLOSED",
    "SCOPES",
    "ProcVars",
    "Session",
    "VarLimits",
    "Vars",
    "check_var_name",
    "normalize_value",
    "split_var_name",
    "var_size",
]

#: The bag of a scope that holds no variable yet, shared by every store: a
#: read-only view, which a store replaces with a dict of its own on its first
#: variable (``_put``) or live view (``_view``).  A store is made for every
#: request: one dict instead of one per scope.
_UNUSED: dict[str, Value] = MappingProxyType({})  # type: ignore[assignment]
#: The bag of a scope that is not active (``res`` in the request phase, ``req`` in the
#: response phase): always empty, and ``_put`` refuses it with one identity test.
_CLOSED: dict[str, Value] = MappingProxyType({})  # type: ignore[assignment]
#: The scope table of a new stream's :class:`Vars` (HAProxy 2.6 keeps req.* and res.*
#: in one store of one scope at a time: req until the response phase starts, then
#: emptied and res; src/vars.c get_vars(), stream.c).  Shared, read-only, by every
#: Vars until it changes a scope's bag (``_Store._own``): most waiting streams hold
#: no variable yet, so one dict less each.
_NEW_STREAM_TABLE: dict[str, dict[str, Value]] = {"txn": _UNUSED, "req": _UNUSED, "res": _CLOSED}
_NEW_STREAM: dict[str, dict[str, Value]] = MappingProxyType(  # type: ignore[assignment]
    _NEW_STREAM_TABLE)
#: why a req.* variable cannot be set in the response phase, nor res.* in the request phase
REASON_SCOPE_CLOSED = "scope-not-active"


class _Store:
    """The variables of some scopes, keyed by scope then by the name after it,
    with the byte and count accounting of :class:`VarLimits`."""

    __slots__ = ("_bytes", "_count", "_data", "limits")

    def __init__(self, scopes: tuple[str, ...], limits: VarLimits | None) -> None:
        self.limits = limits or _DEFAULT_LIMITS
        self._data: dict[str, dict[str, Value]] = {scope: _UNUSED for scope in scopes}
        self._bytes = 0
        self._count = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now (see :func:`var_size`)."""
        return self._bytes

    def __len__(self) -> int:
        return self._count

    def _put(self, scope: str, name: str, value: Value, enforce: bool = True,
             size: int | None = None, journal: list[Any] | None = None) -> str | None:
        """Store an already normalized, non-None value; the refusal reason or None.

        The one place a variable is stored (the ACK hot path included): the
        count cap is checked first and costs one dict lookup, so that an agent
        flooding a full store pays almost nothing per refused name.  ``size``
        is ``var_size(name, value)`` when the caller already knows it (an
        ACK's plan).  A stored change is recorded in ``journal`` as
        ``(store, scope, name, old value or None)`` (``actions.undo`` takes it back)."""
        bag = self._data[scope]
        if bag is _CLOSED:
            return REASON_SCOPE_CLOSED
        old = bag.get(name)  # stored values are never None
        limits = self.limits
        if size is None:
            size = var_size(name, value)
        if old is None:
            if enforce and self._count >= limits.max_vars:
                return REASON_TOO_MANY
            added = size
        elif old is value:
            # The same object again (an ACK's plan hands out the same values
            # each time its action list repeats): var_size(name, old) == size.
            added = 0
        else:
            added = size - var_size(name, old)
        if enforce and self._bytes + added > limits.max_bytes:
            return REASON_TOO_BIG
        if old is None:
            self._count += 1
            if bag is _UNUSED:
                bag = self._own()[scope] = {}
        bag[name] = value
        self._bytes += added
        if journal is not None:
            journal.append((self, scope, name, old))
        return None

    def _pop(self, scope: str, name: str) -> bool:
        bag = self._data[scope]
        if name not in bag:
            return False
        self._bytes -= var_size(name, bag.pop(name))
        self._count -= 1
        return True

    def _clear(self, scope: str) -> None:
        for name in list(self._data[scope]):
            self._pop(scope, name)

    def _view(self, scope: str) -> Mapping[str, Value]:
        bag = self._data[scope]
        if bag is _UNUSED:  # a live view: of the dict the first variable will go in
            bag = self._own()[scope] = {}
        return MappingProxyType(bag)

    def _own(self) -> dict[str, dict[str, Value]]:
        """The store's own scope table, to change a scope's bag (a new
        :class:`Vars` shares :data:`_NEW_STREAM` until then)."""
        data = self._data
        if data is _NEW_STREAM:
            data = self._data = _NEW_STREAM_TABLE.copy()  # a dict's copy: no Mapping walk
        return data



def _own_name(full_name: str, scope: str) -> str:
    got, name = split_var_name(full_name)
    if got != scope:
        raise VariableError(f"variable {full_name!r} is not in scope {scope!r}", full_name,
                            REASON_BAD_SCOPE)
    return name


class _ScopeStore(_Store):
    """A store of one scope, addressed by full names of that scope."""

    __slots__ = ()
    SCOPE = ""

    def __init__(self, limits: VarLimits | None) -> None:
        super().__init__((self.SCOPE,), limits)

    def get(self, full_name: str, default: Value = None) -> Value:
        """The value of ``full_name``, or ``default`` when it is not set, not of
        this scope, or not a variable name.

        :raises TypeError: ``full_name`` is not a str.
        """
        try:
            scope, _, name = full_name.partition(".")
        except (AttributeError, TypeError):  # None, int, bytes...: not a str
            raise _not_a_name(full_name) from None
        value = self._data[self.SCOPE].get(name) if scope == self.SCOPE else None
        return default if value is None else value

    def set(self, full_name: str, value: object) -> None:
        """Set (or, with ``None``, unset) a variable of this scope.

        :raises VariableError: bad name or value, or a cap would be exceeded.
        """
        _set(self, self.SCOPE, _own_name(full_name, self.SCOPE), value, full_name)

    def unset(self, full_name: str) -> bool:
        """Remove the variable; True if it was set."""
        return self._pop(self.SCOPE, _own_name(full_name, self.SCOPE))

    def scope(self) -> Mapping[str, Value]:
        """Read-only live view ``{"pfx.name": value}``."""
        return self._view(self.SCOPE)


class ProcVars(_ScopeStore):
    """The ``proc.*`` variables of one engine, shared by all its streams.

    A name is *registered* by ``register-var-names`` or by a reference in the
    configuration (``var(proc.pfx.x)``): HAProxy 2.6 creates such a variable
    empty and permanent, so an agent may set it, and unsetting it only empties
    it.  An agent may not create any other ``proc`` name without
    ``option force-set-var`` (docs/explanation/haproxy-behaviour.md §4).
    """

    __slots__ = ("_registered",)
    SCOPE = "proc"

    def __init__(self, registered: tuple[str, ...] | list[str] = (), *,
                 limits: VarLimits | None = None) -> None:
        super().__init__(limits)
        self._registered: set[str] = set()
        for full_name in registered:
            self.register(full_name)

    def register(self, full_name: str) -> None:
        """Register ``proc.<name>`` so that agents may set it.

        :raises VariableError: the name is invalid or not in the proc scope.
        """
        self._registered.add(_own_name(full_name, "proc"))

    @property
    def registered(self) -> frozenset[str]:
        """The registered full names."""
        return frozenset("proc." + name for name in self._registered)

    def exists(self, full_name: str) -> bool:
        """True when an agent may set ``full_name`` without force-set-var:
        registered, or currently set."""
        scope, _, name = full_name.partition(".")
        return scope == "proc" and (name in self._registered or name in self._data["proc"])


class Session(_ScopeStore):
    """The ``sess.*`` variables of one client connection (HTTP keep-alive
    requests, or a proxied TCP connection, share them)."""

    __slots__ = ()
    SCOPE = "sess"

    def __init__(self, *, limits: VarLimits | None = None) -> None:
        # _Store.__init__ written out: a session is made for every stream
        # that has none of its own (one per request on the hot path).
        self.limits = limits or _DEFAULT_LIMITS
        self._data = {"sess": _UNUSED}
        self._bytes = 0
        self._count = 0


def _set(store: _Store, scope: str, name: str, value: object, full_name: str) -> None:
    value = normalize_value(value)
    if value is None:
        store._pop(scope, name)
        return
    reason = store._put(scope, name, value)
    if reason == REASON_SCOPE_CLOSED:
        raise VariableError(f"cannot set {full_name!r}: {reason} (req.* is only writable "
                            "before the response, res.* after)", full_name, reason)
    if reason is not None:
        raise VariableError(
            f"cannot set {full_name!r}: {reason} (limits: {store.limits.max_vars} variables, "
            f"{store.limits.max_bytes} bytes)", full_name, reason)


class Vars(_Store, Mapping[str, Value]):
    """The variables one stream sees, by full name, in all five scopes.

    ``txn``/``req``/``res`` live here (capped by ``limits``); ``sess`` lives on
    ``session`` (a private one when none is given: sess variables then last as
    long as the stream) and ``proc`` on ``proc`` (a private one when none is
    given)::

        vars.get("txn.iprep.score")          # 87, or None when unset
        vars["txn.iprep.score"]              # KeyError when unset
        vars.set("txn.app.user", "bob")
        vars.scope("sess")                   # read-only {"iprep.score": 87}
        dict(vars)                           # {"sess.iprep.score": 87, ...}

    It is a read-only :class:`~collections.abc.Mapping` of full name to value
    (a live view: ``keys()``, ``items()``, ``len()``, ``in`` see every scope);
    changes go through :meth:`set`, :meth:`unset` and :meth:`clear`, which
    check names and caps.  Equality and hashing stay those of the object: a
    stream's variables are a place with a lifetime, not a value (compare
    ``dict(a) == dict(b)`` for the contents).
    """

    __slots__ = ("_session", "proc")
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(self, session: Session | None = None, proc: ProcVars | None = None, *,
                 limits: VarLimits | None = None) -> None:
        # _Store.__init__ written out: one Vars per stream, on the hot path.
        self.limits = limits or _DEFAULT_LIMITS
        # A write to the scope not active (res.* before the response phase) fails
        # in HAProxy; it is refused here, so reads find nothing (see _NEW_STREAM).
        self._data = _NEW_STREAM
        self._bytes = 0
        self._count = 0
        self._session = session  # None: a private one, made when first needed
        self.proc = proc if proc is not None else ProcVars(limits=limits)

    def _fill_new(self, count: int, nbytes: int,
                  bags: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...]) -> bool:
        """What ``_put`` of each variable in turn does (``enforce`` on), in one
        step, on a stream that holds no variable yet: ``bags`` are ``(scope,
        ((name, value), ...))`` of ``txn``/``req``, ``count`` distinct names
        and ``nbytes`` their :func:`var_size` in all (an ACK's plan,
        ``actions.apply_ack``: every new stream's first ACK).  On such a
        stream each ``_put`` adds one name and its bytes, so none is refused
        exactly when the totals fit the caps.  False, nothing stored, when the
        stream has held a variable or a cap would refuse one: then ``_put``
        each, which reports it."""
        if self._data is not _NEW_STREAM:
            return False
        limits = self.limits
        if count > limits.max_vars or nbytes > limits.max_bytes:
            return False
        data = self._own()
        for scope, items in bags:
            data[scope] = dict(items)
        self._count = count
        self._bytes = nbytes
        return True

    def _holds(self, bags: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...]) -> bool:
        """True when every ``(name, value)`` of ``bags`` (as :meth:`_fill_new`'s)
        is stored already, the very object, and the store is within its byte
        cap: ``_put`` of each again (``enforce`` on) would change nothing and
        refuse none (each adds 0 bytes and no name), so it can be skipped (a
        long-lived stream answered the same again, ``actions.apply_ack``)."""
        if self._bytes > self.limits.max_bytes:
            return False
        data = self._data
        for scope, items in bags:
            bag = data[scope]
            for name, value in items:
                if bag.get(name) is not value:
                    return False
        return True

    def start_response(self) -> None:
        """The response phase starts: ``req.*`` is dropped and only ``res.*`` can be set from
        now on (HAProxy 2.6 does it when the stream connects to its server)."""
        if self._data["req"] is not _CLOSED:
            self._clear("req")
            data = self._own()
            data["req"] = _CLOSED
            data["res"] = _UNUSED

    @property
    def session(self) -> Session:
        """The client session holding the ``sess`` scope."""
        session = self._session
        if session is None:
            # Most streams made without a session never touch sess.*: the
            # private one is made on first use, not with every stream.
            session = self._session = Session(limits=self.limits)
        return session

    def _owner(self, scope: str) -> _Store | None:
        if scope in self._data:
            return self
        if scope == "sess":
            return self.session
        if scope == "proc":
            return self.proc
        return None

    # Mapping.get is generic in its default; a variable's default is a Value.
    def get(self, full_name: str, default: Value = None) -> Value:  # type: ignore[override]
        """The value of ``full_name``, or ``default`` when it is not set or is
        not a variable name (``"nonsense"``, an unknown scope): HAProxy's
        ``var()`` of such a name is absent.  This is the rules layer's ``VarLookup``.

        :raises TypeError: ``full_name`` is not a str.
        """
        try:
            scope, _, name = full_name.partition(".")
        except (AttributeError, TypeError):  # None, int, bytes...: not a str
            raise _not_a_name(full_name) from None
        # The rules read variables on every request: this stream's own scopes straight
        # from its table (a new stream's shared one through the dict behind it: a
        # MappingProxyType's get() is a method call on its dict, several times the
        # cost), the others through _owner()
        data = self._data
        bag = (_NEW_STREAM_TABLE if data is _NEW_STREAM else data).get(scope)
        if bag is None:
            store = self._owner(scope)
            if store is None:
                return default
            bag = store._data[scope]
        if bag is _UNUSED or bag is _CLOSED:  # empty: no variable of this scope
            return default
        value = bag.get(name)
        return default if value is None else value

    def __getitem__(self, full_name: str) -> Value:
        value = self.get(full_name)
        if value is None:
            raise KeyError(full_name)
        return value

    def __contains__(self, full_name: object) -> bool:
        return isinstance(full_name, str) and self.get(full_name) is not None

    def __iter__(self) -> Iterator[str]:
        """Full names of every variable set, scope by scope (proc first)."""
        for scope in SCOPES:
            store = self._owner(scope)
            assert store is not None
            for name in list(store._data[scope]):
                yield f"{scope}.{name}"

    def __len__(self) -> int:
        """Variables the stream sees in all scopes (as many as iteration yields)."""
        session = self._session
        return self._count + (0 if session is None else len(session)) + len(self.proc)

    def items(self) -> ItemsView[str, Value]:
        """A live view of ``(full_name, value)`` pairs, every scope."""
        return ItemsView(self)

    def set(self, full_name: str, value: object) -> None:
        """Set a variable in any scope; ``None`` unsets it.

        :raises VariableError: invalid name, unsupported value, or a cap of the
            store holding that scope would be exceeded.
        """
        scope, name = split_var_name(full_name)
        store = self._owner(scope)
        assert store is not None
        _set(store, scope, name, value, full_name)

    def try_set(self, full_name: str, value: Value, *, enforce_limits: bool = True) -> str | None:
        """Set without raising: ``None`` on success, else the reason code
        (``invalid-name``, ``unknown-scope``, ``bad-value``, ``too-many-vars``,
        ``too-many-bytes``).  ``None`` as value unsets.  ``enforce_limits=False``
        is for the engine's own few variables (set-on-error and the timings),
        which an agent that filled the store must not be able to suppress."""
        reason = check_var_name(full_name)
        if reason is not None:
            return reason
        return self._set_valid(full_name, value, enforce_limits)

    def _set_valid(self, full_name: str, value: Value, enforce_limits: bool = True) -> str | None:
        """:meth:`try_set` for a name already checked (the ACK hot path)."""
        scope, _, name = full_name.partition(".")
        store = self._owner(scope)
        assert store is not None
        try:
            value = normalize_value(value)
        except VariableError as exc:
            return exc.reason
        if value is None:
            store._pop(scope, name)
            return None
        return store._put(scope, name, value, enforce=enforce_limits)

    def unset(self, full_name: str) -> bool:
        """Remove a variable; True if it was set (False: it was not).

        :raises VariableError: invalid name (a write: strict, as :meth:`set`).
        :raises TypeError: ``full_name`` is not a str.
        """
        scope, name = split_var_name(full_name)
        store = self._owner(scope)
        assert store is not None
        return store._pop(scope, name)

    def scope(self, scope: str) -> Mapping[str, Value]:
        """Read-only live view of one scope, keyed by the name after the scope
        (``{"iprep.score": 87}``).

        :raises VariableError: unknown scope.
        """
        store = self._owner(scope)
        if store is None:
            raise VariableError(f"unknown variable scope {scope!r}", scope, REASON_BAD_SCOPE)
        return store._view(scope)

    def clear(self, scope: str) -> None:
        """Drop every variable of ``txn``, ``req`` or ``res`` (end of a
        transaction or of one direction of it)."""
        if scope not in self._data:
            raise VariableError(f"a stream can only clear txn, req or res, not {scope!r}",
                                scope, REASON_BAD_SCOPE)
        self._clear(scope)

    def as_dict(self) -> dict[str, Value]:
        """A snapshot ``{full_name: value}`` of every variable the stream sees."""
        return dict(self.items())

    def __repr__(self) -> str:
        return f"<Vars {self._count} txn/req/res, {len(self.session)} sess, {len(self.proc)} proc>"
