"""The applet's I/O against hand-written agents on real sockets: events that
arrive in the AGENT-HELLO's segment (SPOE.txt §3.2.5, §3.2.9), writes to an
agent that stops reading (docs/explanation/haproxy-behaviour.md §3.4: never a hang), and
the FIN|ABORT frame that ends a fragmented NOTIFY given up part-way
(docs/explanation/haproxy-behaviour.md §2.4, SPOE.txt §3.2.7)."""

from __future__ import annotations

import socket as _stdsocket
import struct
import time
from collections.abc import Callable
from typing import Any

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer
from loguru import logger

from spoe_sync.config import Timeouts
from spoe_sync.engine import AppletPool
from spoe_sync.engine.applet import default_connect
from spoe_sync.engine.settings import DEFAULT_WRITE_TIMEOUT, PoolSettings
from spoe_sync.protocol import FLAG_ABORT, FLAG_FIN, Ack, AgentDisconnect, AgentHello, Message
from spoe_sync.protocol.codec import encode_frame, encode_messages
from tests.kit import read_frame

from ..conformance.harness import read_varint
from .poolkit import agent_config, backend, burst, statuses

pytestmark = pytest.mark.timeout(20)


def header(body: bytes) -> tuple[int, int, int, int, int]:
    """(type, flags, stream-id, frame-id, payload length) of a frame body."""
    ftype = body[0]
    (flags,) = struct.unpack(">I", body[1:5])
    sid, pos = read_varint(body, 5)
    fid, pos = read_varint(body, pos)
    return ftype, flags, sid, fid, len(body) - pos


class RawAgent:
    """A hand-written agent: answers the HAPROXY-HELLO with ``hello`` (bytes sent
    in ONE write), then runs ``after(sock)``; small receive buffer."""

    def __init__(self, hello: bytes, after: Callable[[Any], None], rcvbuf: int = 4096) -> None:
        self.hello = hello
        self.after = after
        listener = socket.socket()
        listener.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self.server = StreamServer(listener, self._handle)
        self.server.start()
        self.address = f"127.0.0.1:{listener.getsockname()[1]}"
        self.connections = 0

    def _handle(self, sock: Any, _address: Any) -> None:
        self.connections += 1
        sock.settimeout(5.0)
        try:
            if read_frame(sock) is None:
                return
            sock.sendall(self.hello)
            self.after(sock)
        except OSError:
            pass

    def stop(self) -> None:
        self.server.stop(timeout=1)


def small_sndbuf_connect(server: Any, timeout: float | None) -> Any:
    """The default connector, with a small send buffer so that a few frames fill it."""
    sock = default_connect(server, timeout)
    sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_SNDBUF, 4096)
    return sock


def test_agent_disconnect_in_the_hello_segment_is_acted_on_at_once() -> None:
    """AGENT-HELLO and AGENT-DISCONNECT in one write, socket kept open: the
    DISCONNECT must not wait for more bytes (the frame ends with 256+42 at once,
    not with the processing timeout)."""
    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining"))
    bye = encode_frame(AgentDisconnect.make(42, "going away"))
    agent = RawAgent(hello + bye, lambda sock: gevent.sleep(3.0))
    try:
        pool = AppletPool(agent_config(timeouts=Timeouts(hello=0.5, idle=None, processing=5.0)),
                          backend(agent.address), backoff=(0.2, 2.0))
        start = time.monotonic()
        outcomes = burst(pool, 1, timeout=5.0)
        assert statuses(outcomes) == {256 + 42: 1}
        # at once: not when the agent closes (3 s) nor at the 5 s processing timeout
        assert time.monotonic() - start < 2.0
        pool.close(0)
    finally:
        agent.stop()


