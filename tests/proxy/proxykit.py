"""Shared helpers of the TCP proxy tests: a real upstream server, a client, a SPOE config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gevent import socket
from gevent.server import StreamServer

from spoe_sync import Engine
from spoe_sync.proxy import TCPProxy
from tests import kit
from tests.kit import read_until_eof

#: one message per TCP event point, each carrying what that point can see
CONF = """\
[{name}]
spoe-agent {name}-agent
    messages at-client at-request at-server at-response
    groups grp
    option var-prefix {name}
    timeout hello 500ms
    timeout idle 10s
    timeout processing {processing}
    use-backend agents
spoe-message at-client
    args ip=src port=dst_port
    event on-client-session
spoe-message at-request
    args payload=req.payload(0,0) len=req.len mark=var(sess.{name}.mark)
    event on-frontend-tcp-request
spoe-message at-server
    args ip=src
    event on-server-session
spoe-message at-response
    args payload=res.payload(0,0) len=res.len
    event on-tcp-response
spoe-message in-group
    args first=req.payload(0,4) kind=var(txn.{name}.kind)
spoe-group grp
    messages in-group
"""


def make_engine(address: str, *, name: str = "iprep", processing: str = "1s") -> Engine:
    """An engine for CONF (its scope ``name``), its backend on ``address``."""
    return kit.make_engine(CONF.format(name=name, processing=processing), name, address)


class Upstream:
    """A real TCP server on 127.0.0.1.

    ``mode="echo"``: send back every chunk, then after the client's EOF send ``trailer`` and
    close (so a test sees that half-close kept the server-to-client direction open).
    ``mode="banner"``: send ``banner`` first, then echo.  ``mode="idle"``: read and never answer.
    """

    def __init__(self, mode: str = "echo", *, banner: bytes = b"HELLO\n",
                 trailer: bytes = b"") -> None:
        self.mode = mode
        self.banner = banner
        self.trailer = trailer
        self.connections = 0
        self.received = 0
        self.eofs = 0
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def _handle(self, sock: Any, address: Any) -> None:
        self.connections += 1
        sock.settimeout(30)
        try:
            if self.mode == "banner":
                sock.sendall(self.banner)
            for _ in range(1_000_000):  # bounded: 30 s idle timeout and a count
                data = sock.recv(65536)
                if not data:
                    self.eofs += 1
                    break
                self.received += len(data)
                if self.mode != "idle":
                    sock.sendall(data)
            if self.trailer:
                sock.sendall(self.trailer)
        except OSError:
            pass
        finally:
            sock.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Upstream:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(timeout=1)


@contextmanager
def running(proxy: TCPProxy) -> Iterator[TCPProxy]:
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop(timeout=2)


def connect(proxy: TCPProxy) -> Any:
    sock = socket.create_connection(("127.0.0.1", proxy.server_port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(proxy: TCPProxy, data: bytes) -> bytes:
    """Send ``data``, half-close, and read the answer until EOF."""
    sock = connect(proxy)
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_until_eof(sock)
    finally:
        sock.close()


