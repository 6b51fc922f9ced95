"""The sans-IO EngineConnection against a tiny agent built from the codec:
the HELLO handshake (SPOE.txt §3.2.3-3.2.5), NOTIFY/ACK in sync, pipelining and
async modes with HAProxy's ACK matching (docs/explanation/haproxy-behaviour.md §2.3),
fragmented NOTIFY out and fragmented ACK in (§2.4, SPOE.txt §3.2 "fragmentation"),
ABORT, abandon(), DISCONNECT both ways with HAProxy's reason texts (§1.3,
SPOE.txt §3.2.8-3.2.9), EOF, and hostile byte streams.  (HELLO and DISCONNECT
bytes against HAProxy's captures: test_hello.py.)
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spoe_sync.errors import LocalProtocolError, RemoteProtocolError
from spoe_sync.protocol import (
    FLAG_ABORT,
    FLAG_FIN,
    Ack,
    AgentDisconnect,
    AgentHello,
    Fragment,
    Frame,
    HaproxyDisconnect,
    Message,
    Notify,
    SetVar,
    UInt32,
    UnsetVar,
    VarScope,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_messages,
    encode_raw_frame,
)
from spoe_sync.protocol.connection import (
    NEED_DATA,
    AckReceived,
    AgentDisconnected,
    ConnectionClosed,
    ConnectionState,
    EngineConnection,
    HelloDone,
)

CAPABILITIES = {"sync": "", "pipelining": "pipelining", "async": "pipelining,async"}


class Agent:
    """The agent side, built from the codec only: it splits what the engine
    writes into frames, decodes them, and builds its answers."""

    def __init__(self) -> None:
        self.received: list[Frame] = []
        self._pending = b""

    def take(self, data: bytes | list[bytes]) -> list[Frame]:
        """Frames in ``data`` (bytes or a list of frames as the engine returns them)."""
        self._pending += b"".join(data) if isinstance(data, list) else data
        out = []
        for _ in range(10_000):
            if len(self._pending) < 4:
                break
            size = int.from_bytes(self._pending[:4], "big")
            if len(self._pending) < 4 + size:
                break
            raw, self._pending = self._pending[: 4 + size], self._pending[4 + size:]
            out.append(decode_frame(raw))
        self.received += out
        return out

    def notify_messages(self, frames: list[Frame]) -> tuple[int, int, tuple[Message, ...]]:
        """Put a fragmented NOTIFY back together, as an agent that announced
        fragmentation would."""
        assert all(isinstance(f, Fragment) for f in frames)
        payload = b"".join(f.payload for f in frames)  # type: ignore[union-attr]
        notify = decode_payload(3, payload, stream_id=frames[0].stream_id, frame_id=frames[0].frame_id)
        assert isinstance(notify, Notify)
        return notify.stream_id, notify.frame_id, notify.messages

    @staticmethod
    def hello(capabilities: str | None = "pipelining,async", max_frame_size: int = 16380,
              version: str = "2.0") -> bytes:
        items: list[tuple[str, object]] = [("version", version), ("max-frame-size", UInt32(max_frame_size))]
        if capabilities is not None:
            items.append(("capabilities", capabilities))
        return encode_frame(AgentHello(tuple(items)))  # type: ignore[arg-type]

    @staticmethod
    def ack(sid: int, fid: int, *actions: SetVar | UnsetVar, flags: int = FLAG_FIN) -> bytes:
        return encode_frame(Ack(sid, fid, tuple(actions), flags))

    @staticmethod
    def disconnect(status: int = 0, message: str | None = None) -> bytes:
        return encode_frame(AgentDisconnect.make(status, message))


class ConnectionPair:
    """An EngineConnection wired to an :class:`Agent` through a fake network
    (h11's ConnectionPair)."""

    def __init__(self, mode: str = "async", **options: object) -> None:
        self.conn = EngineConnection(**options)  # type: ignore[arg-type]
        self.agent = Agent()
        self.hello = self.agent.take(self.conn.initiate())[0]
        self.mode = mode

    def handshake(self, capabilities: str | None = None, max_frame_size: int = 16380) -> HelloDone:
        caps = CAPABILITIES[self.mode] if capabilities is None else capabilities
        events = self.to_engine(Agent.hello(caps, max_frame_size))
        assert len(events) == 1 and isinstance(events[0], HelloDone)
        return events[0]

    def to_engine(self, data: bytes) -> list[object]:
        """Feed the engine and drain its events up to NEED_DATA / ConnectionClosed."""
        self.conn.receive_data(data)
        events: list[object] = []
        for _ in range(1000):
            event = self.conn.next_event()
            if event is NEED_DATA:
                return events
            events.append(event)
            if isinstance(event, (ConnectionClosed, AgentDisconnected)):
                return events
        raise AssertionError("next_event() never returned NEED_DATA")

    def notify(self, sid: int, fid: int, *messages: Message) -> list[Frame]:
        frames = self.conn.send_notify(sid, fid, encode_messages(messages))
        return self.agent.take(frames)


def ready(mode: str = "async", **options: object) -> ConnectionPair:
    pair = ConnectionPair(mode, **options)
    pair.handshake()
    return pair


MSG = Message("check-client-ip", (("ip", "192.0.2.7"),))
SCORE = SetVar(VarScope.SESS, "score", 87)


# --------------------------------------------------------------------------- HELLO


@pytest.mark.parametrize("mode", ["sync", "pipelining", "async"])
def test_handshake_in_each_mode(mode):
    pair = ConnectionPair(mode)
    assert pair.conn.state is ConnectionState.HELLO_SENT
    assert pair.conn.mode is None
    done = pair.handshake(max_frame_size=4000)
    assert (done.mode, done.max_frame_size, done.fragmentation) == (mode, 4000, False)
    assert (pair.conn.state, pair.conn.mode, pair.conn.max_frame_size) == (ConnectionState.READY, mode, 4000)
    assert done.hello == pair.conn.agent_hello


def test_hello_split_over_many_reads():
    pair = ConnectionPair()
    data = Agent.hello()
    for byte in data[:-1]:
        assert pair.to_engine(bytes([byte])) == []
    (done,) = pair.to_engine(data[-1:])
    assert isinstance(done, HelloDone)


def test_misuse_is_a_local_error():
    conn = EngineConnection()
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send_notify(1, 1, b"")
    with pytest.raises(LocalProtocolError):
        conn.disconnect()
    conn.initiate()
    with pytest.raises(LocalProtocolError):
        conn.initiate()
    with pytest.raises(LocalProtocolError):
        conn.send_notify(1, 1, b"")  # before HelloDone
    with pytest.raises(LocalProtocolError) as info:
        EngineConnection(max_frame_size=255)
    assert info.value.status == 9


@pytest.mark.parametrize("status, text", [
    pytest.param(0, "normal", id="0"),
    pytest.param(2, "a timeout occurred", id="2"),
    pytest.param(10, "fragmentation not supported", id="10_observed_not_spoe_txt"),
    pytest.param(12, "frame-id not found", id="12"),
    pytest.param(13, "resource allocation error", id="13"),
    pytest.param(42, "an unknown error occurred", id="unknown"),
])
def test_disconnect_carries_haproxys_reason(status, text):
    pair = ready()
    (frame,) = pair.agent.take(pair.conn.disconnect(status))
    assert isinstance(frame, HaproxyDisconnect)
    assert frame.items == (("status-code", status), ("message", text))
    assert type(frame.status_code) is UInt32
    assert pair.conn.disconnect_status == status


def test_agent_disconnect_during_hello():
    pair = ConnectionPair()
    (event,) = pair.to_engine(Agent.disconnect(99, "go away"))
    assert event == AgentDisconnected(99, "go away")
    assert pair.conn.state is ConnectionState.CLOSED
    assert pair.conn.agent_disconnect == event
    assert pair.to_engine(b"") == [ConnectionClosed()]


def test_eof_during_hello_and_mid_frame():
    pair = ConnectionPair()
    assert pair.to_engine(Agent.hello()[:10]) == []
    assert pair.to_engine(b"") == [ConnectionClosed(partial=10)]
    assert pair.conn.state is ConnectionState.CLOSED
    assert pair.conn.next_event() == ConnectionClosed()


# --------------------------------------------------------------------------- NOTIFY / ACK


def test_sync_mode_one_frame_at_a_time():
    pair = ready("sync")
    (notify,) = pair.notify(5, 1, MSG)
    assert isinstance(notify, Notify) and notify.messages == (MSG,)
    assert pair.conn.waiting == 1
    with pytest.raises(LocalProtocolError):
        pair.notify(6, 1, MSG)
    (event,) = pair.to_engine(Agent.ack(5, 1, SCORE))
    assert event == AckReceived(Ack(5, 1, (SCORE,)), matched=True)
    assert pair.conn.waiting == 0
    pair.notify(6, 1, MSG)


def test_sync_mode_unknown_frame_id_is_status_12():
    pair = ready("sync")
    pair.notify(5, 1, MSG)
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_engine(Agent.ack(5, 2))
    assert info.value.status == 12
    assert pair.conn.state is ConnectionState.ERROR
    with pytest.raises(LocalProtocolError):
        pair.notify(7, 1, MSG)
    with pytest.raises(RemoteProtocolError):
        pair.conn.next_event()
    (frame,) = pair.agent.take(pair.conn.disconnect(12))
    assert frame.message == "frame-id not found"  # type: ignore[union-attr]


def test_sync_mode_ack_after_abandon_is_ignored():
    pair = ready("sync")
    pair.notify(5, 1, MSG)
    assert pair.conn.abandon(5, 1) == b""
    assert pair.to_engine(Agent.ack(5, 1)) == []
    assert pair.conn.ignored_acks == 1
    assert pair.conn.state is ConnectionState.READY
    pair.notify(5, 1, MSG)  # HAProxy reuses the frame-id after an error


def test_pipelining_out_of_order_acks():
    pair = ready("pipelining")
    for fid in range(1, 6):
        pair.notify(100 + fid, fid, MSG)
    assert pair.conn.waiting == 5
    acks = b"".join(Agent.ack(100 + fid, fid, SetVar(VarScope.TXN, "n", fid)) for fid in (4, 2, 5, 1, 3))
    events = pair.to_engine(acks)
    assert [(e.ack.frame_id, e.matched, e.ack.actions[0].value) for e in events] == [  # type: ignore[attr-defined]
        (4, True, 4), (2, True, 2), (5, True, 5), (1, True, 1), (3, True, 3)]
    assert pair.conn.waiting == 0


def test_pipelining_unknown_ack_is_ignored():
    pair = ready("pipelining")
    pair.notify(1, 1, MSG)
    assert pair.to_engine(Agent.ack(1, 2) + Agent.ack(9, 1)) == []
    assert pair.conn.ignored_acks == 2
    assert pair.conn.waiting == 1
    assert pair.to_engine(Agent.ack(1, 1)) == [AckReceived(Ack(1, 1, ()), True)]


def test_async_unknown_ack_goes_up_unmatched():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    events = pair.to_engine(Agent.ack(2, 1, SCORE) + Agent.ack(1, 1))
    assert events == [AckReceived(Ack(2, 1, (SCORE,)), matched=False), AckReceived(Ack(1, 1, ()), True)]
    # An ACK answered on another connection: the engine forgets it here.
    pair.notify(3, 1, MSG)
    assert pair.conn.is_waiting(3, 1)
    pair.conn.abandon(3, 1)
    assert not pair.conn.is_waiting(3, 1)


def test_same_ids_twice_is_refused():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    with pytest.raises(LocalProtocolError):
        pair.notify(1, 1, MSG)


def test_abort_on_an_ordinary_ack_is_ignored():
    pair = ready("pipelining")
    pair.notify(1, 1, MSG)
    (event,) = pair.to_engine(Agent.ack(1, 1, SCORE, flags=FLAG_FIN | FLAG_ABORT))
    assert isinstance(event, AckReceived)
    assert (event.matched, event.fragmented, event.aborted, event.ack.actions) == (True, False, False, (SCORE,))


def test_unknown_and_unexpected_frames_are_skipped():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    junk = (encode_raw_frame(99, FLAG_FIN, 1, 1, b"whatever")
            + encode_frame(Notify(1, 1, (MSG,)))
            + Agent.hello()
            + (3).to_bytes(4, "big") + b"\x67\x00\x00")
    assert pair.to_engine(junk + Agent.ack(1, 1)) == [AckReceived(Ack(1, 1, ()), True)]
    assert pair.conn.ignored_frames == 4


def test_frame_over_the_negotiated_size_is_status_3():
    pair = ConnectionPair("async")
    pair.handshake(max_frame_size=300)
    pair.notify(1, 1, MSG)
    big = Agent.ack(1, 1, SetVar(VarScope.TXN, "blob", b"x" * 400))
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_engine(big)
    assert info.value.status == 3


def test_malformed_ack_is_status_4():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    bad = b"\x67\x00\x00\x00\x01\xf5\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_engine(len(bad).to_bytes(4, "big") + bad)
    assert info.value.status == 4


def test_healthcheck_takes_no_notify():
    pair = ConnectionPair("sync", healthcheck=True)
    assert pair.hello.healthcheck and pair.hello.engine_id is None  # type: ignore[union-attr]
    done = pair.handshake("pipelining,async")
    assert done.mode == "sync"
    with pytest.raises(LocalProtocolError):
        pair.notify(1, 1, MSG)
    assert pair.to_engine(b"") == [ConnectionClosed()]


def test_send_takes_frames():
    pair = ready("async")
    (frame,) = pair.agent.take(pair.conn.send(Notify(4, 2, (MSG,))))
    assert frame == Notify(4, 2, (MSG,))
    assert pair.conn.is_waiting(4, 2)
    (frame,) = pair.agent.take(pair.conn.send(HaproxyDisconnect.make(2)))
    assert frame == HaproxyDisconnect.make(2)
    with pytest.raises(LocalProtocolError):
        pair.conn.send(Ack(1, 1))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fragmentation


BIG = Message("req", (("hdrs", b"h" * 3000), ("path", "/" + "p" * 500), ("ip", "192.0.2.7")))


def test_fragmented_notify_when_the_agent_announced_fragmentation():
    pair = ConnectionPair("async", max_frame_size=16380)
    assert pair.handshake("async,fragmentation", max_frame_size=512).fragmentation
    assert pair.conn.agent_fragmentation
    frames = pair.notify(7, 3, BIG)
    assert len(frames) > 1
    assert all(isinstance(f, Fragment) for f in frames)
    assert [f.frame_type for f in frames] == [3] + [0] * (len(frames) - 1)  # type: ignore[union-attr]
    assert pair.agent.notify_messages(frames) == (7, 3, (BIG,))
    (event,) = pair.to_engine(Agent.ack(7, 3, SCORE))
    assert (event.matched, event.fragmented, event.aborted) == (True, True, False)  # type: ignore[attr-defined]


@pytest.mark.parametrize("capabilities, options", [
    pytest.param("async", {}, id="agent_without_fragmentation"),
    pytest.param("async,fragmentation", {"send_frag_payload": False}, id="send_frag_payload_off"),
])
def test_too_big_notify_without_fragmentation_is_local_status_3(capabilities, options):
    pair = ConnectionPair("async", **options)
    pair.handshake(capabilities, max_frame_size=512)
    with pytest.raises(LocalProtocolError) as info:
        pair.notify(7, 3, BIG)
    assert info.value.status == 3
    assert pair.conn.waiting == 0 and pair.conn.state is ConnectionState.READY
    pair.notify(7, 3, MSG)  # nothing was sent: the connection is still usable


def test_notify_exactly_at_the_limit_is_not_fragmented():
    pair = ConnectionPair("async")
    pair.handshake("async", max_frame_size=300)
    assert pair.conn.max_frame_size == 300
    payload = encode_messages([Message("m", (("v", b"x" * 250),))])
    frame_len = len(encode_raw_frame(3, FLAG_FIN, 1, 1, payload)) - 4
    padded = encode_messages([Message("m", (("v", b"x" * (250 + 300 - frame_len)),))])
    (frame,) = pair.conn.send_notify(1, 1, padded)
    assert len(frame) - 4 == 300
    with pytest.raises(LocalProtocolError):
        pair.conn.send_notify(2, 1, padded + b"\x00")


def test_ack_with_abort_on_a_fragmented_notify():
    pair = ConnectionPair("pipelining")
    pair.handshake("pipelining,fragmentation", max_frame_size=256)
    pair.notify(7, 3, BIG)
    (event,) = pair.to_engine(Agent.ack(7, 3, flags=FLAG_FIN | FLAG_ABORT))
    assert (event.matched, event.fragmented, event.aborted) == (True, True, True)  # type: ignore[attr-defined]
    assert pair.conn.waiting == 0


def test_abandon_mid_fragmentation_sends_fin_abort():
    pair = ConnectionPair("pipelining")
    pair.handshake("pipelining,fragmentation", max_frame_size=256)
    frames = pair.conn.send_notify(7, 3, encode_messages([BIG]))
    assert len(frames) > 3
    abort = pair.conn.abandon(7, 3, frames_written=2)
    (frame,) = pair.agent.take(abort)
    assert isinstance(frame, Fragment)
    assert (frame.frame_type, frame.flags, frame.stream_id, frame.frame_id, frame.payload) == (
        0, FLAG_FIN | FLAG_ABORT, 7, 3, b"")
    assert pair.conn.waiting == 0
    # All frames written, or an unfragmented NOTIFY: nothing to abort.
    pair.conn.send_notify(8, 1, encode_messages([BIG]))
    assert pair.conn.abandon(8, 1, frames_written=len(frames)) == b""
    pair.conn.send_notify(9, 1, encode_messages([MSG]))
    assert pair.conn.abandon(9, 1, frames_written=0) == b""
    assert pair.conn.abandon(404, 1) == b""
    assert pair.to_engine(Agent.ack(7, 3)) == []


def ack_fragments(sid: int, fid: int, payload: bytes, cuts: list[int], last_flags: int = FLAG_FIN) -> list[bytes]:
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        out.append(encode_raw_frame(103 if i == 0 else 0, last_flags if last else 0, sid, fid, piece))
    return out


ACTIONS = (SetVar(VarScope.TXN, "verdict", "x" * 700), UnsetVar(VarScope.SESS, "old"),
           SetVar(VarScope.REQ, "score", 12))


def test_fragmented_ack_is_reassembled():
    pair = ready("pipelining")
    pair.notify(1, 1, MSG)
    pair.notify(2, 1, MSG)
    payload = encode_frame(Ack(1, 1, ACTIONS))[11:]
    first, middle, last = ack_fragments(1, 1, payload, [5, 400])
    # A whole ACK of another frame between the fragments is fine.
    events = pair.to_engine(first + middle + Agent.ack(2, 1) + last)
    assert events == [AckReceived(Ack(2, 1, ()), True), AckReceived(Ack(1, 1, ACTIONS), True)]


def test_aborted_fragmented_ack():
    pair = ready("sync")
    pair.notify(1, 1, MSG)
    payload = encode_frame(Ack(1, 1, ACTIONS))[11:]
    frames = ack_fragments(1, 1, payload[:300], [100], last_flags=FLAG_FIN | FLAG_ABORT)
    (event,) = pair.to_engine(b"".join(frames))
    assert isinstance(event, AckReceived)
    assert (event.matched, event.aborted, event.ack.actions) == (True, True, ())


def test_interlaced_ack_fragments_are_status_11():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    payload = encode_frame(Ack(1, 1, ACTIONS))[11:]
    first, _ = ack_fragments(1, 1, payload, [50])
    other = encode_raw_frame(0, FLAG_FIN, 1, 2, b"")
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_engine(first + other)
    assert info.value.status == 11


def test_fragmented_ack_is_bounded():
    pair = ready("async", max_ack_size=1000)
    pair.notify(1, 1, MSG)
    frames = ack_fragments(1, 1, b"\x01" * 1500, [700])
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_engine(b"".join(frames))
    assert info.value.status == 3


# --------------------------------------------------------------------------- disconnect / EOF


def test_engine_disconnect_then_agent_reply():
    pair = ready("pipelining")
    pair.notify(1, 1, MSG)
    (frame,) = pair.agent.take(pair.conn.disconnect())
    assert frame == HaproxyDisconnect.make(0, "normal")
    assert pair.conn.state is ConnectionState.DISCONNECTING
    with pytest.raises(LocalProtocolError):
        pair.notify(2, 1, MSG)
    with pytest.raises(LocalProtocolError):
        pair.conn.disconnect()
    # "All other frames will be ignored" (SPOE.txt §3.2.8).
    events = pair.to_engine(Agent.ack(1, 1) + Agent.disconnect(0, "normal"))
    assert events == [AgentDisconnected(0, "normal")]
    assert pair.conn.waiting == 1  # the caller fails it
    assert pair.to_engine(b"") == [ConnectionClosed()]


def test_disconnect_after_a_framing_error_waits_for_eof():
    pair = ready("async")
    with pytest.raises(RemoteProtocolError):
        pair.to_engine((1 << 30).to_bytes(4, "big") + b"\x67" * 100)
    pair.conn.disconnect(3)
    assert pair.to_engine(b"") == [ConnectionClosed(partial=4)]
    assert pair.conn.state is ConnectionState.CLOSED


def test_agent_disconnect_while_frames_wait():
    pair = ready("sync")
    pair.notify(1, 1, MSG)
    (event,) = pair.to_engine(Agent.disconnect(99, "an unknown error occurred"))
    assert event == AgentDisconnected(99, "an unknown error occurred")
    assert pair.conn.waiting == 1
    assert pair.conn.state is ConnectionState.CLOSED
    assert pair.conn.next_event() == ConnectionClosed()


def test_agent_disconnect_with_odd_items():
    pair = ready("async")
    frame = encode_frame(AgentDisconnect((("message-x", "bye"), ("status-codes", UInt32(7)))))
    assert pair.to_engine(frame) == [AgentDisconnected(7, "bye")]
    pair = ready("async")
    bad = b"\x66\x00\x00\x00\x01\x00\x00\x0bstatus-code\x0a"
    assert pair.to_engine(len(bad).to_bytes(4, "big") + bad) == [AgentDisconnected(None, None)]


def test_eof_while_ready():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    assert pair.to_engine(Agent.ack(1, 1)) == [AckReceived(Ack(1, 1, ()), True)]
    assert pair.to_engine(b"") == [ConnectionClosed()]
    with pytest.raises(LocalProtocolError):
        pair.conn.receive_data(b"late")


# --------------------------------------------------------------------------- robustness


def drive(conn: EngineConnection, data: bytes, chunk: int) -> None:
    """Feed ``data`` in chunks and drain events; only RemoteProtocolError may escape."""
    for i in range(0, len(data), chunk):
        conn.receive_data(data[i:i + chunk])
        for _ in range(len(data) + 2):
            event = conn.next_event()
            if event is NEED_DATA or isinstance(event, (ConnectionClosed, AgentDisconnected)):
                break
        else:
            raise AssertionError("next_event() did not settle")
        if conn.state is ConnectionState.CLOSED:
            return


def valid_stream() -> bytes:
    payload = encode_frame(Ack(1, 1, ACTIONS))[11:]
    return b"".join([Agent.hello("pipelining,async,fragmentation", 1024), Agent.ack(1, 1, SCORE),
                     *ack_fragments(2, 1, payload, [10, 300]), Agent.disconnect(3, "x")])


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_streams_raise_only_remote_protocol_errors(data):
    stream = bytearray(valid_stream())
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        pos = data.draw(st.integers(0, len(stream) - 1), label="pos")
        stream[pos] = data.draw(st.integers(0, 255), label="byte")
    if data.draw(st.booleans(), label="truncate"):
        stream = stream[: data.draw(st.integers(0, len(stream)), label="cut")]
    conn = EngineConnection(max_frame_size=2048)
    conn.initiate()
    chunk = data.draw(st.sampled_from([1, 7, 64, 1 << 16]), label="chunk")
    try:
        drive(conn, bytes(stream), chunk)
        if conn.state is not ConnectionState.CLOSED:
            conn.receive_data(b"")
            assert isinstance(conn.next_event(), ConnectionClosed)
    except RemoteProtocolError as exc:
        assert 1 <= exc.status <= 13
        assert conn.state is ConnectionState.ERROR
        conn.disconnect(exc.status)


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=300))
def test_random_bytes_after_the_handshake(junk):
    pair = ready("async")
    try:
        drive(pair.conn, junk, 1 << 16)
    except RemoteProtocolError as exc:
        assert exc.status in (3, 4, 11)
