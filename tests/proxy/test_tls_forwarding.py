"""Forwarding through TLS termination in the TCP proxy: big transfers (many records, partial
records on the socket), TLS half-close both ways (close_notify becomes a FIN and back), many
concurrent TLS clients, and the connection's inactivity deadline on a TLS side (idle aborts,
one-way traffic keeps it alive), as for plain connections (docs/explanation/haproxy-behaviour.md §7.5).
Real sockets, certificates made by openssl."""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from typing import Any

import gevent
import gevent.event
import pytest
from gevent import socket
from gevent.server import StreamServer

from spoe_sync.proxy import TCPProxy, server_context
from spoe_sync.proxy.tls import TLSStream
from tests.kit import wait_until

from .proxykit import Upstream, running
from .tlskit import Certs, tls_connect, tls_read_all

pytestmark = pytest.mark.timeout(30)


def tls_proxy(certs: Certs, upstream: str, **kwargs: Any) -> TCPProxy:
    return TCPProxy(("127.0.0.1", 0), upstream,
                    ssl_context=server_context(certs.cert, certs.key), **kwargs)


def test_big_transfers_both_ways_over_tls(certs: Certs) -> None:
    data = os.urandom(3 << 20)  # many records, partial records on the socket
    with Upstream() as up, running(tls_proxy(certs, up.address)) as proxy:
        sock = tls_connect(("127.0.0.1", proxy.server_port), certs)
        received: list[bytes] = []
        reader = gevent.spawn(lambda: received.append(tls_read_all(sock, len(data))[0]))
        try:
            for i in range(0, len(data), 100_000):
                sock.sendall(data[i:i + 100_000])
            reader.join(timeout=20)
        finally:
            sock.close()
    assert hashlib.sha256(received[0]).digest() == hashlib.sha256(data).digest()


def _stream_read_all(stream: TLSStream, timeout: float = 10.0) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = stream.recv(65536)
        if data is None:
            gevent.socket.wait_read(stream.fileno(), timeout=deadline - time.monotonic())
            continue
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_tls_half_close_both_ways(certs: Certs) -> None:
    # the client's close_notify reaches the upstream as a FIN; the upstream still answers
    # after it, and its own FIN comes back to the client as close_notify
    with Upstream(trailer=b"after-eof") as up, running(tls_proxy(certs, up.address)) as proxy:
        raw = socket.create_connection(("127.0.0.1", proxy.server_port), timeout=10)
        context = ssl.create_default_context(cafile=certs.ca)
        client = TLSStream(raw, context, server_side=False, server_hostname="localhost")
        try:
            client.handshake(5)
            client.send(b"abc")
            client.shutdown(socket.SHUT_WR)
            assert _stream_read_all(client) == b"abcafter-eof"
        finally:
            client.close()
        assert wait_until(lambda: up.eofs == 1)
    assert proxy.stats.aborted == 0


def test_upstream_close_reaches_the_client_as_close_notify(certs: Certs) -> None:
    def bye(sock: Any, address: Any) -> None:
        sock.sendall(b"bye")
        sock.close()
    server = StreamServer(("127.0.0.1", 0), bye)
    server.start()
    try:
        with running(tls_proxy(certs, f"127.0.0.1:{server.server_port}")) as proxy:
            sock = tls_connect(("127.0.0.1", proxy.server_port), certs)
            try:
                assert tls_read_all(sock) == (b"bye", "close_notify")
            finally:
                sock.close()
    finally:
        server.stop(timeout=1)


def test_many_concurrent_tls_clients(certs: Certs) -> None:
    def one(i: int, port: int) -> bytes:
        sock = tls_connect(("127.0.0.1", port), certs)
        try:
            sock.sendall(b"client-%03d " % i * 100)
            got = b""
            for _ in range(100):
                got += sock.recv(65536)
                if len(got) >= 1100:
                    break
            return got
        finally:
            sock.close()
    with Upstream() as up, running(tls_proxy(certs, up.address)) as proxy:
        jobs = [gevent.spawn(one, i, proxy.server_port) for i in range(40)]
        gevent.joinall(jobs, timeout=20, raise_error=True)
        assert [j.value for j in jobs] == [b"client-%03d " % i * 100 for i in range(40)]
        assert wait_until(lambda: proxy.stats.active == 0)
    assert proxy.stats.handshake_errors == 0 and proxy.stats.aborted == 0


def test_idle_tls_connection_times_out(certs: Certs) -> None:
    with Upstream("idle") as up, \
            running(tls_proxy(certs, up.address, idle_timeout=0.4,
                              response_inspect_delay=0.05)) as proxy:
        sock = tls_connect(("127.0.0.1", proxy.server_port), certs)
        start = time.monotonic()
        try:
            data, _ = tls_read_all(sock)  # the client and the upstream stay silent
        finally:
            sock.close()
        assert data == b"" and 0.3 < time.monotonic() - start < 3
        assert wait_until(lambda: proxy.stats.aborted == 1)


