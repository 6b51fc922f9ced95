"""ReceiveBuffer: cutting the agent's byte stream into frames by their 4-byte
length (SPOE.txt §3.2), and refusing an oversized length before buffering its
body (docs/explanation/haproxy-behaviour.md §1.2, ``spoe_recv_frame()``: status 3)."""

from __future__ import annotations

import pytest

from spoe_sync.errors import LocalProtocolError, RemoteProtocolError
from spoe_sync.protocol.buffer import ReceiveBuffer


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def drain(buf: ReceiveBuffer, limit: int = 1000) -> list[bytes]:
    out = []
    for _ in range(limit):
        body = buf.next_frame()
        if body is None:
            return out
        out.append(body)
    raise AssertionError("more frames than expected")


@pytest.mark.parametrize("chunk", [
    pytest.param(1, id="byte_by_byte"),
    pytest.param(3, id="three_bytes"),
    pytest.param(7, id="seven_bytes"),
    pytest.param(1 << 20, id="all_at_once"),
])
def test_frames_come_back_whole_whatever_the_chunking(chunk):
    bodies = [b"\x67" + bytes(range(i % 250)) for i in range(40)]
    stream = b"".join(framed(b) for b in bodies)
    buf = ReceiveBuffer(16380)
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        buf.feed(stream[i:i + chunk])
        got += drain(buf)
    assert got == bodies
    assert len(buf) == 0


def test_incomplete_frame_waits():
    buf = ReceiveBuffer(1024)
    buf.feed(framed(b"abcdef")[:-1])
    assert buf.next_frame() is None
    assert len(buf) == 9
    buf.feed(b"f")
    assert buf.next_frame() == b"abcdef"


def test_zero_length_frame_is_returned_empty():
    buf = ReceiveBuffer(1024)
    buf.feed(framed(b"") + framed(b"x"))
    assert drain(buf) == [b"", b"x"]


@pytest.mark.parametrize("length, ok", [
    pytest.param(1024, True, id="exactly_the_limit"),
    pytest.param(1025, False, id="one_over"),
    pytest.param(0xFFFFFFFF, False, id="four_gib"),
])
def test_length_is_checked_against_max_frame_size(length, ok):
    buf = ReceiveBuffer(1024)
    buf.feed(length.to_bytes(4, "big"))
    if ok:
        assert buf.next_frame() is None
        return
    with pytest.raises(RemoteProtocolError) as info:
        buf.next_frame()
    assert info.value.status == 3
    # The error repeats: the stream cannot be resynchronised.
    with pytest.raises(RemoteProtocolError):
        buf.next_frame()


def test_oversized_frame_body_is_never_buffered():
    buf = ReceiveBuffer(256)
    buf.feed((1 << 31).to_bytes(4, "big"))
    for _ in range(100):
        buf.feed(b"\x00" * 65536)
    assert len(buf) == 4
    with pytest.raises(RemoteProtocolError) as info:
        buf.next_frame()
    assert info.value.status == 3


def test_oversized_frame_after_good_ones_is_cut_on_arrival():
    buf = ReceiveBuffer(256)
    buf.feed(framed(b"a" * 10) + framed(b"b" * 20) + (5000).to_bytes(4, "big") + b"x" * 4000)
    assert len(buf) == 14 + 24 + 4
    assert buf.next_frame() == b"a" * 10
    assert buf.next_frame() == b"b" * 20
    with pytest.raises(RemoteProtocolError):
        buf.next_frame()


def test_lowering_the_limit_applies_to_frames_already_buffered():
    # The AGENT-HELLO may lower max-frame-size while the next frame is buffered.
    buf = ReceiveBuffer(16380)
    buf.feed(framed(b"h" * 100) + framed(b"a" * 1000))
    assert buf.next_frame() == b"h" * 100
    buf.max_frame_size = 512
    with pytest.raises(RemoteProtocolError) as info:
        buf.next_frame()
    assert info.value.status == 3


def test_eof_is_recorded_and_more_data_refused():
    buf = ReceiveBuffer(1024)
    buf.feed(framed(b"abc"))
    buf.feed(b"")
    assert buf.eof
    assert buf.next_frame() == b"abc"
    with pytest.raises(LocalProtocolError):
        buf.feed(b"more")


def test_many_frames_compact_the_buffer():
    buf = ReceiveBuffer(16380)
    body = b"z" * 10000
    buf.feed(framed(body) * 20)
    for _ in range(15):
        assert buf.next_frame() == body
    buf.feed(framed(b"tail"))
    assert drain(buf) == [body] * 5 + [b"tail"]
    assert len(buf) == 0
