"""The TCP proxy at its limits (docs/explanation/haproxy-behaviour.md §7.5): at ``maxconn`` it stops
accepting and resumes below it, the clients beyond the limit waiting in the kernel's backlog (none
refused, none lost); at a low file-descriptor limit it neither prints a traceback nor leaves a
client hanging; SIGHUP is a graceful stop.  The policy (default limit, kinds of accept errors,
the rate-limited log line) is tested without sockets."""

from __future__ import annotations

import errno
import os
import resource
import signal
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent import socket

from spoe_sync.proxy import TCPProxy
from spoe_sync.proxy.limits import (
    FD_RESERVE,
    LOG_INTERVAL,
    RateLimitedLog,
    accept_error_kind,
    default_maxconn,
)
from spoe_sync.testing import FakeAgent
from tests.kit import read_until_eof, wait_until

from .proxykit import Process, Upstream, make_engine, running

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


# -- policy, without sockets -----------------------------------------------------------------

def test_default_maxconn_follows_the_fd_limit() -> None:
    # two descriptors per connection (client, upstream), three with SPOE engines (an agent
    # connection per stream being processed in sync mode), after a reserve
    assert default_maxconn(False, 1024) == (1024 - FD_RESERVE) // 2 == 504
    assert default_maxconn(True, 1024) == (1024 - FD_RESERVE) // 3 == 336
    assert default_maxconn(True, 64) == 16
    assert default_maxconn(False, 10) == 1  # never 0: the proxy still serves one at a time
    assert default_maxconn(False, resource.RLIM_INFINITY) == 100_000
    assert default_maxconn(False, 10**9) == 100_000
    assert default_maxconn(True) == default_maxconn(True, resource.getrlimit(
        resource.RLIMIT_NOFILE)[0])


@pytest.mark.parametrize(("code", "kind"), [
    (errno.EMFILE, "resource"), (errno.ENFILE, "resource"), (errno.ENOBUFS, "resource"),
    (errno.ENOMEM, "resource"), (errno.ECONNABORTED, "client"), (errno.EPROTO, "client"),
    (errno.EPERM, "client"), (errno.EBADF, "fatal"), (errno.ENOTSOCK, "fatal"),
    (errno.EIO, "resource"),  # unknown: backing off can only help
])
def test_accept_error_kinds(code: int, kind: str) -> None:
    assert accept_error_kind(OSError(code, os.strerror(code))) == kind


def test_accept_errors_are_logged_once_per_interval() -> None:
    now = [100.0]
    log = RateLimitedLog(clock=lambda: now[0])
    assert log.due() == 1  # the first failure is said at once
    assert [log.due() for _ in range(500)] == [None] * 500
    now[0] += LOG_INTERVAL
    assert log.due() == 501  # then one line for all the failures since
    assert log.due() is None


# -- in process: the connection limit ----------------------------------------------------------