def test_one_way_tls_download_longer_than_the_idle_timeout(certs: Certs) -> None:
    # traffic in either direction keeps a TLS connection alive, as a plain one
    def stream(sock: Any, address: Any) -> None:
        try:
            for i in range(12):
                sock.sendall(b"%03d|" % i)
                gevent.sleep(0.1)
        finally:
            sock.close()
    server = StreamServer(("127.0.0.1", 0), stream)
    server.start()
    try:
        with running(tls_proxy(certs, f"127.0.0.1:{server.server_port}", idle_timeout=0.4,
                               response_inspect_delay=0.05)) as proxy:
            sock = tls_connect(("127.0.0.1", proxy.server_port), certs)
            try:
                assert tls_read_all(sock) == (b"".join(b"%03d|" % i for i in range(12)),
                                              "close_notify")
            finally:
                sock.close()
            assert wait_until(lambda: proxy.stats.active == 0)
        assert proxy.stats.aborted == 0
    finally:
        server.stop(timeout=1)


class _AnswersThenHalfCloses:
    """An upstream that, once the client's upload is well under way, answers ``reply`` bytes
    and half-closes, then counts and hashes everything the client sends until its EOF."""

    def __init__(self, reply: int) -> None:
        self.reply = reply
        self.received = hashlib.sha256()
        self.count = 0
        self.done = gevent.event.Event()
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def _handle(self, sock: Any, address: Any) -> None:
        sock.settimeout(20)
        answered = False
        try:
            for _ in range(1_000_000):  # bounded by the socket timeout and a count
                data = sock.recv(65536)
                if not data:
                    break
                self.received.update(data)
                self.count += len(data)
                if not answered and self.count >= 512 * 1024:
                    # mid-upload: the client's records are in flight through the proxy
                    answered = True
                    sock.sendall(b"r" * self.reply)
                    sock.shutdown(socket.SHUT_WR)  # the upstream is done first
        except OSError:
            pass
        finally:
            self.done.set()
            sock.close()


def test_client_data_in_flight_when_the_upstream_half_closes_first(certs: Certs) -> None:
    """The upstream's FIN becomes our close_notify to the client while the client's records
    still wait to be read: every byte of them must still reach the upstream (OpenSSL's
    second SSL_shutdown would read and reject them; see TLSStream.shutdown)."""
    data = os.urandom(3 << 20)
    up = _AnswersThenHalfCloses(200_000)
    up.server.start()
    try:
        with running(tls_proxy(certs, f"127.0.0.1:{up.server.server_port}")) as proxy:
            raw = socket.create_connection(("127.0.0.1", proxy.server_port), timeout=10)
            context = ssl.create_default_context(cafile=certs.ca)
            client = TLSStream(raw, context, server_side=False, server_hostname="localhost")
            try:
                client.handshake(5)
                replies = gevent.spawn(_stream_read_all, client, 15.0)
                view = memoryview(data)
                for _ in range(1_000_000):  # bounded: 3 MiB in records of at most 16 KiB
                    if not view:
                        break
                    view = view[client.send(view):]
                client.shutdown(socket.SHUT_WR)
                assert len(replies.get(timeout=15)) == 200_000
            finally:
                client.close()
            assert up.done.wait(timeout=15)
    finally:
        up.server.stop(timeout=1)
    assert up.count == len(data)
    assert up.received.digest() == hashlib.sha256(data).digest()


def test_half_close_keeps_deciphered_bytes_not_yet_read(certs: Certs) -> None:
    """A peek that takes part of a record leaves the rest deciphered inside OpenSSL; our
    close_notify must not lose it (OpenSSL's second SSL_shutdown would fail the stream)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    data = os.urandom(16000)  # one record
    client_side = socket.create_connection(listener.getsockname(), timeout=10)
    server_side, _ = listener.accept()
    listener.close()
    server = TLSStream(server_side, server_context(certs.cert, certs.key), server_side=True)
    client = TLSStream(client_side, ssl.create_default_context(cafile=certs.ca),
                       server_side=False, server_hostname="localhost")
    try:
        handshake = gevent.spawn(server.handshake, 5)
        client.handshake(5)
        handshake.get(timeout=5)
        client.send(data)
        assert server.peek(100, 5) == data[:100]
        server.shutdown(socket.SHUT_WR)  # the other side ended first (our close_notify)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(data) and time.monotonic() < deadline:
            chunk = server.recv(65536)
            if chunk is None:
                gevent.socket.wait_read(server.fileno(), timeout=deadline - time.monotonic())
                continue
            if not chunk:
                break  # the bug: a clean-looking EOF with bytes missing
            got += chunk
        assert got == data
    finally:
        client.close()
        server.close()
