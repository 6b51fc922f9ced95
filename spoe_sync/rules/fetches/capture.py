"""``capture.req.hdr(<slot>)``: what an ``http-request capture`` rule stored in a capture slot
(configuration.txt §7.3.6).

The slots live in the request's WSGI environ (``spoe_sync.captures``: a list indexed by slot,
``None`` where nothing was captured), as :mod:`spoe_sync.wsgi` fills it; a sample source without
an environ has no captures.
"""

from __future__ import annotations

from typing import Any

from ...protocol.values import Value
from . import fetch

__all__ = ["CAPTURES_KEY", "captures_of"]

#: the environ key of the request's capture slots
CAPTURES_KEY = "spoe_sync.captures"


def captures_of(samples: Any) -> list[str | None] | None:
    """The capture slots of a sample source's request, ``None`` when it has none."""
    environ = getattr(samples, "environ", None)
    slots = environ.get(CAPTURES_KEY) if isinstance(environ, dict) else None
    return slots if isinstance(slots, list) else None


@fetch("capture.req.hdr", "int", out="str")
def _capture_req_hdr(ctx: Any, args: tuple[Any, ...]) -> Value:
    # smp_fetch_capture_req_hdr(): fails for a slot out of range or never filled
    slots = captures_of(ctx.samples)
    idx = args[0]
    if slots is None or not 0 <= idx < len(slots):
        return None
    value: str | None = slots[idx]
    return value
