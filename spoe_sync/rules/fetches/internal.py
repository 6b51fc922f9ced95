"""Internal-state fetches that need no stream data: ``env``, ``hostname``, ``rand``, ``date``,
``fe_name``, ``uuid`` (configuration.txt §7.3.2)."""

from __future__ import annotations

import os
import platform
import random
import time
import uuid
from typing import Any

from ...protocol.values import Value
from . import fetch


@fetch("env", "str", out="str", literal=True)
def _env(ctx: Any, args: tuple[Any, ...]) -> Value:
    return os.environ.get(args[0])


@fetch("hostname", out="str", literal=True)
def _hostname(ctx: Any, args: tuple[Any, ...]) -> Value:
    return platform.node() or None


@fetch("rand", "int?", out="sint", literal=True)
def _rand(ctx: Any, args: tuple[Any, ...]) -> Value:
    # HAProxy: a 32-bit random number, or scaled to [0, range) with an argument.
    n = random.getrandbits(32)  # statistical, not for security (as HAProxy)
    return (n * args[0]) >> 32 if args and args[0] > 0 else n


@fetch("date", "int?", "str?", out="sint", literal=True)
def _date(ctx: Any, args: tuple[Any, ...]) -> Value:
    offset = args[0] if args else 0
    unit = args[1] if len(args) > 1 else "s"
    now = time.time() + offset * {"s": 1, "ms": 1e-3, "us": 1e-6}.get(unit, 1)
    return int(now * {"s": 1, "ms": 1e3, "us": 1e6}.get(unit, 1))


@fetch("fe_name", out="str")
def _fe_name(ctx: Any, args: tuple[Any, ...]) -> Value:
    name: str | None = getattr(ctx.samples, "frontend_name", None)
    return name


@fetch("uuid", "int?", out="str", literal=True)
def _uuid(ctx: Any, args: tuple[Any, ...]) -> Value:
    # HAProxy 2.6 knows version 4 only (lowercase 8-4-4-4-12 hex, as str(uuid4()))
    if args and args[0] != 4:
        return None
    return str(uuid.uuid4())
