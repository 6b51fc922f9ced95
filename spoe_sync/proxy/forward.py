"""Moving the bytes of one proxied connection: the first bytes looked at without consuming them
(``req.payload``/``res.payload``), forwarding with half-close under one inactivity deadline per
connection, and the close of a refused client.  Plain sockets and
:class:`~spoe_sync.proxy.tls.TLSStream` alike."""

from __future__ import annotations

import select
import struct
from collections.abc import Callable
from time import monotonic
from typing import Any

import gevent
from gevent import socket
from gevent.socket import wait_read, wait_write

from .connection import Conn, ProxyStats
from .rule_runner import Verdict
from .tls import TLSStream

__all__ = ["forward", "peek", "refuse", "wait_ready"]

_BUFSIZE = 65536
#: what ends a connection without being a bug: the peer, the network, a deadline
ABORT_ERRORS = (OSError, gevent.Timeout)


def peek(sock: Any, size: int, delay: float | None) -> bytes:
    """The first bytes waiting on ``sock`` (not consumed), waiting up to ``delay`` seconds
    (``None``: no limit) for some to arrive; ``b""`` when none came or the peer closed."""
    if isinstance(sock, TLSStream):  # no MSG_PEEK in TLS: the stream keeps and replays them
        return sock.peek(size, delay)
    # wait_read/poll rather than a socket timeout: the other direction may be writing to
    # this socket meanwhile, and the sockets keep no timeout (see wait_ready)
    if delay == 0:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        if not poller.poll(0):
            return b""
    else:
        try:
            wait_read(sock.fileno(), timeout=delay)
        except (TimeoutError, socket.timeout):
            return b""
    return bytes(sock.recv(size, socket.MSG_PEEK))


def refuse(client: Any, verdict: Verdict, peeked: int) -> None:
    """Prepare ``client`` for its close after a ``reject`` or ``silent-drop``."""
    if verdict is Verdict.SILENT_DROP:
        # linger 0: close() resets the connection, the client sees no FIN
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return
    if isinstance(client, TLSStream):
        # the peeked bytes were read already; close_notify then FIN ends it cleanly
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return
    # read what was peeked so that close() sends a FIN rather than a reset
    client.settimeout(0.0)
    try:
        while peeked > 0:
            data = client.recv(min(peeked, _BUFSIZE))
            if not data:
                break
            peeked -= len(data)
    except OSError:
        pass


def forward(conn: Conn, src: Any, dst: Any, inbound: bool, stats: ProxyStats,
            idle: float | None) -> None:
    """Copy ``src`` to ``dst`` until EOF, then half-close ``dst``."""
    try:
        while True:
            wait_ready(conn, wait_read, src, idle)
            data = src.recv(_BUFSIZE)
            if data is None:  # TLS: no whole record yet
                continue
            if not data:
                break
            conn.touch()
            view = memoryview(data)
            while view:
                wait_ready(conn, wait_write, dst, idle)
                view = view[dst.send(view):]
                conn.touch()
            if inbound:
                stats.bytes_in += len(data)
            else:
                stats.bytes_out += len(data)
    except ABORT_ERRORS:
        conn.aborted = True
        # unblock the other direction: the connection is over
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def wait_ready(conn: Conn, wait: Callable[..., Any], sock: Any, idle: float | None) -> None:
    """Wait until ``sock`` is ready for ``wait`` (read or write), raising
    :class:`socket.timeout` once the connection saw no traffic for ``idle`` seconds."""
    # one inactivity deadline per connection, as HAProxy's timeout client/server behave on
    # a one-way transfer: traffic in either direction keeps both directions alive
    if isinstance(sock, TLSStream):
        if wait is wait_read and sock.buffered():
            return  # decrypted or unprocessed bytes wait in the TLS layer, not the socket
        if idle is None:
            wait(sock.fileno())  # TLSStream.recv does not wait by itself
            return
    if idle is None:
        return
    for _ in range(1_000_000):  # bounded: each turn ends at a deadline that traffic moved
        remaining = conn.last_active + idle - monotonic()
        if remaining <= 0:
            break
        try:
            wait(sock.fileno(), timeout=remaining)
            return
        except (TimeoutError, socket.timeout):
            continue  # the other direction may have moved the deadline meanwhile
    raise socket.timeout("idle timeout")
