"""The work one ACK costs is bounded (issue 11, defect 1): a fragmented ACK
reassembles to at most ``max_ack_size`` bytes (status 3 past it, nothing more
buffered), and at most ``max_ack_actions`` actions of one ACK are decoded, even
when every action is one the plain decoder hands to the grammar."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from spoe_sync.errors import RemoteProtocolError
from spoe_sync.protocol import (
    Ack,
    AckReceived,
    SetVar,
    UnsetVar,
    VarScope,
    decode_frame_body,
    encode_frame,
    encode_raw_frame,
)
from spoe_sync.protocol.codec import decode_frame_body_by_grammar
from spoe_sync.protocol.connection import DEFAULT_MAX_ACK_ACTIONS, DEFAULT_MAX_ACK_SIZE
from spoe_sync.protocol.trusted import trusted_constructor

from .test_connection import MSG, ready

TXN = VarScope.TXN
_LEN = struct.Struct(">I")


def _payload(actions) -> bytes:
    """The action list bytes of an ACK of ``actions`` (ids 1, 1: a 7-byte header)."""
    return encode_frame(Ack(1, 1, tuple(actions)))[11:]


def _body(actions) -> bytes:
    return encode_frame(Ack(1, 1, tuple(actions)))[4:]


def _fragments(payload: bytes, piece: int) -> list[bytes]:
    pieces = [payload[i:i + piece] for i in range(0, len(payload), piece)]
    return [encode_raw_frame(103 if i == 0 else 0, 1 if i == len(pieces) - 1 else 0, 1, 1, p)
            for i, p in enumerate(pieces)]


# --------------------------------------------------------------------------- reassembly bound


def test_the_default_reassembly_bound_is_256_kib():
    assert DEFAULT_MAX_ACK_SIZE == 256 * 1024


def test_a_fragmented_ack_past_the_default_bound_is_status_3_and_never_buffered():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    payload = _payload(SetVar(TXN, f"v{i}", "x" * 20) for i in range(12_000))  # ~330 KiB
    assert len(payload) > DEFAULT_MAX_ACK_SIZE
    fed = 0
    with pytest.raises(RemoteProtocolError) as info:
        for frame in _fragments(payload, 16_000):
            fed += 16_000
            pair.to_engine(frame)
    assert info.value.status == 3
    # It failed at the fragment that crossed the bound, not at the FIN.
    assert DEFAULT_MAX_ACK_SIZE < fed < DEFAULT_MAX_ACK_SIZE + 16_000
    assert pair.conn._reassembler.in_progress is None


def test_a_fragmented_ack_under_the_bound_is_reassembled():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    actions = [SetVar(TXN, f"v{i}", "x" * 20) for i in range(3_000)]  # ~85 KiB
    events = pair.to_engine(b"".join(_fragments(_payload(actions), 16_000)))
    assert events == [AckReceived(Ack(1, 1, tuple(actions)), True)]


# --------------------------------------------------------------------------- action bound


def test_the_connection_decodes_at_most_max_ack_actions():
    pair = ready("async", max_ack_actions=100)
    pair.notify(1, 1, MSG)
    actions = [UnsetVar(TXN, f"u{i}") for i in range(1_000)]
    (event,) = pair.to_engine(encode_frame(Ack(1, 1, tuple(actions))))
    assert isinstance(event, AckReceived) and event.matched
    assert event.ack.actions == tuple(actions[:100])
    assert event.ack.undecoded == len(_payload(actions[100:]))
    assert not event.ack.truncated


def test_a_fragmented_flood_is_decoded_up_to_the_default_bound():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    actions = [SetVar(TXN, f"k{i}", 1) for i in range(15_000)]  # ~180 KiB, under the size bound
    (event,) = pair.to_engine(b"".join(_fragments(_payload(actions), 16_000)))
    assert len(event.ack.actions) == DEFAULT_MAX_ACK_ACTIONS
    assert event.ack.actions[-1] == actions[DEFAULT_MAX_ACK_ACTIONS - 1]
    assert event.ack.undecoded == len(_payload(actions[DEFAULT_MAX_ACK_ACTIONS:]))


def test_an_ack_within_the_bound_is_whole():
    pair = ready("async")
    pair.notify(1, 1, MSG)
    actions = tuple(SetVar(TXN, f"k{i}", i) for i in range(1_470))  # a full 16 KiB ACK
    (event,) = pair.to_engine(encode_frame(Ack(1, 1, actions)))
    assert event.ack == Ack(1, 1, actions) and event.ack.undecoded == 0


def test_irregular_actions_go_to_the_grammar_one_at_a_time_and_are_bounded():
    # A name of 240 bytes or more has a two-byte length: the plain reader hands
    # such an action to the grammar.  Each alone, so the bound still holds.
    actions = [SetVar(TXN, "n" * 300 + str(i), i) for i in range(50)]
    body = _body(actions)
    assert decode_frame_body(body) == decode_frame_body_by_grammar(body)
    bounded = decode_frame_body(body, max_actions=10)
    assert isinstance(bounded, Ack)
    assert bounded.actions == tuple(actions[:10])
    assert bounded.undecoded == len(_payload(actions[10:]))


@pytest.mark.parametrize("bad", [
    pytest.param(b"\x01\x03\x07\x01a\x00", id="bad_scope"),
    pytest.param(b"\x03\x02\x02\x01a", id="unknown_action"),
    pytest.param(b"\x01\x03\x02\x01a\x0c", id="unknown_data_type"),
    pytest.param(b"\x01\x03\x02\x09ab", id="name_past_the_end"),
])
def test_a_malformed_action_truncates_the_list_as_the_grammar_does(bad):
    good = [SetVar(TXN, "a", 1), UnsetVar(TXN, "b")]
    tail = b"" if bad.endswith(b"ab") else _payload([SetVar(TXN, "c", 3)])
    body = _body(good) + bad + tail
    fast = decode_frame_body(body)
    assert fast == decode_frame_body_by_grammar(body)
    assert isinstance(fast, Ack) and fast.truncated and fast.actions == tuple(good)


# --------------------------------------------------------------------------- trusted constructors


@pytest.mark.parametrize(("cls", "values"), [
    pytest.param(Ack, (1, 2, (UnsetVar(TXN, "x"),), 1, True, 9), id="Ack"),
    pytest.param(SetVar, (TXN, "n", 7), id="SetVar"),
    pytest.param(UnsetVar, (TXN, "n"), id="UnsetVar"),
    pytest.param(AckReceived, (Ack(1, 2), False, True, False), id="AckReceived"),
])
def test_the_trusted_constructor_builds_what_the_class_builds(cls, values):
    built, made = cls._trusted(*values), cls(*values)
    assert built == made and type(built) is cls and hash(built) == hash(made)
    assert repr(built) == repr(made)
    assert [getattr(built, f.name) for f in dataclasses.fields(cls)] == \
        [getattr(made, f.name) for f in dataclasses.fields(cls)]
    with pytest.raises(dataclasses.FrozenInstanceError):  # still frozen
        setattr(built, dataclasses.fields(cls)[0].name, None)


def test_the_trusted_constructor_of_a_class_with_slots():
    # Its fields go into a twin of the class by plain stores, then the instance
    # becomes a cls: nothing of the twin shows.
    from dataclasses import dataclass, field

    @trusted_constructor
    @dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 2
        tags: list[str] = field(default_factory=list)

        def __post_init__(self) -> None:
            raise AssertionError("the trusted path skips __post_init__")

    point = Point._trusted(3)  # type: ignore[attr-defined]
    assert type(point) is Point and (point.x, point.y, point.tags) == (3, 2, [])
    assert not hasattr(point, "__dict__") and Point._trusted(1).tags is not point.tags  # type: ignore[attr-defined]
    assert point == Point._trusted(3, 2, [])  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 4  # type: ignore[misc]


def test_the_trusted_constructor_keeps_the_defaults():
    assert Ack._trusted(1, 2) == Ack(1, 2)
    assert AckReceived._trusted(Ack(1, 2)) == AckReceived(Ack(1, 2))


def test_the_trusted_constructor_of_a_class_without_slots():
    from dataclasses import dataclass, field

    @trusted_constructor
    @dataclass(frozen=True)
    class Point:
        x: int
        tags: list[str] = field(default_factory=list)

        def __post_init__(self) -> None:
            raise AssertionError("the trusted path skips __post_init__")

    point = Point._trusted(3)  # type: ignore[attr-defined]
    assert (point.x, point.tags) == (3, [])
    assert Point._trusted(1).tags is not point.tags  # type: ignore[attr-defined]



# --------------------------------------------------------------------------- repeated action lists


def test_a_repeated_action_list_is_decoded_once_per_connection():
    # Agents answer with the same few action lists: the second ACK reuses the
    # first one's decoded (immutable) actions, under its own ids and flags.
    pair = ready("async")
    actions = (SetVar(TXN, "score", 10), SetVar(TXN, "verdict", "clean"))
    pair.notify(1, 1, MSG)
    pair.notify(300, 2, MSG)
    (first,) = pair.to_engine(encode_frame(Ack(1, 1, actions)))
    (second,) = pair.to_engine(encode_frame(Ack(300, 2, actions)))
    assert first.ack == Ack(1, 1, actions) and second.ack == Ack(300, 2, actions)
    assert second.ack.actions is first.ack.actions


def test_the_action_cache_keeps_the_bound_and_the_truncation():
    pair = ready("async", max_ack_actions=3)
    actions = [UnsetVar(TXN, f"u{i}") for i in range(5)]
    for fid in (1, 2):
        pair.notify(1, fid, MSG)
        (event,) = pair.to_engine(encode_frame(Ack(1, fid, tuple(actions))))
        assert event.ack.actions == tuple(actions[:3])
        assert event.ack.undecoded == len(_payload(actions[3:]))
    bad = _body([SetVar(TXN, "a", 1)]) + b"\x03\x02\x02\x01a"
    for fid in (3, 4):
        pair.notify(1, fid, MSG)
        (event,) = pair.to_engine(_LEN.pack(len(bad)) + bad[:5] + bytes((1, fid)) + bad[7:])
        assert event.ack.truncated and event.ack.actions == (SetVar(TXN, "a", 1),)


def test_the_action_cache_is_bounded():
    from spoe_sync.protocol.fastcodec import ACK_CACHE_ENTRIES, ACK_CACHE_MAX_BYTES

    pair = ready("async")
    for fid in range(1, 2 * ACK_CACHE_ENTRIES + 2):
        pair.notify(1, fid, MSG)
        pair.to_engine(encode_frame(Ack(1, fid, (SetVar(TXN, "v", fid),))))
        assert 0 < len(pair.conn._ack_cache) <= ACK_CACHE_ENTRIES
    big = (SetVar(TXN, "big", "x" * ACK_CACHE_MAX_BYTES),)
    pair.notify(2, 1, MSG)
    pair.conn._ack_cache.clear()
    (event,) = pair.to_engine(encode_frame(Ack(2, 1, big)))
    assert event.ack.actions == big and not pair.conn._ack_cache  # too big to keep


@pytest.mark.parametrize("sid", [0, 239, 240, 2287, 2288, 70_000, 2288 + 2**18 - 1, 2288 + 2**18,
                                 10**9, 2**64 - 1])
@pytest.mark.parametrize("fid", [1, 239, 240, 2**40])
def test_the_connection_reads_every_size_of_stream_id(sid, fid):
    # The ACK fast path reads one-, two- and three-byte varints itself.
    pair = ready("async")
    pair.notify(sid, fid, MSG)
    actions = (SetVar(TXN, "score", 10),)
    (event,) = pair.to_engine(encode_frame(Ack(sid, fid, actions)))
    assert event.ack == Ack(sid, fid, actions) and event.matched
