"""Shared helpers of the TCP proxy tests: a real upstream server, a client, a SPOE config, a
proxy command in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
from gevent import socket, subprocess
from gevent.server import StreamServer

from spoe_sync import Engine
from spoe_sync.proxy import TCPProxy
from tests import kit
from tests.kit import read_until_eof, wait_until

ROOT = Path(__file__).resolve().parents[2]

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


def exchange(proxy: TCPProxy | int, data: bytes) -> bytes:
    """Send ``data`` to ``proxy`` (or to a port of 127.0.0.1), half-close, and read the answer
    until EOF."""
    port = proxy if isinstance(proxy, int) else proxy.server_port
    return talk(socket.create_connection(("127.0.0.1", port), timeout=10), data)


def talk(sock: Any, data: bytes) -> bytes:
    """On a connected socket: send ``data``, half-close, read until EOF, close."""
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_until_eof(sock)
    finally:
        sock.close()


class Process:
    """A Python command in a subprocess, run from the repository's root with its code first
    on the path, whose output lines a greenlet collects (never blocking the hub)."""

    def __init__(self, *args: str, preexec_fn: Callable[[], None] | None = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
                                     preexec_fn=preexec_fn)
        self.lines: list[str] = []
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for _ in range(100_000):
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """The first output line matching ``pattern``, waited for (bounded)."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found.extend(m for m in map(regex.search, self.lines) if m)
            return bool(found) or self.proc.poll() is not None
        wait_until(seen, timeout)
        if not found:
            raise AssertionError(f"no line matching {pattern!r} in:\n" + self.output)
        return found[0]

    def stop(self, timeout: float = 30, *, sig: int | None = signal.SIGTERM) -> int:
        """Send ``sig`` (None: none, the command ends by itself), then the exit status; a
        process that does not end within ``timeout`` is killed and the test fails."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise
        self.reader.join(timeout=5)
        return int(code)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


