"""The SPOP varint (SPOE.txt §3.1 "Peers encoding"; HAProxy's
``encode_varint``/``decode_varint`` in include/haproxy/intops.h, not LEB128).

Vectors from docs/explanation/agents.md §3.1; boundaries where the
length grows; values mod 2**64; at most 10 bytes; the fast path of the codec
against the construct declaration.
"""

from __future__ import annotations

import pytest
from construct import ConstructError, StreamError
from hypothesis import example, given
from hypothesis import strategies as st

from spoe_sync.protocol import codec, grammar

from .helpers import U64, common, raises, varint

VECTORS = [
    pytest.param(0, "00", id="0"),
    pytest.param(1, "01", id="1"),
    pytest.param(239, "ef", id="239"),
    pytest.param(240, "f000", id="240"),
    pytest.param(300, "fc03", id="300"),
    pytest.param(2287, "ff7f", id="2287"),
    pytest.param(2288, "f08000", id="2288"),
    pytest.param(16380, "fcf006", id="16380-max-frame-size"),
    pytest.param(264431, "ffff7f", id="264431"),
    pytest.param(264432, "f0808000", id="264432"),
    pytest.param(33818863, "ffffff7f", id="33818863"),
    pytest.param(33818864, "f080808000", id="33818864"),
    pytest.param(4328786160, "f08080808000", id="4328786160"),
    pytest.param(2**32 - 1, "fff0fefe7e", id="2^32-1"),
    pytest.param((1 << 63) - 1, "fff0fefefefefefefe06", id="int64-max"),
    pytest.param(1 << 63, "f0f1fefefefefefefe06", id="int64-min-pattern"),
    pytest.param(2**64 - 5, "fbf0fefefefefefefe0e", id="int64(-5)-pattern"),
    pytest.param(2**64 - 1, "fff0fefefefefefefe0e", id="2^64-1"),
]


def _starts() -> list[int]:
    """The smallest value of each encoded length 1..10: 0, 240, 2288, 264432, ...
    (an n-byte varint carries 4 + 7*(n-1) bits above the previous start)."""
    starts = [0, 240]
    for n in range(2, 10):
        starts.append(starts[-1] + (1 << (4 + 7 * (n - 1))))
    return starts


BOUNDARIES = [pytest.param(n + 1, s, id=f"{n + 1}-bytes-from-{s}") for n, s in enumerate(_starts())]


@pytest.mark.parametrize(("value", "hexa"), VECTORS)
def test_vectors(value: int, hexa: str) -> None:
    common(grammar.Varint, bytes.fromhex(hexa), value)
    assert codec._varint(value) == bytes.fromhex(hexa)
    assert codec._read_varint(bytes.fromhex(hexa), 0) == (value, len(hexa) // 2)


def test_starts_match_the_spec_table() -> None:
    assert _starts()[:6] == [0, 240, 2288, 264432, 33818864, 4328786160]


@pytest.mark.parametrize(("length", "start"), BOUNDARIES)
def test_length_grows_exactly_at_boundary(length: int, start: int) -> None:
    assert len(grammar.Varint.build(start)) == length
    if start:
        assert len(grammar.Varint.build(start - 1)) == length - 1
        common(grammar.Varint, varint(start - 1), start - 1)
    common(grammar.Varint, varint(start), start)


def test_max_is_ten_bytes() -> None:
    assert len(grammar.Varint.build(U64)) == 10


@given(st.integers(0, U64))
@example(0)
@example(239)
@example(240)
@example(U64)
def test_round_trip_matches_haproxy_transcription(value: int) -> None:
    data = varint(value)
    common(grammar.Varint, data, value)
    assert codec._varint(value) == data
    assert codec._read_varint(data + b"\xaa", 0) == (value, len(data))


@given(st.binary(min_size=1, max_size=12))
def test_fast_reader_agrees_with_grammar(data: bytes) -> None:
    try:
        expected: object = grammar.Varint.parse(data)
    except ConstructError:
        expected = "error"
    try:
        got: object = codec._read_varint(data, 0)[0]
    except (IndexError, codec._Fallback):
        got = "error"
    assert got == expected


def test_overlong_is_an_error() -> None:
    # ten continuation bytes: an 11th byte would be needed.
    data = bytes.fromhex("ff" + "ff" * 9 + "00")
    assert issubclass(raises(grammar.Varint.parse, data) or object, ConstructError)
    assert grammar.Varint.parse(data[:-2] + b"\x7f") is not None  # 10 bytes are fine


def test_ten_bytes_wrap_mod_2_64() -> None:
    # HAProxy adds the 10th byte shifted by 60 in uint64 arithmetic: 0x7f << 60
    # overflows and wraps.  We read the same value, not an error.
    data = bytes.fromhex("ff" + "fe" * 8 + "7f")
    raw = 0xFF + sum(0xFE << (4 + 7 * i) for i in range(8)) + (0x7F << 60)
    assert grammar.Varint.parse(data) == raw & U64
    assert codec._read_varint(data, 0) == (raw & U64, 10)


@pytest.mark.parametrize("hexa", [
    pytest.param("", id="empty"),
    pytest.param("f0", id="missing-second-byte"),
    pytest.param("f08080", id="missing-last-byte"),
])
def test_truncated_is_a_stream_error(hexa: str) -> None:
    assert raises(grammar.Varint.parse, bytes.fromhex(hexa)) is StreamError


@pytest.mark.parametrize("value", [
    pytest.param(-1, id="negative"), pytest.param(1 << 64, id="2^64"), pytest.param("1", id="str"),
])
def test_build_refuses_non_uint64(value: object) -> None:
    assert issubclass(raises(grammar.Varint.build, value) or object, ConstructError)


@pytest.mark.parametrize(("value", "hexa"), [
    pytest.param(-5, "fbf0fefefefefefefe0e", id="-5"),
    pytest.param(-1, "fff0fefefefefefefe0e", id="-1"),
    pytest.param(-(1 << 63), "f0f1fefefefefefefe06", id="int64-min"),
    pytest.param(5, "05", id="5"),
])
def test_signed_varint_is_twos_complement(value: int, hexa: str) -> None:
    common(grammar.SignedVarint, bytes.fromhex(hexa), value)


@pytest.mark.parametrize("value", [
    pytest.param(1 << 63, id="2^63"), pytest.param(-(1 << 63) - 1, id="below-int64-min"),
])
def test_signed_varint_refuses_out_of_range(value: int) -> None:
    assert issubclass(raises(grammar.SignedVarint.build, value) or object, ConstructError)
