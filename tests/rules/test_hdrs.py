"""``req.hdrs_bin`` block helpers (docs/explanation/agents.md §3.3): varint lengths, the ``00 00``
terminator, and strict decoding as the DataDog agent does."""

from __future__ import annotations

import pytest

from spoe_sync.errors import HeaderBlockError
from spoe_sync.rules import decode_hdrs_bin, encode_hdrs_bin


def test_worked_example_from_the_survey():
    block = encode_hdrs_bin([("host", "example.com"), ("user-agent", "curl/8.0"),
                             ("x-long", "a" * 300)])
    assert len(block) == 348
    assert block[:17] == b"\x04host\x0bexample.com"
    assert b"\x06x-long\xfc\x03aaa" in block
    assert block.endswith(b"\x00\x00")


@pytest.mark.parametrize(("length", "prefix"), [
    pytest.param(0, b"\x00", id="0"),
    pytest.param(239, b"\xef", id="239"),
    pytest.param(240, b"\xf0\x00", id="240"),
    pytest.param(300, b"\xfc\x03", id="300"),
    pytest.param(2288, b"\xf0\x80\x00", id="2288"),
])
def test_value_length_varints(length, prefix):
    block = encode_hdrs_bin([("x", b"v" * length)])
    assert block[2:2 + len(prefix)] == prefix
    assert decode_hdrs_bin(block) == [(b"x", b"v" * length)]


@pytest.mark.parametrize("headers", [
    pytest.param([], id="none"),
    pytest.param([(b"a", b"")], id="empty-value"),
    pytest.param([(b"a", b"1"), (b"a", b"2"), (b"B", b"\xff\x00")], id="dups-and-bytes"),
])
def test_round_trip(headers):
    assert decode_hdrs_bin(encode_hdrs_bin(headers)) == headers


@pytest.mark.parametrize(("data", "message"), [
    pytest.param(b"", "truncated", id="empty"),
    pytest.param(b"\x04host\x01a", "truncated", id="no-terminator"),
    pytest.param(b"\x04ho", "runs past", id="name-too-long"),
    pytest.param(b"\x01a\x05ab", "runs past", id="value-too-long"),
    pytest.param(b"\x00\x01x", "empty header name with a non-empty value", id="empty-name"),
    pytest.param(b"\x00\x00\x00", "after the 00 00 terminator", id="trailing"),
    pytest.param(b"\x01a\xf0", "truncated varint", id="cut-varint"),
])
def test_decode_errors(data, message):
    with pytest.raises(HeaderBlockError, match=message):
        decode_hdrs_bin(data)


def test_empty_name_cannot_be_encoded():
    with pytest.raises(HeaderBlockError):
        encode_hdrs_bin([("", "x")])
