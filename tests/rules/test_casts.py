"""HAProxy's implicit casts between sample types (sample.c ``sample_casts``): text to an
address the way ``c_str2addr``/``c_str2ipv4``/``c_str2ipv6`` read it (``buf2ip()`` takes the
dotted quad a text starts with, ``buf2ip6()`` the whole text through ``inet_pton``), and IPv6
addresses written as ``inet_ntop`` writes them.  The same texts go through real HAProxy 2.6
in tests/conformance (``set-src``)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.rules import EvalContext, parse_sample
from spoe_sync.rules.casts import cast
from spoe_sync.samples import StaticSamples

V4 = IPv4Address


@pytest.mark.parametrize("text, addr", [
    pytest.param("192.0.2.1", V4("192.0.2.1"), id="plain"),
    pytest.param("192.0.2.1:80", V4("192.0.2.1"), id="with-port"),
    pytest.param("192.0.2.1x", V4("192.0.2.1"), id="trailing-junk"),
    pytest.param("192.0.2.1 x", V4("192.0.2.1"), id="trailing-word"),
    pytest.param("192.0.2.1/24", V4("192.0.2.1"), id="with-mask"),
    pytest.param("01.2.3.4", V4("1.2.3.4"), id="leading-zero"),
    pytest.param("1.2.3", None, id="three-parts"),
    pytest.param("1.2.3.4.5", None, id="five-parts"),
    pytest.param("1.2.3.4.", None, id="trailing-dot"),
    pytest.param("1..2.3", None, id="empty-part"),
    pytest.param("256.1.1.1", None, id="over-255"),
    pytest.param("0x7f.1.1.1", None, id="hex"),
    pytest.param(" 1.2.3.4", None, id="leading-space"),
    pytest.param("", None, id="empty"),
    pytest.param("::1", IPv6Address("::1"), id="v6"),
    pytest.param("::ffff:192.0.2.1", IPv6Address("::ffff:192.0.2.1"), id="v6-mapped"),
    pytest.param("2001:db8::1%eth0", None, id="v6-zone"),
    pytest.param("[::1]:80", None, id="v6-bracketed"),
    pytest.param("::1 x", None, id="v6-trailing"),
    pytest.param("::1\x00junk", IPv6Address("::1"), id="v6-nul"),
])
def test_text_to_address(text, addr):
    assert cast(text, "addr") == addr
    assert cast(text, "ipv4") == (addr if isinstance(addr, IPv4Address) else None)
    assert cast(text, "ipv6") == (addr if isinstance(addr, IPv6Address) else None)
    assert cast(text.encode(), "addr") == addr  # bin goes through str


@pytest.mark.parametrize("addr, text", [
    pytest.param(IPv6Address("::ffff:192.0.2.1"), "::ffff:192.0.2.1", id="mapped"),
    pytest.param(IPv6Address("::192.0.2.1"), "::192.0.2.1", id="compatible"),
    pytest.param(IPv6Address("2001:db8::1"), "2001:db8::1", id="plain"),
    pytest.param(IPv6Address("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1", id="first-run"),
])
def test_ipv6_to_text_is_inet_ntop(addr, text):
    assert cast(addr, "str") == text
    ctx = EvalContext(StaticSamples({"src": addr}))
    masked = parse_sample("src,ipmask(32,128)").evaluate(ctx)
    # a v4-mapped address is masked as the IPv4 address it is (HAProxy 2.6, below)
    assert masked == (addr.ipv4_mapped or addr)


@pytest.mark.parametrize("expr, expected", [
    pytest.param("ipv6(::ffff:1.2.3.4),ipmask(24,64)", V4("1.2.3.0"), id="mapped"),
    pytest.param("ipv6(::ffff:1.2.3.4),ipmask(24)", V4("1.2.3.0"), id="mapped-v4-mask-only"),
    pytest.param("ipv6(::1.2.3.4),ipmask(24,64)", IPv6Address("::"), id="compatible-stays-v6"),
    pytest.param("ipv6(2002:102:304::1),ipmask(24,64)", IPv6Address("2002:102:304::"),
                 id="6to4-stays-v6"),
])
def test_ipmask_of_ipv6_as_haproxy_does(expr, expected):
    """Values read from HAProxy 2.6 (``http-request return ... %[ipv6(...),ipmask(...)]``):
    only the ::ffff: form becomes IPv4."""
    assert parse_sample(expr).evaluate(EvalContext(StaticSamples({}))) == expected