def test_a_write_to_an_agent_that_stopped_reading_fails_the_connection() -> None:
    """No ``timeout idle``: a blocked write must still end (status 2 on the
    connection) instead of keeping a READY applet that takes frames forever."""
    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining"))
    agent = RawAgent(hello, lambda sock: gevent.sleep(4.0), rcvbuf=4096)
    big = encode_messages([Message("check-client-ip", (("data", b"x" * 16000),))])
    try:
        pool = AppletPool(agent_config(timeouts=Timeouts(hello=0.5, idle=None, processing=0.4)),
                          backend(agent.address), connect=small_sndbuf_connect, backoff=(0.2, 2.0))
        # Frames allowed longer than the write deadline (timeout processing 0.4 s):
        # those written or being written end with the connection's status.
        start = time.monotonic()
        greenlets = [gevent.spawn(pool.process, sid, 1, big, start + 1.5) for sid in range(1, 41)]
        gevent.joinall(greenlets, timeout=3.0)
        assert all(g.successful() for g in greenlets)
        ended = [g.value for g in greenlets]
        assert 256 + 2 in statuses(ended), statuses(ended)
        assert max(o.total_ms for o in ended if o.status == 258) < 1000
        end = time.monotonic() + 2.0
        while pool.metrics().applets and time.monotonic() < end:
            gevent.sleep(0.02)
        m = pool.metrics()
        assert m.applets == 0, m  # the blocked connection was given up
        assert m.servers[0].last_status == 256 + 2
        assert "stopped reading" in (m.servers[0].last_error or "")
        pool.close(0)
    finally:
        agent.stop()


def test_a_write_the_socket_cannot_take_at_once_is_finished_then_writes_go_on() -> None:
    """The agent reads late: the batch of NOTIFYs is more than the socket takes
    at once, the rest is written as the agent reads (under the write deadline),
    every frame gets its ACK, and later frames go out as usual."""
    acked: list[tuple[int, int]] = []

    def late_reader(sock: Any) -> None:
        gevent.sleep(0.3)  # the engine's send buffer and ours fill meanwhile
        for _ in range(1000):
            body = read_frame(sock)
            if body is None:
                return
            ftype, _flags, sid, fid, _size = header(body)
            if ftype == 3:  # NOTIFY
                acked.append((sid, fid))
                sock.sendall(encode_frame(Ack(sid, fid)))

    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining"))
    agent = RawAgent(hello, late_reader, rcvbuf=4096)
    big = encode_messages([Message("check-client-ip", (("data", b"x" * 16000),))])
    try:
        pool = AppletPool(agent_config(timeouts=Timeouts(hello=0.5, idle=None, processing=5.0)),
                          backend(agent.address), connect=small_sndbuf_connect, backoff=(0.2, 2.0))
        deadline = time.monotonic() + 5.0
        greenlets = [gevent.spawn(pool.process, sid, 1, big, deadline) for sid in range(1, 21)]
        gevent.joinall(greenlets, timeout=8.0)
        assert statuses([g.value for g in greenlets]) == {0: 20}
        assert statuses(burst(pool, 5, first_sid=100, timeout=5.0)) == {0: 5}
        assert len(acked) == 25 and pool.metrics().connections_opened == 1
        pool.close(0)
    finally:
        agent.stop()


