"""Fragmented payloads (SPOE.txt §3.2 "fragmentation", §3.2.3 workflows):
splitting a NOTIFY payload the way HAProxy 2.6 does (docs/explanation/haproxy-behaviour.md
§2.4: first frame NOTIFY without FIN, then type 0, FIN on the last, same ids,
``max_frame_size - 32`` bytes per piece) and putting an agent's fragments back
together, with ABORT and the status-11 / status-3 errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spoe_sync.errors import RemoteProtocolError
from spoe_sync.protocol import (
    FLAG_ABORT,
    FLAG_FIN,
    Fragment,
    Message,
    Notify,
    decode_frame,
    decode_payload,
    encode_messages,
)
from spoe_sync.protocol.fragments import Reassembler, abort_frame, fragment_notify, split_payload


def test_haproxy_piece_size_at_256():
    # Observed: max-frame-size 256 -> frames of 231 bytes (224 payload + 7 header).
    payload = bytes(range(256)) * 3
    frames = fragment_notify(5, 1, payload, 256)
    assert [len(f) - 4 for f in frames[:-1]] == [231] * 3
    assert len(frames[-1]) - 4 == 7 + len(payload) - 3 * 224


def test_fragment_frames_are_typed_then_unset_with_fin_on_the_last():
    payload = encode_messages([Message("check", (("blob", b"\xab" * 1000), ("ip", "192.0.2.1")))])
    frames = [decode_frame(f) for f in fragment_notify(123456, 7, payload, 300)]
    assert len(frames) > 2
    assert all(isinstance(f, Fragment) for f in frames)
    assert [f.frame_type for f in frames] == [3] + [0] * (len(frames) - 1)
    assert [f.flags for f in frames] == [0] * (len(frames) - 1) + [FLAG_FIN]
    assert {(f.stream_id, f.frame_id) for f in frames} == {(123456, 7)}
    joined = b"".join(f.payload for f in frames)
    assert joined == payload
    notify = decode_payload(3, joined, stream_id=123456, frame_id=7)
    assert isinstance(notify, Notify)
    assert notify.messages[0].get("blob") == b"\xab" * 1000


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(min_size=1000, max_size=3000), size=st.integers(min_value=256, max_value=1000),
       stream_id=st.integers(0, 2**64 - 1), frame_id=st.integers(0, 2**64 - 1))
def test_every_fragment_fits_and_the_pieces_rejoin(payload, size, stream_id, frame_id):
    frames = fragment_notify(stream_id, frame_id, payload, size)
    assert all(len(f) - 4 <= size for f in frames)
    decoded = [decode_frame(f) for f in frames]
    assert b"".join(f.payload for f in decoded) == payload
    assert decoded[-1].fin and not any(f.fin for f in decoded[:-1])


def test_split_payload_edges():
    assert split_payload(b"", 256) == [b""]
    assert split_payload(b"x" * 224, 256) == [b"x" * 224]
    assert split_payload(b"x" * 225, 256) == [b"x" * 224, b"x"]
    with pytest.raises(ValueError):
        split_payload(b"x", 32)


def test_abort_frame_is_unset_fin_abort_empty():
    frame = decode_frame(abort_frame(9, 2))
    assert isinstance(frame, Fragment)
    assert (frame.frame_type, frame.flags, frame.stream_id, frame.frame_id, frame.payload) == (
        0, FLAG_FIN | FLAG_ABORT, 9, 2, b"")


def frag(frame_type: int, sid: int, fid: int, payload: bytes, flags: int = 0) -> Fragment:
    return Fragment(frame_type, sid, fid, payload, flags)


def test_reassembly_of_an_ack():
    r = Reassembler(1 << 20)
    assert r.feed(frag(103, 1, 2, b"ab")) is None
    assert r.in_progress == (1, 2)
    assert r.feed(frag(0, 1, 2, b"cd")) is None
    done = r.feed(frag(0, 1, 2, b"ef", FLAG_FIN))
    assert done is not None
    assert (done.frame_type, done.stream_id, done.frame_id, done.payload, done.fragments) == (
        103, 1, 2, b"abcdef", 3)
    assert not done.abort
    assert r.in_progress is None


def test_abort_ends_the_payload():
    r = Reassembler(1 << 20)
    r.feed(frag(103, 1, 2, b"ab"))
    done = r.feed(frag(0, 1, 2, b"", FLAG_FIN | FLAG_ABORT))
    assert done is not None and done.abort
    assert r.in_progress is None
    # A second abort for the same ids has nothing left to cancel.
    assert r.feed(frag(0, 1, 2, b"", FLAG_FIN | FLAG_ABORT)) is None


@pytest.mark.parametrize("second", [
    pytest.param(frag(103, 3, 4, b"x"), id="new_fragmented_frame_before_the_end"),
    pytest.param(frag(0, 1, 3, b"x", FLAG_FIN), id="continuation_with_other_frame_id"),
    pytest.param(frag(0, 2, 2, b"x"), id="continuation_with_other_stream_id"),
])
def test_interlaced_fragments_are_status_11(second):
    r = Reassembler(1 << 20)
    r.feed(frag(103, 1, 2, b"ab"))
    with pytest.raises(RemoteProtocolError) as info:
        r.feed(second)
    assert info.value.status == 11


def test_continuation_with_nothing_started_is_status_11():
    with pytest.raises(RemoteProtocolError) as info:
        Reassembler(1 << 20).feed(frag(0, 1, 2, b"x", FLAG_FIN))
    assert info.value.status == 11


def test_reassembled_payload_is_bounded():
    r = Reassembler(1000)
    r.feed(frag(103, 1, 2, b"x" * 600))
    with pytest.raises(RemoteProtocolError) as info:
        r.feed(frag(0, 1, 2, b"x" * 600))
    assert info.value.status == 3
    assert r.in_progress is None
