"""What the fuzz tier accepts as different, each with its reason.

:data:`MASKED` values cannot be equal and are not compared.  :data:`KNOWN` are
mismatch classes found and not fixed yet: the conformance test fails on any class not listed
here, and this list should only shrink.
"""

from __future__ import annotations

__all__ = ["KNOWN", "MASKED"]

#: (message, argument) -> why its value cannot be equal
MASKED: dict[tuple[str, str], str] = {
    ("l4", "fe_id"): "a WSGI app has no frontend: spoe_sync's id is not HAProxy's",
    ("l4", "fe_name"): "a WSGI app has no frontend name",
    ("l4", "sport"): "each engine's client connects from its own port",
    ("l4", "dport"): "each engine listens on its own port",
}

#: class name -> one-line reason it is not fixed yet
KNOWN: dict[str, str] = {
}