def _client(port: int, payload: bytes, hold: float = 0.0, timeout: float = 60.0) -> bytes:
    """Connect, send, read the echo, keep the connection ``hold`` more seconds (so that many
    are open at once), half-close and read until EOF: the echo, or ``b""`` when the proxy
    closed the connection."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(payload)
        echo = b""
        for _ in range(len(payload)):  # bounded: at least one byte per round
            chunk = sock.recv(len(payload) - len(echo))
            if not chunk:
                return echo
            echo += chunk
            if len(echo) == len(payload):
                break
        gevent.sleep(hold)
        sock.shutdown(socket.SHUT_WR)
        return echo + read_until_eof(sock, timeout=timeout)
    except OSError:
        return b""
    finally:
        sock.close()


def test_at_maxconn_the_next_clients_wait_and_are_served_once_one_ends() -> None:
    limit, extra = 3, 4
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, maxconn=limit)
        with running(proxy):
            port = proxy.server_port
            assert proxy.stats.maxconn == limit
            held = [socket.create_connection(("127.0.0.1", port), timeout=10)
                    for _ in range(limit)]
            for i, sock in enumerate(held):  # each is served: its bytes come back
                sock.sendall(b"held%d" % i)
                assert sock.recv(16) == b"held%d" % i
            assert proxy.stats.active == limit
            # beyond the limit: connected (the kernel's backlog), not refused, not served
            waiting = [gevent.spawn(_client, port, b"extra%d" % i) for i in range(extra)]
            gevent.sleep(0.5)
            assert not any(g.ready() for g in waiting)
            assert proxy.stats.accepted == limit and up.connections == limit
            # one held connection ends: exactly room for one more at a time
            held[0].close()
            assert wait_until(lambda: proxy.stats.accepted >= limit + 1, 10)
            for sock in held[1:]:
                sock.close()
            results = [g.get(timeout=30) for g in waiting]
            assert results == [b"extra%d" % i for i in range(extra)]  # none lost
            assert proxy.stats.max_active == limit
            assert wait_until(lambda: proxy.stats.active == 0, 10)
            assert proxy.stats.accepted == limit + extra
            assert proxy.stats.accept_errors == 0


def test_maxconn_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxconn"):
        TCPProxy(("127.0.0.1", 0), "127.0.0.1:1", maxconn=0)


def test_maxconn_defaults_to_what_the_fd_limit_allows() -> None:
    with FakeAgent() as agent:
        engine = make_engine(agent.address)
        proxy = TCPProxy(("127.0.0.1", 0), "127.0.0.1:1", engines=[engine])
        try:
            assert proxy.maxconn == default_maxconn(True) == proxy.stats.maxconn
            assert TCPProxy(("127.0.0.1", 0), "127.0.0.1:1").maxconn == default_maxconn(False)
        finally:
            engine.close(timeout=1)


# -- subprocess: a low file-descriptor limit, SIGHUP -------------------------------------------

def _low_fd_limit(nofile: int) -> Any:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return preexec


class _Proxy(Process):
    """``python -m spoe_sync proxy`` in a subprocess, with at most ``nofile`` descriptors."""

    def __init__(self, *args: str, nofile: int | None = None) -> None:
        super().__init__("-m", "spoe_sync", "proxy", "--listen", "127.0.0.1:0", *args,
                         preexec_fn=_low_fd_limit(nofile) if nofile else None)

    def port(self) -> int:
        return int(self.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 20).group(1))


@pytest.mark.parametrize(("maxconn", "spoe"), [
    pytest.param((), False, id="default-maxconn"),
    # with an engine each connection may hold an agent connection too (sync mode)
    pytest.param((), True, id="default-maxconn-with-spoe"),
    # a limit the descriptors cannot honour: accept() and the upstream connect fail with
    # EMFILE, which must pause and retry, never print a traceback nor leave a client hanging
    pytest.param(("--maxconn", "1000"), False, id="maxconn-above-the-fd-limit"),
])
def test_more_clients_than_file_descriptors(maxconn: tuple[str, ...], spoe: bool) -> None:
    from spoe_sync.examples.iprep import CONFIG_PATH

    nofile, clients = 64, 120
    with Upstream() as up, FakeAgent() as agent:
        engine = ("--config", CONFIG_PATH, "--engine", "ip-reputation-tcp", "--backend",
                  f"iprep-servers={agent.address}") if spoe else ()
        proxy = _Proxy("--upstream", up.address, *maxconn, *engine, nofile=nofile)
        try:
            port = proxy.port()
            jobs = [gevent.spawn(_client, port, b"client %d" % i, 0.3) for i in range(clients)]
            gevent.joinall(jobs, timeout=90)
            results = [j.value if j.successful() else None for j in jobs]
            assert None not in results  # every client got an answer or a close, in time
            served = sum(r == b"client %d" % i for i, r in enumerate(results))
            closed = results.count(b"")
            assert served + closed == clients
            if not maxconn:  # within the default limit nothing runs out: all are served
                assert served == clients
            # alive, and serving a new client once the storm is over
            assert proxy.proc.poll() is None
            assert _client(port, b"after") == b"after"
        finally:
            code = proxy.stop()
        assert code == 0, proxy.output
        assert "Traceback" not in proxy.output
        assert f"stopped; {clients + 1} connections" in proxy.output, proxy.output
        if spoe:
            assert f"engine ip-reputation-tcp: {clients + 1} processed, 0 errors" in proxy.output
        if maxconn:  # the shortage was said, but not once per client
            assert "above the 24 the file-descriptor limit allows" in proxy.output
            # two rate-limited lines (accept, upstream) per 10 s, not one per client (58 here)
            assert proxy.output.count("Too many open files") <= 10, proxy.output
        else:
            assert "Too many open files" not in proxy.output, proxy.output


def test_sighup_is_a_graceful_stop() -> None:
    # an engine with an agent: the stop must reach it as HAPROXY-DISCONNECT (status 0)
    from spoe_sync.examples.iprep import CONFIG_PATH

    with FakeAgent() as agent, Upstream() as up:
        proxy = _Proxy("--upstream", up.address, "--config", CONFIG_PATH, "--engine",
                       "ip-reputation-tcp", "--backend", f"iprep-servers={agent.address}",
                       "--drain", "30s")
        try:
            port = proxy.port()
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"in flight")
            assert wait_until(lambda: up.received == 9, 10)
            proxy.proc.send_signal(signal.SIGHUP)
            gevent.sleep(0.5)
            assert proxy.proc.poll() is None  # draining: the connection in flight goes on
            with pytest.raises(OSError):  # no longer accepting
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            sock.shutdown(socket.SHUT_WR)
            assert read_until_eof(sock) == b"in flight"
            sock.close()
            assert proxy.proc.wait(timeout=20) == 0  # not 129: the signal did not kill it
        finally:
            proxy.stop()
        assert "stopped; 1 connections" in proxy.output, proxy.output
        assert wait_until(lambda: len(agent.disconnects) >= 1, 10)
        assert all(d.status_code == 0 for d in agent.disconnects)
