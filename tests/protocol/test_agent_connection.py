"""The sans-IO AgentConnection (the agent end of SPOP) against EngineConnection
as its peer: the HELLO handshake in every mode and in health checks (SPOE.txt
§3.2.3-3.2.5), NOTIFY/ACK with pipelining and async (§3.2.1), fragmented NOTIFY
reassembly and fragmented ACKs (§3.2 "fragmentation"), DISCONNECT both ways
(§3.2.8-3.2.9), EOF, and malformed input giving the right SPOP status (§3.5).

The AGENT-HELLO bytes are compared with frames built by the conformance
harness's independent SPOP writer.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spoe_sync.errors import LocalProtocolError, RemoteProtocolError
from spoe_sync.protocol import (
    FLAG_FIN,
    NEED_DATA,
    Ack,
    AckReceived,
    AgentConnection,
    AgentConnectionState,
    AgentDisconnected,
    ConnectionClosed,
    EngineConnection,
    FrameType,
    HaproxyDisconnected,
    HaproxyHello,
    HaproxyHelloReceived,
    HelloDone,
    Int64,
    Message,
    NotifyReceived,
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
from spoe_sync.protocol.fragments import Reassembler
from tests.conformance.harness import agent_hello, frame, kv_string, kv_uint32, spop_string

PAYLOAD = encode_messages([Message("get-ip-reputation", (("ip", "192.0.2.1"),))])


def handshake(engine: EngineConnection, agent: AgentConnection,
              capabilities: tuple[str, ...] = ("pipelining", "async"),
              max_frame_size: int | None = None) -> tuple[HaproxyHelloReceived, HelloDone]:
    agent.receive_data(engine.initiate())
    received = agent.next_event()
    assert isinstance(received, HaproxyHelloReceived)
    engine.receive_data(agent.hello(capabilities, max_frame_size))
    done = engine.next_event()
    assert isinstance(done, HelloDone)
    return received, done


def status_of(data: bytes, agent: AgentConnection | None = None) -> int:
    """The status next_event() raises for ``data`` fed to a fresh agent."""
    agent = agent or AgentConnection()
    agent.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        agent.next_event()
    return info.value.status


# --------------------------------------------------------------------------- handshake


@pytest.mark.parametrize(("engine_caps", "agent_caps", "mode"), [
    pytest.param((True, True), ("pipelining", "async"), "async", id="both-async"),
    pytest.param((True, False), ("pipelining", "async"), "pipelining", id="engine-no-async"),
    pytest.param((False, True), ("pipelining", "async"), "async", id="engine-async-only"),
    pytest.param((True, True), ("pipelining",), "pipelining", id="agent-pipelining-only"),
    pytest.param((True, True), (), "sync", id="agent-nothing"),
    pytest.param((False, False), ("pipelining", "async"), "sync", id="engine-nothing"),
])
def test_handshake_modes(engine_caps: tuple[bool, bool], agent_caps: tuple[str, ...],
                         mode: str) -> None:
    engine = EngineConnection(pipelining=engine_caps[0], async_=engine_caps[1], engine_id="e-1")
    agent = AgentConnection()
    received, done = handshake(engine, agent, agent_caps)
    assert received.engine_id == "e-1" and not received.healthcheck
    assert received.capabilities == frozenset(
        c for c, on in zip(("pipelining", "async"), engine_caps) if on)
    assert done.mode == agent.mode == mode
    assert agent.state is AgentConnectionState.READY


@pytest.mark.parametrize(("engine_size", "agent_size", "expected"), [
    pytest.param(1024, 4096, 1024, id="engine-smaller"),
    pytest.param(16380, 512, 512, id="agent-smaller"),
    pytest.param(256, 256, 256, id="minimum"),
])
def test_handshake_max_frame_size(engine_size: int, agent_size: int, expected: int) -> None:
    engine = EngineConnection(max_frame_size=engine_size)
    agent = AgentConnection(agent_size)
    received, done = handshake(engine, agent)
    assert received.max_frame_size == engine_size
    assert done.max_frame_size == agent.max_frame_size == expected


def test_agent_hello_bytes_are_spop() -> None:
    engine = EngineConnection(max_frame_size=4096)
    agent = AgentConnection(8192)
    agent.receive_data(engine.initiate())
    agent.next_event()
    assert agent.hello(("async", "pipelining")) == agent_hello("2.0", 4096, "pipelining,async")


def test_fragmentation_is_announced_only_when_configured() -> None:
    for caps, expected in ((("pipelining",), "pipelining"),
                           (("pipelining", "fragmentation"), "pipelining,fragmentation")):
        engine = EngineConnection(async_=False)
        _, done = handshake(engine, AgentConnection(), caps)
        assert done.hello.capabilities == expected
        assert done.fragmentation == ("fragmentation" in caps)


def test_healthcheck_hello_is_answered_with_our_capabilities() -> None:
    engine = EngineConnection(healthcheck=True)
    agent = AgentConnection()
    received, done = handshake(engine, agent, ("pipelining", "async"))
    assert received.healthcheck and received.engine_id is None
    assert received.capabilities == frozenset()
    assert done.hello.capabilities == "pipelining,async"


def test_hello_versions_list_accepts_any_2x() -> None:
    hello = HaproxyHello.make(supported_versions=" 1.5 , 2.3 ")
    agent = AgentConnection()
    agent.receive_data(encode_frame(hello))
    event = agent.next_event()
    assert isinstance(event, HaproxyHelloReceived) and event.versions == " 1.5 , 2.3 "


def test_nothing_is_read_before_the_hello_is_answered() -> None:
    engine = EngineConnection()
    agent = AgentConnection()
    agent.receive_data(engine.initiate() + encode_raw_frame(3, FLAG_FIN, 1, 1, PAYLOAD))
    assert isinstance(agent.next_event(), HaproxyHelloReceived)
    assert agent.next_event() is NEED_DATA
    agent.hello()
    assert isinstance(agent.next_event(), NotifyReceived)


# --------------------------------------------------------------------------- NOTIFY / ACK


def test_pipelined_acks_in_any_order() -> None:
    engine = EngineConnection(async_=False)
    agent = AgentConnection()
    handshake(engine, agent)
    for fid in (1, 2, 3):
        for data in engine.send_notify(7, fid, PAYLOAD):
            agent.receive_data(data)
    received = [agent.next_event() for _ in range(3)]
    assert [e.frame_id for e in received if isinstance(e, NotifyReceived)] == [1, 2, 3]
    assert agent.pending == 3
    for fid in (3, 1, 2):
        engine.receive_data(agent.ack(7, fid, [SetVar(VarScope.TXN, "n", fid)]))
        event = engine.next_event()
        assert isinstance(event, AckReceived) and event.matched
        assert event.ack.frame_id == fid
        assert event.ack.actions == (SetVar(VarScope.TXN, "n", Int64(fid)),)
    assert agent.pending == 0 and engine.waiting == 0


def test_ack_outside_async_must_answer_a_notify_received_here() -> None:
    engine = EngineConnection(async_=False)
    agent = AgentConnection()
    handshake(engine, agent)
    with pytest.raises(LocalProtocolError) as info:
        agent.ack(1, 1)
    assert info.value.status == 12


def test_async_ack_may_answer_a_notify_of_another_connection() -> None:
    first, second = EngineConnection(engine_id="e"), EngineConnection(engine_id="e")
    agent_a, agent_b = AgentConnection(), AgentConnection()
    handshake(first, agent_a)
    handshake(second, agent_b)
    for data in first.send_notify(1, 1, PAYLOAD):
        agent_a.receive_data(data)
    assert isinstance(agent_a.next_event(), NotifyReceived)
    second.receive_data(agent_b.ack(1, 1, [UnsetVar(VarScope.SESS, "x")]))
    event = second.next_event()
    assert isinstance(event, AckReceived) and not event.matched
    assert event.ack.actions == (UnsetVar(VarScope.SESS, "x"),)
    agent_a.forget(1, 1)
    assert agent_a.pending == 0


def test_fragmented_notify_is_reassembled() -> None:
    engine = EngineConnection(max_frame_size=1024)
    agent = AgentConnection(1024)
    handshake(engine, agent, ("pipelining", "async", "fragmentation"))
    big = Message("get-ip-reputation", (("ip", "192.0.2.1"), ("body", b"x" * 5000)))
    frames = engine.send_notify(3, 9, encode_messages([big]))
    assert len(frames) > 4
    wire = b"".join(frames)
    events = []
    for i in range(0, len(wire), 97):  # arbitrary chunking
        agent.receive_data(wire[i:i + 97])
        while (event := agent.next_event()) is not NEED_DATA:
            events.append(event)
    assert len(events) == 1 and isinstance(events[0], NotifyReceived)
    assert events[0].fragments == len(frames)
    assert events[0].messages == (big,)
    engine.receive_data(agent.ack(3, 9))
    assert isinstance(engine.next_event(), AckReceived)


def test_aborted_fragmented_notify_is_dropped() -> None:
    engine = EngineConnection(max_frame_size=512)
    agent = AgentConnection(512)
    handshake(engine, agent, ("pipelining", "fragmentation"))
    frames = engine.send_notify(1, 1, encode_messages([Message("m", (("b", b"y" * 2000),))]))
    agent.receive_data(frames[0])
    agent.receive_data(engine.abandon(1, 1, frames_written=1))
    assert agent.next_event() is NEED_DATA
    assert agent.ignored_frames == 1 and agent.pending == 0
    for data in engine.send_notify(1, 2, PAYLOAD):
        agent.receive_data(data)
    event = agent.next_event()
    assert isinstance(event, NotifyReceived) and event.frame_id == 2


def test_big_ack_is_fragmented_when_the_engine_can_take_it() -> None:
    hello = HaproxyHello.make(max_frame_size=256, capabilities="pipelining,async,fragmentation",
                              engine_id="e")
    agent = AgentConnection()
    agent.receive_data(encode_frame(hello))
    agent.next_event()
    agent.hello()
    agent.receive_data(encode_raw_frame(FrameType.NOTIFY, FLAG_FIN, 5, 6, PAYLOAD))
    agent.next_event()
    actions = [SetVar(VarScope.TXN, "blob", "z" * 1000)]
    data = agent.ack(5, 6, actions)
    reassembler, done, count, pos = Reassembler(1 << 20), None, 0, 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        assert size <= 256
        done = reassembler.feed(decode_frame(data[pos:pos + 4 + size]))
        pos += 4 + size
        count += 1
    assert count > 1 and done is not None
    ack = decode_payload(FrameType.ACK, done.payload, stream_id=5, frame_id=6)
    assert isinstance(ack, Ack) and ack.actions == tuple(actions)


def test_big_ack_without_engine_fragmentation_is_refused() -> None:
    engine = EngineConnection(max_frame_size=256)
    agent = AgentConnection()
    handshake(engine, agent)
    for data in engine.send_notify(1, 1, PAYLOAD):
        agent.receive_data(data)
    agent.next_event()
    with pytest.raises(LocalProtocolError) as info:
        agent.ack(1, 1, [SetVar(VarScope.TXN, "blob", "z" * 1000)])
    assert info.value.status == 3
    engine.receive_data(agent.ack(1, 1))  # still pending: an empty ACK goes out
    assert isinstance(engine.next_event(), AckReceived)


def test_unknown_frame_types_are_skipped() -> None:
    engine = EngineConnection()
    agent = AgentConnection()
    handshake(engine, agent)
    agent.receive_data(encode_raw_frame(42, FLAG_FIN, 0, 0, b"whatever"))
    for data in engine.send_notify(1, 1, PAYLOAD):
        agent.receive_data(data)
    assert isinstance(agent.next_event(), NotifyReceived)
    assert agent.ignored_frames == 1


# --------------------------------------------------------------------------- disconnect / EOF


def test_engine_disconnect() -> None:
    engine = EngineConnection()
    agent = AgentConnection()
    handshake(engine, agent)
    agent.receive_data(engine.disconnect(2))
    event = agent.next_event()
    assert event == HaproxyDisconnected(2, "a timeout occurred")
    engine.receive_data(agent.disconnect(0))
    assert engine.next_event() == AgentDisconnected(0, "normal")
    assert isinstance(agent.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        agent.disconnect(0)


def test_engine_disconnect_before_hello() -> None:
    agent = AgentConnection()
    agent.receive_data(frame(2, kv_uint32("status-code", 1) + kv_string("message", "bye")))
    assert agent.next_event() == HaproxyDisconnected(1, "bye")
    assert agent.state is AgentConnectionState.DISCONNECTING


def test_agent_disconnect_reaches_the_engine() -> None:
    engine = EngineConnection()
    agent = AgentConnection()
    handshake(engine, agent)
    engine.receive_data(agent.disconnect(13, "out of memory"))
    assert engine.next_event() == AgentDisconnected(13, "out of memory")
    assert agent.state is AgentConnectionState.CLOSED


def test_eof() -> None:
    engine = EngineConnection()
    agent = AgentConnection()
    handshake(engine, agent)
    agent.receive_data(b"\x00\x00")
    agent.receive_data(b"")
    event = agent.next_event()
    assert isinstance(event, ConnectionClosed) and event.partial == 2


# --------------------------------------------------------------------------- malformed input


def _hello(*items: bytes, flags: int = FLAG_FIN, ids: tuple[int, int] = (0, 0)) -> bytes:
    return frame(1, b"".join(items), ids[0], ids[1], flags)


VERSIONS = kv_string("supported-versions", "2.0")
SIZE = kv_uint32("max-frame-size", 16380)
CAPS = kv_string("capabilities", "pipelining,async")


@pytest.mark.parametrize(("data", "status"), [
    pytest.param(encode_raw_frame(3, FLAG_FIN, 1, 1, PAYLOAD), 4, id="notify-before-hello"),
    pytest.param(agent_hello(), 4, id="agent-hello-from-engine"),
    pytest.param(_hello(VERSIONS, SIZE, CAPS, flags=0), 10, id="hello-without-fin"),
    pytest.param(_hello(VERSIONS, SIZE, CAPS, ids=(1, 0)), 4, id="hello-with-stream-id"),
    pytest.param(_hello(SIZE, CAPS), 5, id="no-supported-versions"),
    pytest.param(_hello(kv_string("supported-versions", "1.0"), SIZE, CAPS), 8, id="version-1.0"),
    pytest.param(_hello(kv_string("supported-versions", "two"), SIZE, CAPS), 8, id="version-text"),
    pytest.param(_hello(spop_string("supported-versions") + b"\x03\x02", SIZE, CAPS), 4,
                 id="version-not-string"),
    pytest.param(_hello(VERSIONS, CAPS), 6, id="no-max-frame-size"),
    pytest.param(_hello(VERSIONS, kv_uint32("max-frame-size", 100), CAPS), 9, id="frame-size-100"),
    pytest.param(_hello(VERSIONS, kv_string("max-frame-size", "16380"), CAPS), 4,
                 id="frame-size-string"),
    pytest.param(_hello(VERSIONS, SIZE), 7, id="no-capabilities"),
    pytest.param(_hello(VERSIONS, SIZE, CAPS, kv_string("healthcheck", "yes")), 4,
                 id="healthcheck-string"),
    pytest.param(_hello(VERSIONS, SIZE, CAPS, kv_uint32("engine-id", 1)), 4, id="engine-id-int"),
    pytest.param(_hello(VERSIONS, SIZE, CAPS + b"\x08\xff"), 4, id="truncated-item"),
    pytest.param(b"\x00\x01\x00\x00" + b"\x01" * 32, 3, id="frame-over-max-frame-size"),
    pytest.param(b"\x00\x00\x00\x03\x01\x00\x00", 4, id="frame-shorter-than-header"),
])
def test_bad_hello_status(data: bytes, status: int) -> None:
    assert status_of(data) == status


def _ready(caps: tuple[str, ...] = ("pipelining", "async"), **engine: bool) -> AgentConnection:
    agent = AgentConnection(1024)
    handshake(EngineConnection(max_frame_size=1024, **engine), agent, caps)
    return agent


@pytest.mark.parametrize(("caps", "engine", "data", "status"), [
    pytest.param((), {}, encode_raw_frame(3, 0, 1, 1, PAYLOAD), 10,
                 id="fragment-without-fragmentation"),
    pytest.param(("fragmentation",), {}, encode_raw_frame(0, FLAG_FIN, 1, 1, b""), 11,
                 id="continuation-without-start"),
    pytest.param(("fragmentation",), {}, encode_raw_frame(3, 0, 1, 1, b"a")
                 + encode_raw_frame(3, 0, 2, 1, b"b"), 11, id="interlaced-fragments"),
    pytest.param((), {}, encode_raw_frame(3, FLAG_FIN, 1, 1, b"\x05ab"), 4, id="malformed-notify"),
    pytest.param((), {}, encode_frame(HaproxyHello.make()), 4, id="second-hello"),
    pytest.param((), {}, encode_raw_frame(103, FLAG_FIN, 1, 1, b""), 4, id="ack-from-engine"),
    pytest.param((), {}, b"\x00\x00\x04\x01" + b"\x03" * 8, 3, id="over-negotiated-size"),
    pytest.param(("pipelining",), {}, encode_raw_frame(3, FLAG_FIN, 1, 1, PAYLOAD) * 2, 4,
                 id="same-ids-twice"),
    pytest.param((), {}, encode_raw_frame(3, FLAG_FIN, 1, 1, PAYLOAD)
                 + encode_raw_frame(3, FLAG_FIN, 1, 2, PAYLOAD), 4, id="sync-second-notify"),
])
def test_bad_frame_after_handshake_status(caps: tuple[str, ...], engine: dict[str, bool],
                                          data: bytes, status: int) -> None:
    agent = _ready(caps, **engine)
    agent.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        while agent.next_event() is not NEED_DATA:
            pass
    assert info.value.status == status
    # The error sticks, and the AGENT-DISCONNECT carries it.
    with pytest.raises(RemoteProtocolError):
        agent.next_event()
    reply = decode_frame(agent.disconnect(info.value.status))
    assert reply.items[0] == ("status-code", UInt32(status))  # type: ignore[union-attr]


def test_local_misuse() -> None:
    agent = AgentConnection()
    with pytest.raises(LocalProtocolError):
        agent.hello()
    with pytest.raises(LocalProtocolError):
        agent.ack(1, 1)
    with pytest.raises(LocalProtocolError):
        AgentConnection(100)
    agent.receive_data(EngineConnection().initiate())
    agent.next_event()
    with pytest.raises(LocalProtocolError):
        agent.hello(max_frame_size=1 << 20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_give_an_event_or_a_status(data: bytes, after_hello: bool) -> None:
    agent = _ready(("pipelining", "fragmentation")) if after_hello else AgentConnection(1024)
    agent.receive_data(data)
    agent.receive_data(b"")
    try:
        for _ in range(100):
            event = agent.next_event()
            if isinstance(event, ConnectionClosed):
                break
            if isinstance(event, HaproxyHelloReceived):
                agent.hello()
            assert event is not NEED_DATA
    except RemoteProtocolError as exc:
        assert 1 <= exc.status <= 13

