"""How applets and health checks open their connection to an agent server."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gevent import socket

if TYPE_CHECKING:
    from .balance import ServerState

__all__ = ["Connector", "default_connect"]

#: ``connect(server, timeout) -> socket``: how applets open their connection.
Connector = Callable[["ServerState", "float | None"], Any]


def default_connect(server: ServerState, timeout: float | None) -> Any:
    """Open a TCP (TCP_NODELAY) or unix stream socket to ``server``."""
    if server.family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(server.sockaddr)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection(server.sockaddr, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - e.g. a socketpair-based test transport
        pass
    return sock
