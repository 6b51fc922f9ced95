"""``wire()``, run on every sample sent: its shortcuts for the common types (str, bytes, bool,
None, addresses, in-range plain ints) give what the general rules give: 64-bit wrap-around of
every integer, int subclasses (``Int64``...) as plain ints, bytearray and memoryview as bytes,
everything else as it is."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from spoe_sync.protocol.values import Int32, Int64, UInt32, UInt64
from spoe_sync.rules.sample import wire


def reference(value: object) -> object:
    """The rules, without shortcuts."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        n = int(value) & ((1 << 64) - 1)
        return n - (1 << 64) if n >= 1 << 63 else n
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


class Text(str):
    """A str subclass (what a server may put in an environ)."""


values = st.one_of(
    st.none(), st.booleans(), st.integers(-(1 << 80), 1 << 80), st.text(max_size=5),
    st.binary(max_size=5), st.binary(max_size=5).map(bytearray),
    st.binary(max_size=5).map(memoryview), st.text(max_size=5).map(Text),
    st.sampled_from([(1 << 63) - 1, 1 << 63, -(1 << 63), -(1 << 63) - 1, (1 << 64) - 1, 1 << 64,
                     Int32(-5), Int64(1 << 62), UInt32(7), UInt64((1 << 64) - 1),
                     IPv4Address("192.0.2.1"), IPv6Address("2001:db8::1")]),
)


@given(values)
def test_wire_agrees_with_the_general_rules(value):
    got, expected = wire(value), reference(value)
    assert got == expected
    assert type(got) is type(expected)
