"""SPOP typed data (SPOE.txt §3.1): the ten types, type in the LOW nibble and
flags in the high one (BOOL true is 0x11), HAProxy's decoding rules
(docs/explanation/haproxy-behaviour.md §4), and the fast value codec against the
construct declaration.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from construct import ConstructError
from hypothesis import given
from hypothesis import strategies as st

from spoe_sync.errors import LocalProtocolError
from spoe_sync.protocol import Int32, Int64, Message, Notify, UInt32, UInt64, Value, codec, grammar
from spoe_sync.protocol.codec import encode_value

from .helpers import U64, common, decoded_values, raises, values

VECTORS = [
    pytest.param(None, "00", id="null"),
    pytest.param(True, "11", id="bool-true-0x11"),
    pytest.param(False, "01", id="bool-false"),
    pytest.param(Int32(-5), "02fbf0fefefefefefefe0e", id="int32-negative"),
    pytest.param(Int32(7), "0207", id="int32"),
    pytest.param(UInt32(16380), "03fcf006", id="uint32-max-frame-size"),
    pytest.param(Int64(-5), "04fbf0fefefefefefefe0e", id="int64(-5)-as-haproxy"),
    pytest.param(Int64(240), "04f000", id="int64-240"),
    pytest.param(UInt64(U64), "05fff0fefefefefefefe0e", id="uint64-max"),
    pytest.param(IPv4Address("192.168.0.1"), "06c0a80001", id="ipv4"),
    pytest.param(IPv6Address("2001:db8::1"), "0720010db8000000000000000000000001", id="ipv6"),
    pytest.param("GET", "0803474554", id="string"),
    pytest.param("", "0800", id="empty-string"),
    pytest.param("\udcff", "0801ff", id="string-invalid-utf8-surrogateescape"),
    pytest.param("é", "0802c3a9", id="string-utf8"),
    pytest.param(b"\xde\xad\xbe\xef", "0904deadbeef", id="binary"),
    pytest.param(b"", "0900", id="empty-binary"),
]


def _decode_grammar(data: bytes) -> Value:
    return codec.untagged(grammar.TypedData.parse(data))


@pytest.mark.parametrize(("value", "hexa"), VECTORS)
def test_vector(value: Value, hexa: str) -> None:
    data = bytes.fromhex(hexa)
    assert encode_value(value) == data
    common(grammar.TypedData, data, codec._tagged(value))
    for decoded in (_decode_grammar(data), codec._read_value(data, 0)[0]):
        assert repr(decoded) == repr(value)


@pytest.mark.parametrize(("value", "hexa"), [
    pytest.param(-5, "04fbf0fefefefefefefe0e", id="int-is-int64"),
    pytest.param(0, "0400", id="zero"),
    pytest.param(bytearray(b"ab"), "09026162", id="bytearray-is-binary"),
    pytest.param(memoryview(b"ab"), "09026162", id="memoryview-is-binary"),
])
def test_python_types_map_to_wire_types(value: Value, hexa: str) -> None:
    assert encode_value(value) == bytes.fromhex(hexa)
    assert codec.encode_frame_by_grammar(Notify(1, 1, (Message("m", (("a", value),)),))).endswith(
        bytes.fromhex(hexa))


@pytest.mark.parametrize(("hexa", "expected"), [
    pytest.param("11", True, id="0x11"),
    pytest.param("01", False, id="0x01"),
    pytest.param("21", False, id="0x21-high-nibble-not-1"),
    pytest.param("f1", False, id="0xf1"),
])
def test_bool_is_true_only_with_flag_nibble_1(hexa: str, expected: bool) -> None:
    data = bytes.fromhex(hexa)
    assert _decode_grammar(data) is expected
    assert codec._read_value(data, 0)[0] is expected


def test_string_with_flags_is_binary_as_in_haproxy() -> None:
    # spoe_decode_data(): text only if the type byte is exactly 0x08.
    data = bytes.fromhex("1803474554")
    assert _decode_grammar(data) == b"GET"
    assert codec._read_value(data, 0) == (b"GET", 5)


@pytest.mark.parametrize("type_byte", [pytest.param(t, id=f"type-{t}") for t in range(10, 16)])
def test_reserved_types_are_errors(type_byte: int) -> None:
    data = bytes((type_byte,)) + b"\x00" * 20
    assert issubclass(raises(grammar.TypedData.parse, data) or object, ConstructError)
    assert raises(codec._read_value, data, 0) is codec._Fallback


@pytest.mark.parametrize("hexa", [
    pytest.param("06c0a800", id="ipv4-3-bytes"),
    pytest.param("07" + "00" * 15, id="ipv6-15-bytes"),
    pytest.param("080547", id="string-shorter-than-length"),
    pytest.param("09ff", id="binary-length-truncated"),
    pytest.param("04f0", id="int-varint-truncated"),
    pytest.param("", id="empty"),
])
def test_truncated_value_is_an_error(hexa: str) -> None:
    data = bytes.fromhex(hexa)
    assert issubclass(raises(grammar.TypedData.parse, data) or object, ConstructError)
    assert raises(codec._read_value, data, 0) in (codec._Fallback, IndexError)


@given(values)
def test_every_value_round_trips(value: Value) -> None:
    data = encode_value(value)
    assert grammar.TypedData.build(codec._tagged(value)) == data
    expected = repr(Int64(value)) if type(value) is int else repr(value)
    assert repr(_decode_grammar(data)) == expected
    assert repr(codec._read_value(data, 0)[0]) == expected
    assert codec._read_value(data + b"\x00", 0)[1] == len(data)


@given(decoded_values)
def test_decoded_value_reencodes_byte_for_byte(value: Value) -> None:
    data = encode_value(value)
    assert encode_value(codec._read_value(data, 0)[0]) == data


@given(st.binary(max_size=24))
def test_fast_decoder_agrees_with_grammar_on_any_bytes(data: bytes) -> None:
    try:
        container = grammar.TypedData.parse(data)
        expected: object = repr(codec.untagged(container))
    except ConstructError:
        expected = "error"
    try:
        got: object = repr(codec._read_value(data, 0)[0])
    except (codec._Fallback, IndexError):
        got = "error"
    assert got == expected


BAD_VALUES = [
    pytest.param(Int64(1 << 63), id="int64-too-big"),
    pytest.param(-(1 << 63) - 1, id="int-too-small"),
    pytest.param(1 << 64, id="int-2^64"),
    pytest.param(Int32(1 << 63), id="int32-too-big"),
    pytest.param(UInt32(-1), id="uint32-negative"),
    pytest.param(UInt64(1 << 64), id="uint64-too-big"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param(3.5, id="float"),
    pytest.param(object(), id="object"),
]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_unencodable_values_raise_local_protocol_error(value: object) -> None:
    with pytest.raises(LocalProtocolError) as fast:
        encode_value(value)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError) as slow:
        codec.encode_frame_by_grammar(Notify(1, 1, (Message("m", (("a", value),)),)))  # type: ignore[arg-type]
    assert fast.value.status == slow.value.status == 4


@pytest.mark.parametrize("size", [0, 1, 239, 240, 241, 2287, 2288, 70000])
def test_strings_and_binary_of_every_length_class_encode_as_the_grammar(size: int) -> None:
    """The one-byte length heads of short strings and binary data (fastcodec),
    and the general varint past 239 bytes, against the construct declaration."""
    for value in ("é" * (size // 2) + "a" * (size % 2), b"\xff" * size):
        data = encode_value(value)
        assert grammar.TypedData.build(codec._tagged(value)) == data
        assert codec._read_value(data, 0) == (value, len(data))
