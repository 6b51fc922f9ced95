"""Literal and internal fetches: str() int() bool() bin() ipv4() ipv6(), always_true/false, var()."""

from __future__ import annotations

from typing import Any

from ...protocol.values import Value
from . import fetch


@fetch("str", "str", out="str", literal=True)
def _str(ctx: Any, args: tuple[Any, ...]) -> Value:
    value: Value = args[0]
    return value


@fetch("int", "int", out="sint", literal=True)
def _int(ctx: Any, args: tuple[Any, ...]) -> Value:
    value: Value = args[0]
    return value


@fetch("bool", "bool", out="bool", literal=True)
def _bool(ctx: Any, args: tuple[Any, ...]) -> Value:
    value: Value = args[0]
    return value


@fetch("bin", "hex", out="bin", literal=True)
def _bin(ctx: Any, args: tuple[Any, ...]) -> Value:
    value: Value = args[0]
    return value


@fetch("ipv4", "ipv4", out="ipv4", literal=True)
def _ipv4(ctx: Any, args: tuple[Any, ...]) -> Value:
    value: Value = args[0]
    return value


@fetch("ipv6", "ipv6", out="ipv6", literal=True)
def _ipv6(ctx: Any, args: tuple[Any, ...]) -> Value:
    value: Value = args[0]
    return value


@fetch("always_true", out="bool", literal=True)
def _always_true(ctx: Any, args: tuple[Any, ...]) -> Value:
    return True


@fetch("always_false", out="bool", literal=True)
def _always_false(ctx: Any, args: tuple[Any, ...]) -> Value:
    return False


@fetch("var", "var", "str?", out="any", literal=True)
def _var(ctx: Any, args: tuple[Any, ...]) -> Value:
    value = ctx.vars.get(args[0]) if ctx.vars is not None else None
    if value is None and len(args) > 1:
        # HAProxy 2.6: the optional second argument is a default used when the variable is unset.
        default: Value = args[1]
        return default
    return value
