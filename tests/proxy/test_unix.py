"""UNIX socket listeners of the TCP proxy (HAProxy's ``bind unix@/path`` / ``bind /path`` and
``abns@``): end to end with an agent (``src``/``dst`` have no address on a UNIX socket: the
fetches fail and NULL is sent, as in HAProxy), the stale socket file removed at start, a live one
or a non-socket file left alone, the proxy's own file removed at stop, TLS on a UNIX listener,
and a UNIX upstream.  Real sockets; the SPOE events of SPOE.txt §3.3."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer

from spoe_sync.protocol import Message
from spoe_sync.proxy import TCPProxy, server_context
from spoe_sync.testing import FakeAgent
from tests.kit import read_until_eof, wait_until

from .proxykit import Upstream, exchange, make_engine, running, talk
from .tlskit import Certs, tls_connect

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    # AF_UNIX paths are limited to ~107 bytes: pytest's tmp paths can be long
    path = tmp_path / "p.sock"
    if len(str(path)) > 100:  # pragma: no cover - depends on the machine's tmp dir
        pytest.skip("the temporary directory's path is too long for a UNIX socket")
    return str(path)


def unix_exchange(path: str, data: bytes) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    return talk(sock, data)


def test_unix_listener_end_to_end_with_null_addresses(sock_path: str) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(message: Message) -> list[Any]:
        seen.append((message.name, dict(message.args)))
        return []
    with FakeAgent({"*": record}) as agent, Upstream() as up:
        proxy = TCPProxy(f"unix@{sock_path}", up.address, engines=[make_engine(agent.address)],
                         inspect_delay=1)
        with running(proxy):
            assert proxy.listen_address == f"unix@{sock_path}"
            assert os.path.exists(sock_path)
            assert unix_exchange(sock_path, b"over unix") == b"over unix"
            assert wait_until(lambda: proxy.stats.active == 0)
        assert not os.path.exists(sock_path)  # removed at stop
    args = dict(seen)
    assert args["at-client"] == {"ip": None, "port": None}  # src / dst_port fail: NULL
    assert args["at-request"]["payload"] == b"over unix"
    assert args["at-server"] == {"ip": None}
    assert proxy.stats.aborted == 0


def test_absolute_path_listener(sock_path: str) -> None:
    with Upstream() as up, running(TCPProxy(sock_path, up.address)) as proxy:
        assert proxy.unix_path == sock_path
        assert unix_exchange(sock_path, b"abc") == b"abc"
    assert not os.path.exists(sock_path)


def test_a_stale_socket_file_is_replaced(sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock_path)  # a listener that died and left its file behind
    dead.close()
    assert os.path.exists(sock_path)
    with Upstream() as up, running(TCPProxy(f"unix@{sock_path}", up.address)):
        assert unix_exchange(sock_path, b"fresh") == b"fresh"
    assert not os.path.exists(sock_path)


def test_a_live_listener_keeps_its_socket(sock_path: str) -> None:
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(sock_path)
    live.listen(1)
    try:
        proxy = TCPProxy(f"unix@{sock_path}", "127.0.0.1:1")
        with pytest.raises(OSError) as info:
            proxy.start()
        assert info.value.errno == errno.EADDRINUSE
        proxy.stop(timeout=0)
        assert os.path.exists(sock_path)  # neither removed at start nor at stop
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(sock_path)  # still the live listener's
        client.close()
    finally:
        live.close()


def test_a_file_that_is_not_a_socket_is_left_alone(sock_path: str) -> None:
    Path(sock_path).write_text("precious")
    proxy = TCPProxy(f"unix@{sock_path}", "127.0.0.1:1")
    with pytest.raises(OSError, match="not a socket"):
        proxy.start()
    proxy.stop(timeout=0)
    assert Path(sock_path).read_text() == "precious"


def test_own_file_replaced_meanwhile_is_not_removed(sock_path: str) -> None:
    with Upstream() as up:
        proxy = TCPProxy(f"unix@{sock_path}", up.address)
        proxy.start()
        os.unlink(sock_path)  # another process took the path over
        Path(sock_path).write_text("someone else's")
        proxy.stop(timeout=1)
    assert Path(sock_path).read_text() == "someone else's"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets: Linux only")
def test_abstract_socket_listener() -> None:
    name = f"spoe-sync-test-{os.getpid()}"
    with Upstream() as up, running(TCPProxy(f"abns@{name}", up.address)) as proxy:
        assert proxy.listen_address == f"abns@{name}"
        assert unix_exchange("\0" + name, b"abstract") == b"abstract"


def test_tls_on_a_unix_listener(sock_path: str, certs: Certs) -> None:
    with Upstream() as up, \
            running(TCPProxy(f"unix@{sock_path}", up.address,
                             ssl_context=server_context(certs.combined))) as proxy:
        sock = tls_connect(sock_path, certs, family=socket.AF_UNIX)
        try:
            sock.sendall(b"tls over unix")
            assert sock.recv(100) == b"tls over unix"
        finally:
            sock.close()
        assert wait_until(lambda: proxy.stats.active == 0)
    assert proxy.stats.handshake_errors == 0


def test_unix_upstream(tmp_path: Path) -> None:
    path = str(tmp_path / "up.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)

    def echo(sock: Any, address: Any) -> None:
        sock.settimeout(10)
        data = read_until_eof(sock)
        sock.sendall(data[::-1])
        sock.close()
    server = StreamServer(listener, echo)
    server.start()
    try:
        with running(TCPProxy(("127.0.0.1", 0), f"unix@{path}")) as proxy:
            assert exchange(proxy, b"abc") == b"cba"
    finally:
        server.stop(timeout=1)
        gevent.sleep(0)
