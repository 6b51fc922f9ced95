"""Frames (SPOE.txt §3.2, §3.2.4-3.2.9) and actions (§3.4) through
encode_frame / decode_frame and friends: the HAProxy view of fragments and
unknown types, truncated ACK action lists (docs/explanation/haproxy-behaviour.md §4),
malformed frames as RemoteProtocolError, and the fast paths against the
construct grammar.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest
from construct import ConstructError
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
    HaproxyHello,
    Int64,
    Message,
    MessageEncoder,
    Notify,
    SetVar,
    UInt32,
    UnknownFrame,
    UnsetVar,
    VarScope,
    codec,
    decode_frame,
    decode_frame_body,
    decode_payload,
    encode_frame,
    encode_messages,
    encode_notify,
    encode_raw_frame,
    grammar,
)

from .helpers import (
    common,
    frame,
    frames,
    kv,
    message,
    messages,
    set_var,
    t_bin,
    t_int,
    t_ipv4,
    t_str,
    unset_var,
    values,
    varint,
)
from .helpers import name as wire_name

TXN, SESS = VarScope.TXN, VarScope.SESS


def _outcome(fn: object, data: bytes) -> object:
    try:
        return repr(fn(data))  # type: ignore[operator]
    except RemoteProtocolError as exc:
        return ("error", exc.status)


# --------------------------------------------------------------------------- grammar (construct)


def _typed(dtype: int, value: object, flags: int = 0) -> dict[str, object]:
    return {"tag": {"flags": flags, "type": dtype}, "value": value}


GRAMMAR = [
    pytest.param(grammar.KV, kv("a", t_int(4, 42)), {"name": "a", "value": _typed(4, 42)}, id="kv"),
    pytest.param(grammar.KVList, kv("a", b"\x00") + kv("", b"\x11"),
                 [{"name": "a", "value": _typed(0, None)}, {"name": "", "value": _typed(1, None, 1)}],
                 id="kv-list"),
    pytest.param(grammar.KVList, b"", [], id="kv-list-empty"),
    pytest.param(grammar.Message, message("m", ("", t_str("x"))),
                 {"name": "m", "args": [{"name": "", "value": _typed(8, "x")}]}, id="message-unnamed-arg"),
    pytest.param(grammar.Action, set_var(2, "a", t_int(4, 42)),
                 {"type": 1, "args": {"nb_args": 3, "scope": 2, "name": "a", "value": _typed(4, 42)}},
                 id="set-var"),
    pytest.param(grammar.Action, unset_var(4, "b"),
                 {"type": 2, "args": {"nb_args": 2, "scope": 4, "name": "b"}}, id="unset-var"),
    pytest.param(grammar.FrameHeader, bytes.fromhex("670000000301f000"),
                 {"type": 103, "flags": 3, "stream_id": 1, "frame_id": 240}, id="frame-header"),
    pytest.param(grammar.Frame, frame(103, unset_var(0, "z"), sid=2, fid=3),
                 {"type": 103, "flags": 1, "stream_id": 2, "frame_id": 3, "payload": {
                     "actions": [{"type": 2, "args": {"nb_args": 2, "scope": 0, "name": "z"}}],
                     "rest": b""}}, id="frame-ack"),
    pytest.param(grammar.Frame, frame(0, b"ab", flags=0, sid=2, fid=3),
                 {"type": 0, "flags": 0, "stream_id": 2, "frame_id": 3, "payload": b"ab"},
                 id="frame-fragment-raw"),
]


@pytest.mark.parametrize(("fmt", "data", "obj"), GRAMMAR)
def test_grammar_declarations(fmt: object, data: bytes, obj: object) -> None:
    common(fmt, data, obj)


def test_action_list_stops_at_first_bad_action_like_haproxy() -> None:
    data = unset_var(1, "a") + b"\x09\x02\x02\x01b" + unset_var(1, "c")
    parsed = grammar.ActionList.parse(data)
    assert [a.args.name for a in parsed.actions] == ["a"]
    assert parsed.rest == data[len(unset_var(1, "a")):]


@pytest.mark.parametrize("fmt", [
    pytest.param(grammar.KVList, id="kv-list"), pytest.param(grammar.MessageList, id="message-list"),
])
def test_strict_lists_fail_on_a_bad_element(fmt: object) -> None:
    with pytest.raises(ConstructError):
        fmt.parse(b"\x01a\x0f")  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- examples

EXAMPLES = [
    pytest.param(
        "0000001e030000000101010f636865636b2d636c69656e742d69700100 06c0a80001",
        Notify(1, 1, (Message("check-client-ip", (("", IPv4Address("192.168.0.1")),)),)),
        id="agent-ecosystem-3.4-notify"),
    pytest.param(
        "00000015670000000101010103010869705f73636f7265032a",
        Ack(1, 1, (SetVar(SESS, "ip_score", UInt32(42)),)),
        id="agent-ecosystem-3.4-ack"),
    pytest.param(
        frame(2, kv("status-code", t_int(3, 4)) + kv("message", t_str("invalid frame received"))).hex(),
        HaproxyDisconnect.make(4), id="haproxy-disconnect-4"),
    pytest.param(
        frame(102, kv("status-code", t_int(3, 0)) + kv("message", t_str("normal"))).hex(),
        AgentDisconnect.make(0), id="agent-disconnect-0"),
    pytest.param(
        frame(101, kv("version", t_str("2.0")) + kv("max-frame-size", t_int(3, 16380))
              + kv("capabilities", t_str(""))).hex(),
        AgentHello.make(), id="agent-hello"),
    pytest.param(
        frame(1, kv("supported-versions", t_str("2.0")) + kv("max-frame-size", t_int(3, 1024))
              + kv("capabilities", t_str("")) + kv("healthcheck", b"\x11")).hex(),
        HaproxyHello.make(max_frame_size=1024, capabilities="", healthcheck=True),
        id="haproxy-hello-healthcheck"),
    pytest.param(
        frame(103, set_var(2, "a", t_int(4, -1)) + unset_var(4, "b") + set_var(0, "", t_bin(b"x")),
              sid=300, fid=2288).hex(),
        Ack(300, 2288, (SetVar(TXN, "a", Int64(-1)), UnsetVar(VarScope.RES, "b"),
                        SetVar(VarScope.PROC, "", b"x"))),
        id="ack-three-actions-long-ids"),
    pytest.param(frame(103, b"", sid=5, fid=6).hex(), Ack(5, 6), id="ack-no-actions"),
    pytest.param(frame(3, b"", sid=5, fid=6).hex(), Notify(5, 6), id="notify-no-messages"),
    pytest.param(frame(101, b"").hex(), AgentHello(), id="agent-hello-empty-kv-list"),
]


@pytest.mark.parametrize(("hexa", "expected"), EXAMPLES)
def test_examples_both_ways(hexa: str, expected: Frame) -> None:
    data = bytes.fromhex(hexa.replace(" ", ""))
    assert repr(decode_frame(data)) == repr(expected)
    assert repr(codec.decode_frame_body_by_grammar(data[4:])) == repr(expected)
    assert encode_frame(expected) == data
    assert codec.encode_frame_by_grammar(expected) == data


# --------------------------------------------------------------------------- frame kinds

KINDS = [
    pytest.param(frame(3, b"\x01\x02", flags=0, sid=1, fid=2), Fragment(3, 1, 2, b"\x01\x02", 0),
                 id="notify-without-fin-is-fragment"),
    pytest.param(frame(103, b"\x01", flags=0, sid=1, fid=2), Fragment(103, 1, 2, b"\x01", 0),
                 id="ack-without-fin-is-fragment"),
    pytest.param(frame(0, b"abc", flags=0, sid=1, fid=2), Fragment(0, 1, 2, b"abc", 0),
                 id="type-0-continuation"),
    pytest.param(frame(0, b"abc", flags=FLAG_FIN, sid=1, fid=2), Fragment(0, 1, 2, b"abc", 1),
                 id="type-0-last"),
    pytest.param(frame(0, b"", flags=FLAG_FIN | FLAG_ABORT, sid=1, fid=2), Fragment(0, 1, 2, b"", 3),
                 id="type-0-abort"),
    pytest.param(frame(99, b"\xff\xff"), UnknownFrame(99, 0, 0, b"\xff\xff", 1), id="unknown-type-99"),
    pytest.param(frame(255, b"", flags=0), UnknownFrame(255, 0, 0, b"", 0), id="unknown-type-255"),
    pytest.param(frame(101, kv("version", t_str("2.0")), flags=0), AgentHello((("version", "2.0"),), 0),
                 id="hello-without-fin-still-kv"),
    pytest.param(frame(101, b"", sid=7, fid=8), AgentHello((), 1, 7, 8), id="hello-with-ids"),
    pytest.param(frame(103, unset_var(2, "x"), flags=FLAG_FIN | FLAG_ABORT),
                 Ack(0, 0, (UnsetVar(TXN, "x"),), 3), id="ack-fin-abort-keeps-actions"),
    pytest.param(frame(3, message("m", ("a", b"\x00")), flags=0xFFFFFFFF),
                 Notify(0, 0, (Message("m", (("a", None),)),), 0xFFFFFFFF), id="notify-all-flags"),
]


@pytest.mark.parametrize(("data", "expected"), KINDS)
def test_frame_kinds(data: bytes, expected: Frame) -> None:
    got = decode_frame(data)
    assert repr(got) == repr(expected)
    assert repr(codec.decode_frame_body_by_grammar(data[4:])) == repr(expected)
    assert encode_frame(got) == data


# --------------------------------------------------------------------------- truncated ACKs

FIRST = set_var(2, "ok", t_int(4, 1))
NEVER = unset_var(2, "never")
# (bad bytes, what follows them): the bytes left after a malformed action are
# never read, even when they hold valid actions.
TRUNCATED = [
    pytest.param(b"\x03\x02\x02\x01a", NEVER, id="unknown-action-type"),
    pytest.param(b"\x00\x02\x02\x01a", NEVER, id="action-type-0"),
    pytest.param(b"\x01\x02\x02\x01a", NEVER, id="set-var-with-2-args"),
    pytest.param(b"\x02\x03\x02\x01a\x00", NEVER, id="unset-var-with-3-args"),
    pytest.param(b"\x02\x02\x05\x01a", NEVER, id="scope-5"),
    pytest.param(set_var(2, "v", b"\x0a"), NEVER, id="set-var-reserved-type-10"),
    pytest.param(b"\x02\x02", b"", id="fewer-than-3-bytes-after-type"),
    pytest.param(b"\x01", b"", id="type-byte-alone"),
    pytest.param(set_var(2, "v", b"\x08\x05ab"), b"", id="set-var-string-past-end"),
    pytest.param(b"\x01\x03\x02\xf0", b"", id="name-varint-truncated"),
    pytest.param(unset_var(2, "x")[:-1], b"", id="name-shorter-than-length"),
]


@pytest.mark.parametrize(("bad", "rest"), TRUNCATED)
def test_truncated_ack_keeps_actions_before_the_bad_one(bad: bytes, rest: bytes) -> None:
    data = frame(103, FIRST + bad + rest, sid=3, fid=4)
    expected = Ack(3, 4, (SetVar(TXN, "ok", Int64(1)),), truncated=True)
    assert decode_frame(data) == expected
    assert codec.decode_frame_body_by_grammar(data[4:]) == expected
    # Re-encoding keeps only what HAProxy would have applied.
    assert encode_frame(expected) == frame(103, FIRST, sid=3, fid=4)


@pytest.mark.parametrize(("bad", "rest"), TRUNCATED)
def test_ack_malformed_from_the_start_has_no_actions(bad: bytes, rest: bytes) -> None:
    assert decode_frame(frame(103, bad + rest)) == Ack(0, 0, (), truncated=True)
    assert decode_payload(103, bad + rest) == Ack(0, 0, (), truncated=True)


# --------------------------------------------------------------------------- malformed frames

MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x00\x00\x00", id="3-bytes"),
    pytest.param(b"\x00\x00\x00\x00", id="zero-length"),
    pytest.param(frame(103, b"")[:-1], id="length-says-more"),
    pytest.param(frame(103, b"") + b"\x00", id="trailing-byte"),
    pytest.param(b"\x00\x00\x00\x06\x67\x00\x00\x00\x01\x00", id="header-missing-frame-id"),
    pytest.param(frame(103, b"")[:9] + b"\xff" * 11 + b"\x00", id="overlong-stream-id"),
    pytest.param(frame(3, wire_name("m") + b"\x02" + kv("a", b"\x00")), id="notify-fewer-args-than-count"),
    pytest.param(frame(3, wire_name("msg")[:-1]), id="notify-name-truncated"),
    pytest.param(frame(3, message("m", ("a", b"\x0f"))), id="notify-reserved-type-15"),
    pytest.param(frame(3, message("m", ("a", t_str("x")))[:-1]), id="notify-string-truncated"),
    pytest.param(frame(3, message("m") + b"\x05"), id="notify-trailing-byte"),
    pytest.param(frame(101, kv("version", t_str("2.0")) + b"\x01"), id="kv-trailing-byte"),
    pytest.param(frame(101, kv("a", b"\x0c")), id="kv-reserved-type-12"),
    pytest.param(frame(101, kv("a", b"\x06\x01\x02")), id="kv-ipv4-truncated"),
    pytest.param(frame(102, wire_name("status-code")), id="kv-value-missing"),
    pytest.param(frame(1, b"\xff" * 10 + b"\x7f"), id="kv-name-claims-2^60-bytes"),
    pytest.param(frame(3, message("m", ("hdrs", b"\x09" + varint(1 << 62) + b"x"))),
                 id="binary-claims-2^62-bytes"),
    pytest.param(frame(3, message("m", ("a", b"\x04" + b"\x80" * 10))), id="value-overlong-varint"),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_frame_raises_remote_protocol_error_4(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        decode_frame(data)
    assert exc.value.status == 4
    assert "malformed" in exc.value.message
    if len(data) >= 4 and int.from_bytes(data[:4], "big") == len(data) - 4:
        with pytest.raises(RemoteProtocolError):
            decode_frame_body(data[4:])
        with pytest.raises(RemoteProtocolError):
            codec.decode_frame_body_by_grammar(data[4:])


def test_error_message_names_the_frame_and_place() -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        decode_frame(frame(3, message("m", ("a", b"\x0f"))))
    assert "NOTIFY" in str(exc.value) and "SPOP status 4" in str(exc.value)


# --------------------------------------------------------------------------- payloads

def test_decode_payload_of_a_reassembled_notify() -> None:
    payload = message("a", ("x", t_str("y"))) + message("b")
    got = decode_payload(3, payload, stream_id=9, frame_id=10)
    assert got == Notify(9, 10, (Message("a", (("x", "y"),)), Message("b")))
    assert decode_payload(3, payload, flags=0) == Fragment(3, 0, 0, payload, 0)


def test_decode_payload_kv_and_errors() -> None:
    assert decode_payload(102, kv("status-code", t_int(3, 2))) == AgentDisconnect(
        (("status-code", UInt32(2)),))
    with pytest.raises(RemoteProtocolError) as exc:
        decode_payload(3, b"\x05ab")
    assert exc.value.status == 4


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = frame(103, unset_var(1, "z"))
    expected = Ack(0, 0, (UnsetVar(SESS, "z"),))
    assert decode_frame(bytearray(data)) == expected
    assert decode_frame_body(memoryview(data)[4:]) == expected


# --------------------------------------------------------------------------- encoders

def test_message_encoder_builds_haproxy_bytes() -> None:
    enc = MessageEncoder("check-client-ip", ["ip", "", "path"])
    got = enc.encode([IPv4Address("10.0.0.1"), None, "/x"])
    assert got == message("check-client-ip", ("ip", t_ipv4("10.0.0.1")), ("", b"\x00"), ("path", t_str("/x")))
    assert enc.encode((IPv4Address("10.0.0.1"), None, "/x")) == got


@given(st.text(max_size=20), st.lists(st.text(max_size=8), max_size=3), values)
def test_encode_one_is_encode_of_one_value(name: str, arg_names: list[str], value) -> None:
    # The engine's path for a message of one arg gives encode()'s bytes, or its error.
    enc = MessageEncoder(name, arg_names)

    def outcome(fn):
        try:
            return fn()
        except LocalProtocolError as exc:
            return type(exc), exc.status
    one = outcome(lambda: enc.encode_one(value))
    assert one == outcome(lambda: enc.encode((value,)))
    if len(arg_names) != 1:
        assert one == (LocalProtocolError, 4)
    elif type(one) is bytes:  # the grammar, the definition, builds the same message
        notify = Notify(1, 1, (Message(name, ((arg_names[0], value),)),))
        assert encode_notify(1, 1, one) == codec.encode_frame_by_grammar(notify)


def test_message_encoder_limits() -> None:
    assert MessageEncoder("m", ["a"] * 255).encode([None] * 255)[:3] == b"\x01m\xff"
    with pytest.raises(LocalProtocolError):
        MessageEncoder("m", ["a"] * 256)
    with pytest.raises(LocalProtocolError):
        MessageEncoder("m", ["a", "b"]).encode([1])
    with pytest.raises(LocalProtocolError):
        MessageEncoder("m", ["a"]).encode([object()])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        encode_frame(Notify(1, 1, (Message("m", tuple(("a", None) for _ in range(256))),)))
    with pytest.raises(LocalProtocolError):
        codec.encode_frame_by_grammar(Notify(1, 1, (Message("m", tuple(("a", None) for _ in range(256))),)))


def test_encode_raw_frame_and_ranges() -> None:
    assert encode_raw_frame(0, 3, 1, 2, b"") == frame(0, b"", flags=3, sid=1, fid=2)
    for bad in [(256, 0, 0, 0), (0, 1 << 32, 0, 0), (0, 0, -1, 0), (0, 0, 0, 1 << 64)]:
        with pytest.raises(LocalProtocolError):
            encode_raw_frame(*bad, b"")


def test_truncated_flag_is_not_encoded() -> None:
    ack = Ack(1, 1, (UnsetVar(TXN, "a"),), truncated=True)
    assert encode_frame(ack) == frame(103, unset_var(2, "a"), sid=1, fid=1)


@given(st.lists(messages, max_size=4), st.integers(0, 1 << 40), st.integers(0, 1 << 40))
def test_encode_notify_is_encode_frame(msgs: list[Message], sid: int, fid: int) -> None:
    payload = b"".join(MessageEncoder(m.name, [n for n, _ in m.args]).encode([v for _, v in m.args])
                       for m in msgs)
    assert payload == encode_messages(msgs)
    wire = encode_notify(sid, fid, payload)
    assert wire == encode_frame(Notify(sid, fid, tuple(msgs)))
    assert wire == codec.encode_frame_by_grammar(Notify(sid, fid, tuple(msgs)))


def test_notify_without_fin_encodes_messages_and_decodes_as_fragment() -> None:
    notify = Notify(1, 2, (Message("m", (("a", 1),)),), flags=0)
    data = encode_frame(notify)
    assert data == codec.encode_frame_by_grammar(notify)
    assert decode_frame(data) == Fragment(3, 1, 2, message("m", ("a", t_int(4, 1))), 0)


# --------------------------------------------------------------------------- properties

@given(frames)
def test_every_frame_round_trips(f: Frame) -> None:
    data = encode_frame(f)
    assert codec.encode_frame_by_grammar(f) == data
    assert repr(decode_frame(data)) == repr(f)
    assert repr(codec.decode_frame_body_by_grammar(data[4:])) == repr(f)


@settings(max_examples=150)
@given(frames, st.randoms(use_true_random=False))
def test_fast_decode_equals_grammar_decode_on_mutations(f: Frame, rnd: random.Random) -> None:
    body = bytearray(encode_frame(f)[4:])
    for _ in range(rnd.randint(1, 3)):
        if body and rnd.random() < 0.7:
            body[rnd.randrange(len(body))] = rnd.randrange(256)
        elif body:
            del body[rnd.randrange(len(body)):]
    data = bytes(body)
    assert _outcome(decode_frame_body, data) == _outcome(codec.decode_frame_body_by_grammar, data)


@settings(max_examples=150)
@given(st.sampled_from([0, 1, 2, 3, 99, 101, 102, 103]), st.sampled_from([0, 1, 3]),
       st.binary(max_size=40) | frames.map(codec._encode_payload))
def test_decode_payload_equals_grammar_decode(ftype: int, flags: int, payload: bytes) -> None:
    body = bytes((ftype,)) + flags.to_bytes(4, "big") + b"\x07\x08" + payload
    fast = _outcome(lambda p: decode_payload(ftype, p, flags=flags, stream_id=7, frame_id=8), payload)
    assert fast == _outcome(codec.decode_frame_body_by_grammar, body)
