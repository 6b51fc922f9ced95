"""Where a fetch may be used: SPOE events and rule sets (docs/explanation/haproxy-behaviour.md §7.3/§7.5).

HAProxy checks ``fetch->val & where`` when it loads a config; a message whose args cannot run at
its event is a fatal error.  spoe_sync has no frontend/backend split: a WSGI app or TCP proxy is one
``listen`` section, so the backend request events are promoted to the frontend ones and the
response events see both sides, as HAProxy does for a ``listen`` proxy.
"""

from __future__ import annotations

from .names import FetchInfo

__all__ = ["CHECKPOINTS", "EVENTS", "POINTS", "RULE_POINTS", "unavailable_message"]

# HAProxy's fetch_ckp_names[], in bit order (src/sample.c).
CHECKPOINTS: tuple[str, ...] = (
    "frontend tcp-request connection rule",
    "frontend tcp-request session rule",
    "frontend tcp-request content rule",
    "frontend http-request header rule",
    "frontend http-request body rule",
    "frontend use-backend rule",
    "backend tcp-request content rule",
    "backend http-request header rule",
    "backend http-request body rule",
    "backend use-server, balance or stick-match rule",
    "server source selection",
    "backend tcp-response content rule",
    "backend http-response header rule",
    "backend http-response body rule",
    "backend stick-store rule",
    "frontend tcp-response content rule",
    "frontend http-response header rule",
    "frontend http-response body rule",
    "logs",
    "backend tcp-check rule",
    "configuration parser",
    "CLI parser",
)
_IDX = {name: i for i, name in enumerate(CHECKPOINTS)}


def _bits(*names: str) -> int:
    out = 0
    for n in names:
        out |= 1 << _IDX[n]
    return out


# flt_spoe.c parse_spoe_flt(): the `where` of each event, for a proxy with both capabilities.
EVENTS: dict[str, int] = {
    "on-client-session": _bits("frontend tcp-request connection rule"),
    "on-server-session": _bits("server source selection"),
    "on-frontend-tcp-request": _bits("frontend tcp-request content rule"),
    "on-backend-tcp-request": _bits("frontend tcp-request content rule"),
    "on-tcp-response": _bits("frontend tcp-response content rule",
                             "backend tcp-response content rule"),
    "on-frontend-http-request": _bits("frontend http-request header rule"),
    "on-backend-http-request": _bits("frontend http-request header rule"),
    "on-http-response": _bits("frontend http-response header rule",
                              "backend http-response header rule"),
}

# The same for a frontend-only and a backend-only proxy (no promotion of backend events).
_FRONTEND_EVENTS = {**EVENTS,
                    "on-tcp-response": _bits("frontend tcp-response content rule"),
                    "on-http-response": _bits("frontend http-response header rule")}
_BACKEND_EVENTS = {**EVENTS,
                   "on-backend-tcp-request": _bits("backend tcp-request content rule"),
                   "on-backend-http-request": _bits("backend http-request header rule"),
                   "on-tcp-response": _bits("backend tcp-response content rule"),
                   "on-http-response": _bits("backend http-response header rule")}
_BY_PROXY = {"listen": EVENTS, "frontend": _FRONTEND_EVENTS, "backend": _BACKEND_EVENTS}

# check_send_spoe_group() and the rule parsers: the `where` of each rule set.
RULE_POINTS: dict[str, int] = {
    "tcp-request content": _bits("frontend tcp-request content rule"),
    "tcp-response content": _bits("backend tcp-response content rule"),
    "http-request": _bits("frontend http-request header rule"),
    "http-response": _bits("backend http-response header rule"),
    "http-after-response": _bits("frontend http-response header rule",
                                 "backend http-response header rule"),
}

POINTS: dict[str, int] = {**EVENTS, **RULE_POINTS}


def _lowest_name(where: int) -> str:
    for i, name in enumerate(CHECKPOINTS):
        if where & (1 << i):
            return name
    return "unknown sample check place, please report this bug"


def point_mask(point: str, proxy: str = "listen") -> int:
    """The checkpoint bits of a sample point, for a ``listen``, ``frontend`` or ``backend``
    proxy (events only; rule sets do not depend on it).

    :raises KeyError: for a name that is neither an SPOE event nor a rule set.
    """
    if point in EVENTS:
        return _BY_PROXY[proxy][point]
    return RULE_POINTS[point]


def fetch_mask(info: FetchInfo) -> int:
    return sum(1 << i for i, c in enumerate(info.mask) if c == "Y")


def unavailable_message(info: FetchInfo, point: str, proxy: str = "listen") -> str | None:
    """``None`` when ``info`` may run at ``point``, else HAProxy's wording of why not."""
    where = point_mask(point, proxy)
    if fetch_mask(info) & where:
        return None
    return (f"some args extract information from '{info.source}', "
            f"none of which is available here ('{_lowest_name(where)}')")
