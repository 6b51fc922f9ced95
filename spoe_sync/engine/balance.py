"""Agent servers at run time and the choice of one for a new applet.

A :class:`ServerState` is the live side of one ``server`` line of the agent's
backend: up or down (health checks, ``disabled``), its reconnection
:class:`~spoe_sync.engine.backoff.Backoff`, its applets, and what went wrong last.
:class:`Balancer` picks the server of each new applet with the backend's
``balance`` algorithm (``roundrobin``, ``leastconn``, ``first``, ``random``),
skipping servers that are down, backing off, or at their ``maxconn``.

Servers are duck-typed on the attributes of :class:`spoe_sync.config.Server`
(``address``, ``name``, ``weight``, ``maxconn``, ``disabled``, ...); a plain
``"host:port"`` string stands for ``Server("host:port")``, with that class's defaults.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ..config.backends import Server
from .backoff import Backoff

__all__ = ["ALGORITHMS", "Balancer", "ServerState", "parse_address"]

ALGORITHMS = ("roundrobin", "leastconn", "first", "random")


def parse_address(address: str) -> tuple[str, Any]:
    """``"host:port"``, ``"[v6]:port"``, ``"ipv4@h:p"``, ``"unix@/path"`` or
    ``"/path"`` -> ``(family, sockaddr)`` with family ``"ipv4"|"ipv6"|"unix"``."""
    text = address.strip()
    for prefix, family in (("unix@", "unix"), ("ipv4@", "ipv4"), ("ipv6@", "ipv6")):
        if text.startswith(prefix):
            text = text[len(prefix):]
            if family == "unix":
                return "unix", text
            break
    if text.startswith("/"):
        return "unix", text
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return "ipv6", (host, _port(port, address))
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"invalid agent server address '{address}' (expected host:port)")
    family = "ipv6" if ":" in host else "ipv4"
    return family, (host, _port(port, address))


def _port(text: str, address: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port in agent server address '{address}'")
    return int(text)


class ServerState:
    """Run-time state of one agent server (mutable; snapshots go to metrics).

    :attr up: False when health checks marked it down or it is ``disabled``.
    :attr connections: applets open or opening on it.
    :attr ready: applets whose handshake succeeded and that are still alive.
    :attr connecting: applets not yet through their handshake.
    """

    def __init__(self, server: Any, backoff: Backoff | None = None) -> None:
        if isinstance(server, str):
            server = Server(server)  # a bare address: a ``server`` line's defaults
        self.server = server
        self.address: str = str(server.address)
        self.name: str = getattr(server, "name", None) or self.address
        self.family, self.sockaddr = parse_address(self.address)
        self.weight = max(int(getattr(server, "weight", 1) or 0), 0)
        self.maxconn = int(getattr(server, "maxconn", 0) or 0)
        self.disabled = bool(getattr(server, "disabled", False))
        self.up = not self.disabled
        self.backoff = backoff or Backoff()
        self.connections = 0
        self.ready = 0
        self.connecting = 0
        self.connect_attempts = 0
        self.connect_errors = 0
        self.last_error: str | None = None
        self.last_status: int | None = None
        self.last_failure_at = 0.0
        #: a connection failed since its last ACK (the pool reported it unreachable)
        self.unreachable = False
        # health checks (rise/fall counters as HAProxy's check.health)
        self.check_successes = 0
        self.check_failures = 0
        self.check_reason: str | None = None
        self._rr_current = 0

    def usable(self) -> bool:
        """Up, not backing off, under ``maxconn``, and not already probing: a
        server without a working applet gets one connection attempt at a time so
        a burst against a dead agent costs one attempt, not one per stream."""
        if not self.up or self.weight == 0 or not self.backoff.ready():
            return False
        if self.maxconn and self.connections >= self.maxconn:
            return False
        return not (self.ready == 0 and self.connecting > 0)

    def record_failure(self, status: int, error: str, now: float,
                       started: float | None = None) -> None:
        """A connection attempt begun at ``started``, its handshake, or a
        connection not yet proven by an ACK failed (see :meth:`Backoff.failure`)."""
        self.connect_errors += 1
        self.last_status = status
        self.last_error = error
        self.last_failure_at = now
        self.backoff.failure(started)

    def __repr__(self) -> str:
        state = "UP" if self.up else "DOWN"
        return (f"<ServerState {self.name} {state} [applets: {self.ready} ready, "
                f"{self.connecting} connecting | errors: {self.connect_errors}]>")


class Balancer:
    """Chooses the server of a new applet (HAProxy ``balance`` semantics, on
    applets rather than client connections).

    :param servers: the backend's server states, in declaration order.
    :param algorithm: ``roundrobin`` (smooth weighted), ``leastconn`` (fewest
        applets per weight), ``first`` (the first server in declaration order
        under its ``maxconn``), ``random`` (weighted).
    """

    def __init__(self, servers: Sequence[ServerState], algorithm: str = "roundrobin",
                 rng: random.Random | None = None) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported balance algorithm '{algorithm}' "
                             f"(expected one of {', '.join(ALGORITHMS)})")
        self.servers = tuple(servers)
        self.algorithm = algorithm
        self._rng = rng or random.Random()

    def choose(self, usable: Callable[[ServerState], bool] | None = None) -> ServerState | None:
        """The server for the next applet, or None when no server may be used."""
        check = usable or ServerState.usable
        candidates = [s for s in self.servers if check(s)]
        if not candidates:
            return None
        if self.algorithm == "first":
            return candidates[0]
        if self.algorithm == "leastconn":
            return min(candidates, key=lambda s: (s.connections / max(s.weight, 1),
                                                  self.servers.index(s)))
        if self.algorithm == "random":
            return self._rng.choices(candidates, weights=[max(s.weight, 1) for s in candidates])[0]
        # Smooth weighted round robin (nginx): even spread, weights respected.
        total = 0
        best: ServerState | None = None
        for s in candidates:
            s._rr_current += max(s.weight, 1)
            total += max(s.weight, 1)
            if best is None or s._rr_current > best._rr_current:
                best = s
        assert best is not None
        best._rr_current -= total
        return best
