"""One client connection of the TCP proxy (its sockets, samples, session, SPOE streams) and the
proxy's counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Any

from gevent import socket

from ..engine.transaction import Transaction
from ..rules.sources import TCPSamples

__all__ = ["Conn", "ProxyStats", "close_quietly", "engine_id", "set_nodelay"]


@dataclass
class ProxyStats:
    """Connection counters of one :class:`TCPProxy` (read them, do not write them).

    :attr accepted: client connections accepted.
    :attr active: connections being handled now (HAProxy's ``CurrConns``).
    :attr maxconn: the most connections handled at once (the limit, HAProxy's ``MaxConn``;
        0: none); beyond it new clients wait in the kernel's listen backlog.
    :attr max_active: the highest ``active`` seen (HAProxy's ``MaxConnReached`` counts how
        often it hit ``maxconn``; this is the peak itself).
    :attr accept_errors: ``accept()`` calls that failed (out of file descriptors, memory or
        buffers: accepting pauses briefly and resumes; the client waits in the backlog).
    :attr rejected: connections closed by a ``reject`` rule.
    :attr upstream_errors: upstream connections that failed (connect error, timeout, or a
        failed TLS handshake such as a certificate that does not verify).
    :attr aborted: connections ended by an error or a timeout rather than by both EOFs.
    :attr bytes_in: bytes forwarded from clients to the upstream.
    :attr bytes_out: bytes forwarded from the upstream to clients.
    :attr handshake_errors: client TLS handshakes that failed or timed out (TLS termination);
        those connections never reach the SPOE engines.
    """

    accepted: int = 0
    active: int = 0
    maxconn: int = 0
    max_active: int = 0
    accept_errors: int = 0
    rejected: int = 0
    upstream_errors: int = 0
    aborted: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    handshake_errors: int = 0


class Conn:
    """One proxied client connection: its sockets, samples, session and one stream per engine."""

    __slots__ = ("aborted", "client", "last_active", "samples", "session", "spoe", "upstream",
                 "vars")

    def __init__(self, client: Any, samples: TCPSamples, engines: Sequence[Any]) -> None:
        self.client = client
        self.upstream: Any = None
        self.samples = samples
        # the SPOE filters of the connection's stream: engines in order, one session and one
        # variable store, one failure policy (shared with the WSGI middleware)
        self.spoe = Transaction(engines, samples, kind="tcp")
        self.session = self.spoe.session
        self.vars = self.spoe.vars
        self.aborted = False
        self.last_active = monotonic()

    def touch(self) -> None:
        """Note traffic in either direction: it moves the connection's inactivity deadline."""
        self.last_active = monotonic()


def set_nodelay(sock: Any) -> None:
    # the proxy relays small request/response exchanges: Nagle would hold them back
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - not a TCP socket
        pass


def close_quietly(sock: Any) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:  # pragma: no cover
            pass


def engine_id(engine: Any) -> str:
    """HAProxy's engine id: the ``filter spoe engine`` name, else the agent name."""
    return str(engine.config.engine_id)