def test_a_fragmented_notify_given_up_part_way_ends_with_fin_abort() -> None:
    """The stream's deadline passes while fragments are being written (the agent
    reads slowly): the rest is not sent, a type-0 FIN|ABORT frame with the same
    ids and no payload is (docs/explanation/haproxy-behaviour.md §2.4)."""
    seen: list[tuple[int, int, int, int, int]] = []

    def slow_reader(sock: Any) -> None:
        gevent.sleep(0.6)  # the engine's send buffer and ours fill meanwhile
        sock.settimeout(0.5)
        for _ in range(20000):
            try:
                body = read_frame(sock)
            except OSError:
                return
            if body is None:
                return
            seen.append(header(body))
            if seen[-1][1] & FLAG_ABORT:
                return

    hello = encode_frame(AgentHello.make(max_frame_size=256,
                                         capabilities="pipelining,fragmentation"))
    agent = RawAgent(hello, slow_reader)
    payload = encode_messages([Message("check-client-ip", (("data", b"y" * 400_000),))])
    try:
        pool = AppletPool(agent_config(timeouts=Timeouts(hello=0.5, idle=None, processing=5.0)),
                          backend(agent.address), connect=small_sndbuf_connect, backoff=(0.2, 2.0))
        start = time.monotonic()
        outcome = pool.process(7, 1, payload, time.monotonic() + 0.2)
        assert outcome.status == 1
        assert time.monotonic() - start < 0.5
        end = time.monotonic() + 3.0
        while not (seen and seen[-1][1] & FLAG_ABORT) and time.monotonic() < end:
            gevent.sleep(0.05)
        assert seen, "the agent got nothing"
        assert seen[0][:4] == (3, 0, 7, 1)  # NOTIFY, not FIN
        assert all(h[0] == 0 and h[1] == 0 for h in seen[1:-1])  # UNSET fragments
        assert seen[-1] == (0, FLAG_FIN | FLAG_ABORT, 7, 1, 0)
        assert len(seen) < 400_000 // 240  # the rest was never sent
        pool.close(0)
    finally:
        agent.stop()


@pytest.mark.parametrize(("idle", "processing", "override", "expected"), [
    pytest.param(0.7, 0.4, None, 0.7, id="timeout-idle"),
    pytest.param(None, 0.4, None, 0.4, id="timeout-processing"),
    pytest.param(None, 0.4, 0.9, 0.9, id="engine-override"),
    pytest.param(None, None, None, DEFAULT_WRITE_TIMEOUT, id="default"),
])
def test_the_write_deadline(idle: float | None, processing: float | None,
                            override: float | None, expected: float) -> None:
    """Which deadline bounds a write: ``timeout idle``, else ``timeout processing``
    (the engine's when it overrides the configuration), else the default."""
    settings = PoolSettings.from_config(
        agent_config(timeouts=Timeouts(hello=0.5, idle=idle, processing=processing)),
        backend("127.0.0.1:1"), processing=override)
    assert settings.write_timeout == expected


class _BrokenWrites:
    """A real socket whose writer copy fails with an error no socket raises
    (a bug in a transport, or in spoe_sync's writer)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def dup(self) -> Any:
        return _FailingSend(self._sock.dup())


class _FailingSend:
    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def send(self, data: bytes) -> int:
        raise RuntimeError("writer bug")


def test_a_bug_in_the_writer_fails_the_frames_at_once() -> None:
    """An exception other than OSError in the writer greenlet ends the
    connection with status 99 (256+99 for the frames of the failed write, not
    queued again), at once: never a stream left waiting for its processing
    timeout.  The traceback goes to the library's error log."""
    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining"))
    agent = RawAgent(hello, lambda sock: gevent.sleep(3.0))
    records: list[Any] = []
    sink_id = logger.add(records.append, level="ERROR", format="{message}")
    logger.enable("spoe_sync")
    try:
        pool = AppletPool(agent_config(timeouts=Timeouts(hello=0.5, idle=None, processing=5.0)),
                          backend(agent.address),
                          connect=lambda server, timeout: _BrokenWrites(
                              default_connect(server, timeout)),
                          backoff=(0.2, 2.0))
        start = time.monotonic()
        outcomes = burst(pool, 3, timeout=5.0)
        assert statuses(outcomes) == {256 + 99: 3}, outcomes
        # each ended by the failed write itself (not queued again)
        assert all("writer bug" in (o.error or "") for o in outcomes), outcomes
        assert time.monotonic() - start < 2.0  # not the 5 s processing timeout
        assert pool.metrics().frames_sent == 3  # tried once each, never again
        pool.close(0)
        errors = [r for r in records if "internal error" in r.record["message"]]
        assert errors and errors[0].record["exception"] is not None
        assert "writer bug" in str(errors[0].record["exception"].value)
    finally:
        logger.disable("spoe_sync")
        logger.remove(sink_id)
        agent.stop()
