"""HAProxy's rules for variables: scopes, names, values, sizes and the caps of a store.

Split from :mod:`.vars` (the stores themselves), which re-exports the names in
its own ``__all__``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ..errors import VariableError
from ..protocol.values import Value

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_VARS",
    "REASON_BAD_SCOPE",
    "REASON_BAD_VALUE",
    "REASON_INVALID_NAME",
    "REASON_TOO_BIG",
    "REASON_TOO_MANY",
    "SCOPES",
    "VarLimits",
    "check_var_name",
    "normalize_value",
    "split_var_name",
    "var_size",
]

#: HAProxy's variable scopes usable by SPOE (``check`` belongs to health checks).
SCOPES = ("proc", "sess", "txn", "req", "res")

#: Default cap on the variables of one store.  Real agents set a handful (criteo's
#: dynamic ``token_claim_*`` names are the widest seen: tens); 1024 leaves room
#: while bounding a flood.
DEFAULT_MAX_VARS = 1024
#: Default cap on the bytes of one store: enough for a DataDog body sample
#: (bounded by tune.bufsize, 16 KiB) many times over.
DEFAULT_MAX_BYTES = 1 << 20

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

#: What may follow the scope of a variable name: vars_hash_name()/vars_fill_desc()
#: in haproxy/src/vars.c, isalnum() in the C locale, '_' and '.'; written out so
#: that no Unicode digit or letter slips in.
VAR_NAME_RE = re.compile(r"[A-Za-z0-9_.]+\Z")

# Reasons a name or a value is refused (also used by actions.py in DroppedVar).
REASON_INVALID_NAME = "invalid-name"
REASON_BAD_SCOPE = "unknown-scope"
REASON_TOO_MANY = "too-many-vars"
REASON_TOO_BIG = "too-many-bytes"
REASON_BAD_VALUE = "bad-value"


@dataclass(frozen=True, slots=True)
class VarLimits:
    """Caps on one variable store.

    :param max_vars: most variables the store may hold at once.
    :param max_bytes: most bytes the store may hold: each variable counts the
        UTF-8 length of its name plus the size of its value (:func:`var_size`).
    """

    max_vars: int = DEFAULT_MAX_VARS
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_vars < 0 or self.max_bytes < 0:
            raise ValueError("variable limits must not be negative")


#: Shared by every store made without limits of its own (VarLimits is frozen).
_DEFAULT_LIMITS = VarLimits()


def split_var_name(full_name: str) -> tuple[str, str]:
    """``"txn.iprep.score"`` -> ``("txn", "iprep.score")``.

    :raises VariableError: unknown scope, empty name, or a character outside
        ``[A-Za-z0-9_.]`` (HAProxy's rule).
    """
    if not isinstance(full_name, str):
        raise _not_a_name(full_name)
    reason = check_var_name(full_name)
    if reason is not None:
        raise VariableError(_REASON_TEXT[reason].format(name=full_name), full_name, reason)
    scope, _, name = full_name.partition(".")
    return scope, name


def _not_a_name(full_name: object) -> TypeError:
    return TypeError(f"a variable name is a str such as 'txn.pfx.name', not "
                     f"{type(full_name).__name__} {full_name!r}")


def check_var_name(full_name: object) -> str | None:
    """``None`` when ``full_name`` is a valid variable name, else the reason."""
    if not isinstance(full_name, str):
        return REASON_INVALID_NAME
    scope, dot, name = full_name.partition(".")
    if not dot or scope not in SCOPES:
        return REASON_BAD_SCOPE
    if not VAR_NAME_RE.match(name):
        return REASON_INVALID_NAME
    return None


_REASON_TEXT = {
    REASON_BAD_SCOPE: "variable {name!r} has no valid scope (proc, sess, txn, req or res)",
    REASON_INVALID_NAME: "variable name {name!r} is empty or not made of [A-Za-z0-9_.]",
}


def normalize_value(value: object) -> Value:
    """The value as stored: a plain ``int`` (wire subclasses dropped, so a
    variable read back is sent as INT64, as HAProxy sends an ``SMP_T_SINT``),
    ``bytes`` for any bytes-like object.

    :raises VariableError: for a type no variable can hold, or an integer
        outside the signed 64-bit range.
    """
    if value is None or type(value) in (bool, str, bytes, IPv4Address, IPv6Address):
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise VariableError(f"integer {value} does not fit a signed 64-bit variable",
                                None, REASON_BAD_VALUE)
        return int(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (IPv4Address, IPv6Address)):
        return value
    raise VariableError(f"a variable cannot hold a {type(value).__name__}", None, REASON_BAD_VALUE)


def var_size(name: str, value: Value) -> int:
    """Bytes a variable counts against :attr:`VarLimits.max_bytes`."""
    kind = type(value)
    fixed = _FIXED_SIZES.get(kind)
    if fixed is not None:  # int, bool, addresses: the usual agent values
        return len(name) + fixed
    if kind is bytes:
        return len(name) + len(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        return len(name) + len(value.encode("utf-8", "surrogateescape"))
    if isinstance(value, bytes):
        return len(name) + len(value)
    if isinstance(value, bool):
        return len(name) + 1
    if isinstance(value, int):
        return len(name) + 8
    if isinstance(value, IPv4Address):
        return len(name) + 4
    if isinstance(value, IPv6Address):
        return len(name) + 16
    return len(name)


# Sizes by exact type, looked up first (one dict lookup instead of a chain of
# isinstance calls on the ACK hot path); subclasses take the chain above.
_FIXED_SIZES: dict[type, int] = {int: 8, bool: 1, IPv4Address: 4, IPv6Address: 16}
