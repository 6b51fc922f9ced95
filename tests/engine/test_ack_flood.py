"""One agent must not freeze the worker (issue 11, defect 1): the work one ACK
costs is bounded by its useful work.  A hostile agent answers every NOTIFY with
a huge action list, in fragments; the engine decodes at most
``DEFAULT_MAX_ACK_ACTIONS`` actions, reports the drops once, refuses a payload
past ``DEFAULT_MAX_ACK_SIZE`` with SPOP status 3, and the other greenlets keep
running meanwhile.

The agent runs on OS threads with stdlib sockets and pre-encoded answers, so
that its own cost is not charged to the engine's gevent loop."""

from __future__ import annotations

import socket
import struct
import threading
import time

import gevent
import pytest

from spoe_sync.engine.actions import DroppedVar
from spoe_sync.protocol import Ack, AgentHello, SetVar, VarScope, encode_frame, encode_raw_frame
from spoe_sync.protocol.connection import DEFAULT_MAX_ACK_ACTIONS, DEFAULT_MAX_ACK_SIZE
from spoe_sync.testing import FakeAgent

from ..conformance.harness import read_varint
from .enginekit import EVENT, make_engine, samples

_LEN = struct.Struct(">I")
_PIECE = 16_000  # payload bytes per fragment: a frame within the 16380 negotiated


def action_list(actions) -> bytes:
    """The LIST-OF-ACTIONS bytes of ``actions``."""
    return encode_frame(Ack(1, 1, tuple(actions)))[11:]


class FloodAgent:
    """A raw SPOP agent answering every NOTIFY with the same action list, in
    fragments when it does not fit one frame.  Bounded: every socket has a
    timeout, and :meth:`stop` closes everything."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.notifies = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._conns: list[socket.socket] = []
        self._threads[0].start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> FloodAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        for conn in [self._listener, *self._conns]:
            conn.close()
        for thread in self._threads:
            thread.join(5.0)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(10.0)
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self, conn: socket.socket) -> None:
        hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining"))
        try:
            self._read(conn, _LEN.unpack(self._read(conn, 4))[0])  # HAPROXY-HELLO
            conn.sendall(hello)
            for _ in range(10_000):
                body = self._read(conn, _LEN.unpack(self._read(conn, 4))[0])
                if body[0] != 3:  # HAPROXY-DISCONNECT: the engine is leaving
                    return
                sid, fid = _ids(body)
                self.notifies += 1
                conn.sendall(b"".join(_ack_frames(sid, fid, self.payload)))
        except (EOFError, OSError):
            return
        finally:
            conn.close()


def _ids(body: bytes) -> tuple[int, int]:
    """A NOTIFY's stream-id and frame-id (after its type and flags), decoded without spoe_sync."""
    sid, pos = read_varint(body, 5)
    fid, _ = read_varint(body, pos)
    return sid, fid


def _ack_frames(sid: int, fid: int, payload: bytes) -> list[bytes]:
    pieces = [payload[i:i + _PIECE] for i in range(0, len(payload), _PIECE)] or [b""]
    return [encode_raw_frame(103 if i == 0 else 0, 1 if i == len(pieces) - 1 else 0, sid, fid, piece)
            for i, piece in enumerate(pieces)]


# --------------------------------------------------------------------------- tests


def test_a_flood_within_the_size_bound_costs_only_its_first_actions():
    # ~230 KiB: under the reassembly bound, five times the decode bound.
    flood = [SetVar(VarScope.TXN, f"k{i}", 1) for i in range(20_000)]
    payload = action_list(flood)
    assert len(payload) < DEFAULT_MAX_ACK_SIZE
    with FloodAgent(payload) as agent, make_engine(agent.address, processing="5s") as engine:
        stream = engine.new_stream(samples())
        result = engine.process_event(stream, EVENT)
        assert result.ok, result
        # Before: all 20,000 decoded, applied and reported, one DroppedVar each.
        assert result.actions == tuple(flood[:DEFAULT_MAX_ACK_ACTIONS])
        assert len(result.vars_set) == len(stream.vars) == 1024  # the default per-stream cap
        assert result.dropped_vars == (
            DroppedVar("txn.test.k1024", "too-many-vars", "set-var", DEFAULT_MAX_ACK_ACTIONS - 1024),
            DroppedVar("*", "too-many-actions", "unknown", 0),
        )


def test_the_issue_flood_is_refused_and_the_loop_keeps_turning():
    # The issue's reproducer: ~76,000 set-vars in a ~1 MiB fragmented ACK
    # (reassembled and applied before: ~0.5 s of CPU per ACK on the loop).
    payload = action_list(SetVar(VarScope.TXN, f"v{i}", 1) for i in range(76_000))
    assert 3 * DEFAULT_MAX_ACK_SIZE < len(payload) < 1 << 20  # what was accepted before
    gaps: list[float] = []
    results = []

    def ticker() -> None:
        last = time.monotonic()
        for _ in range(100_000):
            gevent.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    def client(engine) -> None:
        for _ in range(3):
            results.append(engine.process_event(engine.new_stream(samples()), EVENT))

    with FloodAgent(payload) as agent, make_engine(agent.address, processing="1s") as engine:
        tick = gevent.spawn(ticker)
        clients = [gevent.spawn(client, engine) for _ in range(3)]
        gevent.joinall(clients, timeout=30)
        gevent.sleep(0.02)  # the ticker wakes at least once after the clients: a loop blocked
        tick.kill()         # while they ran shows as one long gap
        assert all(c.dead for c in clients), "a stream hung"
    assert len(results) == 9
    # The payload crossed the bound: SPOP status 3 on the connection (256+3)
    # for the streams that had a frame on it; none succeeds.
    assert 259 in {int(r.status) for r in results}
    assert not any(r.ok for r in results)
    assert all(r.timings.process <= 1500 for r in results)  # timeout processing + 0.5 s
    # Generous: each refusal costs milliseconds now, half a second before.
    assert gaps and max(gaps) < 0.3, max(gaps)


def test_the_engine_options_bound_an_ack_below_the_defaults():
    # 100 set-vars of ~14 bytes each, cut in fragments: about 1.4 KiB reassembled.
    actions = {"*": lambda _m: [SetVar(VarScope.TXN, f"var{i:03}", i) for i in range(100)]}
    with FakeAgent(actions, fault="fragment") as agent:
        with make_engine(agent.address) as engine:
            result = engine.process_event(engine.new_stream(samples()), EVENT)
            assert result.ok and len(result.vars_set) == 100  # within the default bounds
        with make_engine(agent.address, max_ack_size=1024) as engine:
            result = engine.process_event(engine.new_stream(samples()), EVENT)
            assert int(result.status) == 256 + 3, result  # frame too big: the reassembly bound
        with make_engine(agent.address, max_ack_actions=10) as engine:
            result = engine.process_event(engine.new_stream(samples()), EVENT)
            assert result.ok and len(result.vars_set) == 10
            assert [d.reason for d in result.dropped_vars] == ["too-many-actions"]


def test_the_ack_bounds_must_be_positive_integers():
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="max_ack_size"):
            make_engine("127.0.0.1:1", max_ack_size=bad)
