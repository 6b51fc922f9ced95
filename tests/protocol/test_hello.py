"""AGENT-HELLO validation and capability negotiation (SPOE.txt §3.2.5, §3.2.1),
row by row against docs/explanation/haproxy-behaviour.md §1.2 (HAProxy 2.6's
``spoe_handle_agenthello_frame()``): every refused AGENT-HELLO with the status
HAProxy sends, and the odd ones HAProxy accepts.

The frames go through the whole engine connection as bytes (receive buffer,
header checks, codec, negotiation), as they would from a socket.  Our
HAPROXY-HELLO (SPOE.txt §3.2.4) and HAPROXY-DISCONNECT (§3.2.8) are compared
byte for byte with frames captured from HAProxy 2.6 (tests/golden/).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from spoe_sync.errors import RemoteProtocolError
from spoe_sync.protocol import (
    FLAG_FIN,
    Int32,
    Int64,
    UInt32,
    UInt64,
    decode_frame,
    encode_frame,
    encode_value,
)
from spoe_sync.protocol.connection import AgentDisconnected, EngineConnection, HelloDone
from spoe_sync.protocol.frames import AgentDisconnect, AgentHello, HaproxyHello
from spoe_sync.protocol.hello import negotiate, parse_capabilities, parse_version, select_mode


def name(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    assert len(raw) < 240
    return bytes([len(raw)]) + raw


def kv(key: str | bytes, value: object) -> bytes:
    return name(key) + encode_value(value)  # type: ignore[arg-type]


REST = kv("max-frame-size", UInt32(16380)) + kv("capabilities", "pipelining,async")
GOOD = kv("version", "2.0") + REST


def hello_frame(payload: bytes = GOOD, *, frame_type: int = 101, flags: int = FLAG_FIN,
                ids: bytes = b"\x00\x00") -> bytes:
    body = bytes([frame_type]) + flags.to_bytes(4, "big") + ids + payload
    return len(body).to_bytes(4, "big") + body


def handshake(frame: bytes, **options: object) -> HelloDone:
    conn = EngineConnection(**options)  # type: ignore[arg-type]
    conn.initiate()
    conn.receive_data(frame)
    event = conn.next_event()
    assert isinstance(event, HelloDone), event
    assert conn.state.name == "READY"
    return event


def refused(frame: bytes, **options: object) -> int:
    conn = EngineConnection(**options)  # type: ignore[arg-type]
    conn.initiate()
    conn.receive_data(frame)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert conn.state.name == "ERROR"
    # Only disconnect() is allowed now; it carries HAProxy's reason text.
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    conn.disconnect(info.value.status)
    assert conn.state.name == "DISCONNECTING"
    return info.value.status


# One row per line of the table in docs/explanation/haproxy-behaviour.md §1.2.
REFUSED = [
    pytest.param(hello_frame(frame_type=103), 4, id="type_not_101"),
    pytest.param(hello_frame(frame_type=3), 4, id="type_notify"),
    pytest.param(len(b"\x65\x00\x00\x00\x01\x00").to_bytes(4, "big") + b"\x65\x00\x00\x00\x01\x00",
                 4, id="fewer_than_7_bytes"),
    pytest.param(b"\x00\x00\x00\x00", 4, id="empty_frame"),
    pytest.param(hello_frame(flags=0), 10, id="fin_not_set"),
    pytest.param(hello_frame(flags=2), 10, id="abort_without_fin"),
    pytest.param(hello_frame(ids=b"\x01\x00"), 4, id="stream_id_not_zero"),
    pytest.param(hello_frame(ids=b"\x00\x05"), 4, id="frame_id_not_zero"),
    pytest.param(hello_frame(GOOD + b"\x20abc"), 4, id="key_cannot_be_decoded"),
    pytest.param(hello_frame(kv("", "x") + GOOD), 4, id="zero_length_key"),
    pytest.param(hello_frame(kv("version", b"2.0") + REST), 4, id="version_not_string"),
    pytest.param(hello_frame(kv("version", 2) + REST), 4, id="version_int"),
    pytest.param(hello_frame(kv("version", "2") + REST), 8, id="version_without_minor"),
    pytest.param(hello_frame(kv("version", "1.0") + REST), 8, id="version_1_0"),
    pytest.param(hello_frame(kv("version", "2.1") + REST), 8, id="version_2_1"),
    pytest.param(hello_frame(kv("version", "3.0") + REST), 8, id="version_3_0"),
    pytest.param(hello_frame(kv("version", "2.0.1") + REST), 8, id="version_2_0_1"),
    pytest.param(hello_frame(kv("version", "") + REST), 8, id="version_empty"),
    pytest.param(hello_frame(kv("version", "0.2000") + REST), 8, id="version_major_zero"),
    pytest.param(hello_frame(kv("version", "2.1000") + REST), 8, id="version_minor_over_999"),
    pytest.param(hello_frame(kv("version", "v2.0") + REST), 8, id="version_letter"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("max-frame-size", "16380")
                             + kv("capabilities", "")), 4, id="max_frame_size_string"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("max-frame-size", True)
                             + kv("capabilities", "")), 4, id="max_frame_size_bool"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("max-frame-size", UInt32(255))
                             + kv("capabilities", "")), 9, id="max_frame_size_255"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("max-frame-size", UInt32(0))
                             + kv("capabilities", "")), 9, id="max_frame_size_zero"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("max-frame-size", UInt32(16381))
                             + kv("capabilities", "")), 9, id="max_frame_size_over_announced"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("max-frame-size", Int64(-1))
                             + kv("capabilities", "")), 9, id="max_frame_size_negative"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("max-frame-size", UInt32(16380))
                             + kv("capabilities", 7)), 4, id="capabilities_not_string"),
    pytest.param(hello_frame(GOOD + name("x-unknown") + b"\x0a"), 4, id="unknown_key_unskippable"),
    pytest.param(hello_frame(GOOD + name("x-unknown") + b"\x08\x05ab"), 4,
                 id="unknown_key_truncated_string"),
    pytest.param(hello_frame(kv("max-frame-size", UInt32(16380)) + kv("capabilities", "")), 5,
                 id="no_version"),
    pytest.param(hello_frame(b""), 5, id="no_items"),
    pytest.param(hello_frame(kv("version", "2.0") + kv("capabilities", "async")), 6,
                 id="no_max_frame_size"),
]


@pytest.mark.parametrize("frame, status", REFUSED)
def test_refused_agent_hello_gets_haproxys_status(frame, status):
    assert refused(frame) == status


def test_max_frame_size_is_judged_against_what_we_announced():
    frame = hello_frame(kv("version", "2.0") + kv("max-frame-size", UInt32(2048)) + kv("capabilities", ""))
    assert refused(frame, max_frame_size=1024) == 9
    assert handshake(frame, max_frame_size=4096).max_frame_size == 2048


def test_oversized_hello_is_refused_before_its_body_arrives():
    conn = EngineConnection(max_frame_size=1024)
    conn.initiate()
    conn.receive_data((1025).to_bytes(4, "big") + b"\x65")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status == 3


ACCEPTED = [
    pytest.param(GOOD, "async", 16380, False, id="plain"),
    pytest.param(kv("versionfoo", "2.0") + kv("max-frame-size-x", UInt32(4096))
                 + kv("capabilitiesZ", "pipelining"), "pipelining", 4096, False, id="keys_by_prefix"),
    pytest.param(kv("version", " 2.0 ") + kv("max-frame-size", UInt32(300)), "sync", 300, False,
                 id="version_spaces_and_no_capabilities"),
    pytest.param(kv("version", "\t02.0\n") + kv("max-frame-size", UInt32(256)) + kv("capabilities", ""),
                 "sync", 256, False, id="version_leading_zero_min_frame_size"),
    pytest.param(kv("version", "2.000") + kv("max-frame-size", Int32(1000))
                 + kv("capabilities", "async"), "async", 1000, False, id="version_2_000_int32_size"),
    pytest.param(kv("version", "2.0") + kv("max-frame-size", Int64(16380))
                 + kv("capabilities", " pipelining , fragmentation"), "pipelining", 16380, True,
                 id="int64_size_spaces_in_capabilities"),
    pytest.param(kv("version", "2.0") + kv("max-frame-size", UInt64(512))
                 + kv("capabilities", "pipelining async"), "pipelining", 512, False,
                 id="uint64_size_space_separated_capabilities"),
    pytest.param(kv("version", "2.0") + kv("max-frame-size", UInt32(512))
                 + kv("capabilities", "pipeliningX,ASYNC,fragmentation2"), "sync", 512, False,
                 id="capabilities_must_end_at_space_or_comma"),
    pytest.param(kv("capabilities", "async") + kv("max-frame-size", UInt32(512)) + kv("version", "2.0")
                 + kv("capabilities", "fragmentation"), "async", 512, True,
                 id="any_order_capabilities_add_up"),
    pytest.param(kv("x-agent", "coraza") + kv("x-bin", b"\x00\xff") + kv("x-ip", None) + GOOD,
                 "async", 16380, False, id="unknown_keys_skipped"),
    pytest.param(kv("version", "2.0") + kv("max-frame-size", UInt32(9000))
                 + kv("max-frame-size", UInt32(700)), "sync", 700, False, id="last_max_frame_size_wins"),
]


@pytest.mark.parametrize("payload, mode, size, fragmentation", ACCEPTED)
def test_accepted_agent_hello(payload, mode, size, fragmentation):
    event = handshake(hello_frame(payload))
    assert (event.mode, event.max_frame_size, event.fragmentation) == (mode, size, fragmentation)


@pytest.mark.parametrize("ours, agents, mode", [
    pytest.param((True, True), "pipelining,async", "async", id="both_async_wins"),
    pytest.param((True, False), "pipelining,async", "pipelining", id="no_async_option"),
    pytest.param((False, True), "pipelining,async", "async", id="no_pipelining_option"),
    pytest.param((False, False), "pipelining,async", "sync", id="no_options"),
    pytest.param((True, True), "pipelining", "pipelining", id="agent_pipelining_only"),
    pytest.param((True, True), "async", "async", id="agent_async_only"),
    pytest.param((True, True), "", "sync", id="agent_nothing"),
    pytest.param((True, False), "async", "sync", id="no_overlap"),
])
def test_mode_negotiation(ours, agents, mode):
    payload = kv("version", "2.0") + kv("max-frame-size", UInt32(16380)) + kv("capabilities", agents)
    conn = EngineConnection(pipelining=ours[0], async_=ours[1])
    conn.initiate()
    conn.receive_data(hello_frame(payload))
    assert conn.next_event().mode == mode
    assert conn.mode == mode


def test_healthcheck_negotiates_neither_pipelining_nor_async():
    event = handshake(hello_frame(GOOD), healthcheck=True)
    assert event.mode == "sync"


def test_negotiate_over_a_dataclass():
    hello = AgentHello.make(capabilities="fragmentation,async", max_frame_size=1024)
    result = negotiate(hello, max_frame_size=16380, pipelining=True, async_=False)
    assert (result.mode, result.max_frame_size, result.fragmentation, result.version) == (
        "sync", 1024, True, "2.0")


@pytest.mark.parametrize("text, value", [
    pytest.param("2.0", 2000, id="2.0"),
    pytest.param("02.0", 2000, id="leading_zero"),
    pytest.param("2.00", 2000, id="2.00"),
    pytest.param(" \t2.0\r\n", 2000, id="spaces"),
    pytest.param("10.999", 10999, id="10.999"),
    pytest.param("2", None, id="no_dot"),
    pytest.param("2.", None, id="no_minor"),
    pytest.param(".0", None, id="no_major"),
    pytest.param("0.5", None, id="major_zero"),
    pytest.param("2.1000", None, id="minor_too_big"),
    pytest.param("2.0.1", None, id="three_parts"),
    pytest.param("2 .0", None, id="space_inside"),
    pytest.param("\u0662.0", None, id="non_ascii_digit"),
    pytest.param("", None, id="empty"),
])
def test_parse_version(text, value):
    assert parse_version(text) == value


@pytest.mark.parametrize("text, found", [
    pytest.param("pipelining,async", {"pipelining", "async"}, id="both"),
    pytest.param("  async ,  pipelining  ", {"pipelining", "async"}, id="spaces"),
    pytest.param("pipelining async", {"pipelining"}, id="space_is_not_a_separator"),
    pytest.param("asyncx,fragmentation", {"fragmentation"}, id="longer_token_ignored"),
    pytest.param("foo,,async,", {"async"}, id="empty_and_unknown_tokens"),
    pytest.param("Async", set(), id="case_sensitive"),
    pytest.param("", set(), id="empty"),
])
def test_parse_capabilities(text, found):
    assert parse_capabilities(text) == found


def test_select_mode():
    assert select_mode(pipelining=True, async_=True) == "async"
    assert select_mode(pipelining=True, async_=False) == "pipelining"
    assert select_mode(pipelining=False, async_=False) == "sync"


# --------------------------------------------------------------------------- against captures

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def golden(folder: str, name: str) -> bytes:
    return bytes.fromhex((GOLDEN / folder / f"{name}.hex").read_text().strip())


@pytest.mark.parametrize("options, golden_file", [
    pytest.param({}, ("a_default", "a_hello_default"), id="defaults"),
    pytest.param({"pipelining": False}, ("b1_nopipelining", "b1_hello_nopipelining"), id="no_pipelining"),
    pytest.param({"async_": False}, ("b2_noasync", "b2_hello_noasync"), id="no_async"),
    pytest.param({"pipelining": False, "async_": False},
                 ("b_nopipelining_noasync", "b_hello_nopipelining_noasync"), id="neither"),
    pytest.param({"max_frame_size": 1024}, ("b3_maxframe_1024", "b3_hello_maxframe_1024"),
                 id="max_frame_size_1024"),
])
def test_haproxy_hello_is_haproxys_byte_for_byte(options, golden_file):
    theirs = golden(*golden_file)
    engine_id = decode_frame(theirs).engine_id  # type: ignore[union-attr]
    assert isinstance(engine_id, str)
    assert EngineConnection(engine_id=engine_id, **options).initiate() == theirs


def test_healthcheck_hello_is_haproxys_byte_for_byte():
    ours = EngineConnection(healthcheck=True, engine_id="ignored-in-checks").initiate()
    assert ours == golden("d_healthcheck", "d_hello_healthcheck")


def test_generated_engine_id_is_a_uuid4():
    ids = set()
    for _ in range(3):
        hello = decode_frame(EngineConnection().initiate())
        assert isinstance(hello, HaproxyHello)
        parsed = uuid.UUID(str(hello.engine_id))
        assert parsed.version == 4 and str(parsed) == hello.engine_id
        ids.add(hello.engine_id)
    assert len(ids) == 3


@pytest.mark.parametrize("payload, status, golden_file", [
    pytest.param(kv("version", "2.0") + kv("max-frame-size", UInt32(20000)) + kv("capabilities", ""), 9,
                 ("e1_bad_max_frame_size", "e1_disconnect_max_frame_too_big"), id="too_big"),
    pytest.param(kv("version", "2.0") + kv("max-frame-size", UInt32(100)) + kv("capabilities", ""), 9,
                 ("e6_too_small_max_frame", "e6_disconnect_max_frame_too_small"), id="too_small"),
    pytest.param(kv("version", "3.0") + REST, 8, ("e2_bad_version", "e2_disconnect_bad_version"),
                 id="bad_version"),
    pytest.param(REST, 5, ("e8_missing_version", "e8_disconnect_missing_version"), id="missing_version"),
])
def test_refusal_and_haproxys_disconnect_bytes(payload, status, golden_file):
    conn = EngineConnection()
    conn.initiate()
    conn.receive_data(hello_frame(payload))
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status == status
    assert conn.disconnect(info.value.status) == golden(*golden_file)
    conn.receive_data(encode_frame(AgentDisconnect.make(status, "bye")))
    assert conn.next_event() == AgentDisconnected(status, "bye")
    assert conn.state.name == "CLOSED"
