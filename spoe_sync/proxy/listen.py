"""Listen and upstream addresses of the TCP proxy, HAProxy ``bind`` / ``server`` style:
``host:port``, ``[::1]:port``, ``unix@/path`` or an absolute path, ``abns@name`` (a Linux
abstract socket).

A UNIX listener behaves as HAProxy's: a stale socket file left by a process that died is
removed before binding (one that still answers is left alone: the bind fails with "address in
use"), and the proxy removes its own file when it stops, unless another process replaced it
meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from gevent import socket

from ..config.backends import parse_address
from ..errors import ConfigError

__all__ = ["ListenAddress", "bind_unix", "parse_listen_address", "remove_unix"]

#: ``(host, port)`` for TCP, a path (``"\0name"`` for an abstract socket) for UNIX
ListenAddress = tuple[str, int] | str


def parse_listen_address(address: str | tuple[str, int]) -> ListenAddress:
    """``host:port`` (``[::1]:port`` for IPv6) as ``(host, port)``; ``unix@/path``, an absolute
    path or ``abns@name`` as the socket path (``str``).  Port 0 (a free port, for a listener)
    is accepted, and so are ``:port`` and ``*:port``: every IPv4 address, as in HAProxy's
    ``bind`` (an address to connect to needs a host: :func:`~spoe_sync.config.backends.parse_address`).

    :raises ConfigError: for anything else.
    """
    if isinstance(address, tuple):
        return address[0], int(address[1])
    text = address.strip()
    if text.startswith((":", "*:")):
        address = "0.0.0.0" + text[text.index(":"):]
    free = address.endswith(":0")
    try:  # parse_address() is for agent servers, where port 0 is an error
        family, host, port, path = parse_address(address[:-1] + "1" if free else address)
    except ValueError as exc:
        raise ConfigError(f"invalid address '{address}': {exc}") from None
    if family == "unix":
        if not path or path == "\0":
            raise ConfigError(f"invalid address '{address}': empty socket path")
        return path
    if host is None or port is None:  # pragma: no cover - parse_address gives both for TCP
        raise ConfigError(f"invalid address '{address}': expected host:port or unix@/path")
    return host, 0 if free else port


def describe(address: ListenAddress) -> str:
    """An address as an operator writes it (``host:port``, ``unix@/path``, ``abns@name``)."""
    if isinstance(address, str):
        return f"abns@{address[1:]}" if address.startswith("\0") else f"unix@{address}"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_unix(path: str, backlog: int) -> tuple[Any, tuple[int, int] | None]:
    """A listening UNIX socket on ``path`` and the ``(st_dev, st_ino)`` of its file (``None``
    for an abstract socket), for :func:`remove_unix`.

    :raises OSError: the path is taken by a live socket (``EADDRINUSE``) or by something that
        is not a socket, or the bind failed.
    """
    if not path.startswith("\0"):
        _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        ident = None
        if not path.startswith("\0"):
            st = os.stat(path)
            ident = (st.st_dev, st.st_ino)
    except BaseException:
        sock.close()
        raise
    return sock, ident


def remove_unix(path: str, ident: tuple[int, int] | None) -> None:
    """Remove the socket file ``bind_unix`` made, if it is still that file."""
    if ident is None:
        return
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == ident:
            os.unlink(path)
    except OSError:  # already gone, or not ours to remove: nothing to do
        pass


def _remove_stale(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        # nobody accepts on it: the file of a process that is gone
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    except OSError:
        return  # let bind() report the real problem
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path} is in use by a live listener")
