"""``map*`` converters and map files (configuration.txt §7.3.1 ``map``): file syntax, matching
methods, output types, defaults, IP longest-prefix lookups and load errors."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.errors import ExpressionError
from spoe_sync.rules import EvalContext, StaticSamples, parse_sample

FILES = {
    "hosts.map": "# comment\n  a.example   backend a  \t\nb.example\tb\n#c.example c\nempty\n",
    "paths.map": "/api api\n/ root\n",
    "ips.map": "10.0.0.0/8 ten\n10.1.0.0/16 ten-one\n2001:db8::/32 doc\n",
    "ints.map": "1 one\n42 answer\n",
    "ports.map": "a 80\nb -1\n",
    "addrs.map": "a 10.0.0.1\nb ::1\n",
    "regs.map": "^/v[0-9]+/ versioned\n",
    "bad_int.map": "a eighty\n",
    "bad_ip.map": "10.0.0.300 x\n",
}


@pytest.fixture
def base(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize(("expr", "expected"), [
    pytest.param("str(a.example),map(hosts.map)", "backend a", id="value-keeps-inner-spaces"),
    pytest.param("str(b.example),map(hosts.map)", "b", id="tab-separated"),
    pytest.param("str(c.example),map(hosts.map)", None, id="comment-line"),
    pytest.param("str(c.example),map(hosts.map,dflt)", "dflt", id="default"),
    pytest.param("str(empty),map(hosts.map)", "", id="key-without-value"),
    pytest.param("str(A.EXAMPLE),map(hosts.map)", None, id="case-sensitive"),
    pytest.param("str(a.example),map_str(hosts.map)", "backend a", id="map_str"),
    pytest.param("str(/api/x),map_beg(paths.map)", "api", id="beg-first-match"),
    pytest.param("str(/x),map_beg(paths.map)", "root", id="beg-fallback"),
    pytest.param("str(/v2/x),map_reg(regs.map)", "versioned", id="reg"),
    pytest.param("ipv4(10.1.2.3),map_ip(ips.map)", "ten-one", id="ip-longest-prefix"),
    pytest.param("ipv4(10.9.9.9),map_ip(ips.map)", "ten", id="ip-shorter-prefix"),
    pytest.param("ipv6(2001:db8::7),map_ip(ips.map)", "doc", id="ip-v6"),
    pytest.param("str(10.1.0.1),map_ip(ips.map)", "ten-one", id="ip-from-string"),
    pytest.param("int(42),map_int(ints.map)", "answer", id="int"),
    pytest.param("str(a),map_str_int(ports.map)", 80, id="int-output"),
    pytest.param("str(b),map_str_int(ports.map)", -1, id="int-output-negative"),
    pytest.param("str(z),map_str_int(ports.map,7)", 7, id="int-default"),
    pytest.param("str(a),map_str_ip(addrs.map)", IPv4Address("10.0.0.1"), id="ip-output"),
    pytest.param("str(b),map_str_ip(addrs.map)", IPv6Address("::1"), id="ip6-output"),
])
def test_map(expr, expected, base):
    assert parse_sample(expr, base_dir=base).evaluate(EvalContext(StaticSamples())) == expected


@pytest.mark.parametrize(("expr", "message"), [
    pytest.param("str(a),map(nope.map)", "failed to open map file <nope.map>", id="missing"),
    pytest.param("str(a),map_str_int(bad_int.map)", "'eighty' is not a valid integer",
                 id="bad-int-value"),
    pytest.param("str(a),map_ip(bad_ip.map)", "is not a valid IPv4 or IPv6 address",
                 id="bad-ip-key"),
    pytest.param("str(a),map", "expected type 'map file' at position 1", id="no-file"),
    pytest.param("str(a),map_str_int(ports.map,x)", "failed to parse 'x' as type 'integer'",
                 id="bad-default"),
])
def test_map_errors(expr, message, base):
    with pytest.raises(ExpressionError) as err:
        parse_sample(expr, base_dir=base)
    assert message in str(err.value)


def test_map_in_acl(base):
    from spoe_sync.rules.acl import parse_acl_expr

    acl = parse_acl_expr(["str(a.example),map(hosts.map)", "-m", "str", "backend", "a"],
                         base_dir=base)
    assert acl.evaluate(EvalContext(StaticSamples())) is False  # two patterns, neither equal
    acl = parse_acl_expr(["str(a.example),map(hosts.map)", "-m", "beg", "backend"],
                         base_dir=base)
    assert acl.evaluate(EvalContext(StaticSamples())) is True
