"""The TCP proxy's forwarding core (gevent's port-forwarder shape), without engines: both
directions, half-close (EOF becomes shutdown(SHUT_WR) on the other side), big transfers, many
concurrent connections, an upstream that is down, idle timeouts, and the graceful stop
(stop accepting, drain with a bound).  Real sockets on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer

from spoe_sync.errors import ConfigError
from spoe_sync.proxy import TCPProxy, parse_listen_address
from tests.kit import free_port, read_until_eof, wait_until

from .proxykit import Upstream, connect, exchange, running

pytestmark = pytest.mark.timeout(30)


def test_echo_both_directions() -> None:
    with Upstream() as up, running(TCPProxy(("127.0.0.1", 0), up.address)) as proxy:
        assert exchange(proxy, b"ping\n") == b"ping\n"
        assert proxy.stats.accepted == 1
        assert wait_until(lambda: proxy.stats.active == 0)
        assert proxy.stats.bytes_in == 5 and proxy.stats.bytes_out == 5
        assert proxy.stats.aborted == 0


def test_half_close_keeps_the_other_direction_open() -> None:
    # the client's EOF reaches the upstream as a FIN; the upstream still answers after it
    with Upstream(trailer=b"after-eof") as up, \
            running(TCPProxy(("127.0.0.1", 0), up.address)) as proxy:
        assert exchange(proxy, b"abc") == b"abcafter-eof"
        assert wait_until(lambda: up.eofs == 1)


def test_server_speaks_first() -> None:
    with Upstream("banner", banner=b"220 ready\r\n") as up, \
            running(TCPProxy(("127.0.0.1", 0), up.address)) as proxy:
        sock = connect(proxy)
        try:
            sock.settimeout(5)
            assert sock.recv(100) == b"220 ready\r\n"
            sock.sendall(b"QUIT\r\n")
            assert sock.recv(100) == b"QUIT\r\n"
        finally:
            sock.close()


@pytest.mark.parametrize("size", [
    pytest.param(1, id="1-byte"),
    pytest.param(70_000, id="over-one-buffer"),
    pytest.param(8 << 20, id="8MiB"),
])
def test_big_transfers_arrive_intact(size: int) -> None:
    data = os.urandom(size)
    with Upstream() as up, running(TCPProxy(("127.0.0.1", 0), up.address)) as proxy:
        sock = connect(proxy)
        received: list[bytes] = []
        reader = gevent.spawn(lambda: received.append(read_until_eof(sock, limit=size + 1)))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reader.join(timeout=20)
        finally:
            sock.close()
        assert hashlib.sha256(received[0]).digest() == hashlib.sha256(data).digest()
        assert up.received == size


def test_many_concurrent_connections() -> None:
    count = 200
    with Upstream() as up, running(TCPProxy(("127.0.0.1", 0), up.address)) as proxy:
        jobs = [gevent.spawn(exchange, proxy, f"conn-{i}".encode() * 50) for i in range(count)]
        gevent.joinall(jobs, timeout=20, raise_error=True)
        assert [j.value for j in jobs] == [f"conn-{i}".encode() * 50 for i in range(count)]
        assert up.connections == count
        assert proxy.stats.accepted == count
        assert wait_until(lambda: proxy.stats.active == 0)


def test_upstream_down_closes_the_client_quickly() -> None:
    proxy = TCPProxy(("127.0.0.1", 0), ("127.0.0.1", free_port()), connect_timeout=1)
    with running(proxy):
        with gevent.Timeout(5):
            assert exchange(proxy, b"hello") == b""
        assert proxy.stats.upstream_errors == 1


def test_idle_timeout_ends_a_silent_connection() -> None:
    with Upstream("idle") as up, \
            running(TCPProxy(("127.0.0.1", 0), up.address, idle_timeout=0.3,
                             response_inspect_delay=0.05)) as proxy:
        sock = connect(proxy)
        try:
            sock.sendall(b"anyone?")
            with gevent.Timeout(5):
                assert read_until_eof(sock) == b""
        finally:
            sock.close()
        assert wait_until(lambda: proxy.stats.aborted == 1)


def test_client_reset_aborts_both_sides() -> None:
    with Upstream() as up, running(TCPProxy(("127.0.0.1", 0), up.address)) as proxy:
        sock = connect(proxy)
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # linger 0: a reset
        assert wait_until(lambda: proxy.stats.active == 0)
        assert wait_until(lambda: up.eofs == 1 or proxy.stats.aborted == 1)


def test_graceful_stop_drains_in_flight_connections() -> None:
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, drain_timeout=5)
        proxy.start()
        port = proxy.server_port
        sock = connect(proxy)
        sock.sendall(b"first")
        assert sock.recv(5) == b"first"
        stopper = gevent.spawn(proxy.stop)
        gevent.sleep(0.1)
        # no longer accepting, but the open connection still works
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sock.sendall(b"second")
        assert sock.recv(6) == b"second"
        assert not stopper.dead
        sock.shutdown(socket.SHUT_WR)
        assert read_until_eof(sock) == b""
        sock.close()
        stopper.join(timeout=5)
        assert stopper.dead and proxy.stats.active == 0 and proxy.stats.aborted == 0


def test_graceful_stop_is_bounded() -> None:
    with Upstream("idle") as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, idle_timeout=None,
                         response_inspect_delay=None)
        proxy.start()
        sock = connect(proxy)
        sock.sendall(b"stuck")
        assert wait_until(lambda: up.received == 5)
        with gevent.Timeout(5):
            proxy.stop(timeout=0.3)
        with gevent.Timeout(5):
            assert read_until_eof(sock) == b""
        sock.close()
        assert proxy.stats.active == 0


def test_nodelay_on_the_listener() -> None:
    with Upstream() as up, running(TCPProxy(("127.0.0.1", 0), up.address)) as proxy:
        assert proxy.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("text, expected", [
    pytest.param("127.0.0.1:80", ("127.0.0.1", 80), id="ipv4"),
    pytest.param("[::1]:8080", ("::1", 8080), id="ipv6"),
    pytest.param("localhost:9", ("localhost", 9), id="name"),
    pytest.param("127.0.0.1:0", ("127.0.0.1", 0), id="free-port"),
    pytest.param("127.0.0.1:10", ("127.0.0.1", 10), id="ends-in-0"),
    pytest.param("unix@/tmp/x.sock", "/tmp/x.sock", id="unix"),
    pytest.param("/run/app.sock", "/run/app.sock", id="absolute-path"),
    pytest.param("abns@app", "\0app", id="abstract"),
])
def test_parse_listen_address(text: str, expected: tuple[str, int] | str) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", [
    pytest.param("127.0.0.1", id="no-port"),
    pytest.param("unix@", id="empty-unix-path"),
    pytest.param("1.2.3.4:99999", id="bad-port"),
])
def test_parse_listen_address_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid address"):
        parse_listen_address(text)


class _SlowStreamer:
    """An upstream that streams ``chunks`` pieces ``gap`` seconds apart, then closes, and never
    reads: a one-way download where the client side stays silent throughout."""

    def __init__(self, chunks: int, gap: float) -> None:
        self.chunks = chunks
        self.gap = gap
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def _handle(self, sock: Any, address: Any) -> None:
        try:
            for i in range(self.chunks):
                sock.sendall(b"%03d|" % i)
                gevent.sleep(self.gap)
        except OSError:
            pass
        finally:
            sock.close()

    def __enter__(self) -> _SlowStreamer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(timeout=1)


def test_one_way_download_longer_than_the_idle_timeout_arrives_whole() -> None:
    # HAProxy (timeout client 1s) delivers a 3 s download whole: traffic in either direction
    # keeps the connection alive, so the silent client->server side must not time out
    with _SlowStreamer(chunks=12, gap=0.1) as up, \
            running(TCPProxy(("127.0.0.1", 0), f"127.0.0.1:{up.server.server_port}",
                             idle_timeout=0.4, response_inspect_delay=0.05)) as proxy:
        sock = connect(proxy)
        try:
            with gevent.Timeout(10):
                data = read_until_eof(sock)  # the client never sends nor half-closes
        finally:
            sock.close()
        assert data == b"".join(b"%03d|" % i for i in range(12))
        assert wait_until(lambda: proxy.stats.active == 0)
        assert proxy.stats.aborted == 0


def test_one_way_upload_longer_than_the_idle_timeout_arrives_whole() -> None:
    with Upstream("idle") as up, \
            running(TCPProxy(("127.0.0.1", 0), up.address, idle_timeout=0.4,
                             response_inspect_delay=0.05)) as proxy:
        sock = connect(proxy)
        try:
            with gevent.Timeout(10):
                for i in range(12):  # 1.2 s of upload, 0.1 s apart, the server never answers
                    sock.sendall(b"%03d|" % i)
                    gevent.sleep(0.1)
                sock.shutdown(socket.SHUT_WR)
                assert read_until_eof(sock) == b""
        finally:
            sock.close()
        assert wait_until(lambda: up.eofs == 1)
        assert up.received == 48
        assert proxy.stats.aborted == 0
