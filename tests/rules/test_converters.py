"""Converters (configuration.txt §7.3.1): results, implicit casts and failures (NULL)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.rules import EvalContext, StaticSamples, parse_sample
from spoe_sync.rules.converters import CONVERTERS

SAMPLES = StaticSamples({
    "src": IPv4Address("192.0.2.77"),
    "src,v6": IPv6Address("2001:db8::77"),
    "req.hdr(x)": "Hello World",
    "req.hdr(bad)": "caf\udce9",  # the byte 0xe9, not UTF-8
    "req.body": b"\x00\xffab",
})
VARS = {"txn.n": 5, "txn.s": "abc", "txn.b": True, "txn.t": "zzz"}

CASES = [
    ("req.hdr(x),lower", "hello world"),
    ("req.hdr(x),upper", "HELLO WORLD"),
    ("str(\u00e9A),lower", "\u00e9a"),
    ("req.hdr(x),length", 11),
    ("req.hdr(bad),length", 4),
    ("req.hdr(x),regsub(o,0)", "Hell0 World"),
    ("req.hdr(x),regsub(o,0,g)", "Hell0 W0rld"),
    ("req.hdr(x),regsub(O,0,gi)", "Hell0 W0rld"),
    ("req.hdr(x),regsub('([a-z]+)',<\\1>)", "H<ello> World"),
    ("req.hdr(x),field(2, )", "World"),
    ("str(a/b/c),field(2,/)", "b"),
    # the examples of configuration.txt
    ("str(f1_f2_f3__f5),field(5,_)", "f5"),
    ("str(f1_f2_f3__f5),field(2,_,0)", "f2_f3__f5"),
    ("str(f1_f2_f3__f5),field(2,_,2)", "f2_f3"),
    ("str(f1_f2_f3__f5),field(-2,_,3)", "f2_f3_"),
    ("str(f1_f2_f3__f5),field(-3,_,0)", "f1_f2_f3"),
    ("str(f1_f2_f3__f5),word(4,_)", "f5"),
    ("str(f1_f2_f3__f5),word(2,_,0)", "f2_f3__f5"),
    ("str(f1_f2_f3__f5),word(3,_,2)", "f3__f5"),
    ("str(f1_f2_f3__f5),word(-2,_,3)", "f1_f2_f3"),
    ("str(f1_f2_f3__f5),word(-3,_,0)", "f1_f2"),
    ("str(/f1/f2/f3/f4),word(1,/)", "f1"),
    ("str(a/b/c),field(-1,/)", "c"),
    ("str(a/b/c),field(2,/,0)", "b/c"),
    ("str(a/b/c),field(5,/)", None),  # "Field not found" fails (seen by the fuzz tier)
    ("str(a/b/c),field(-5,/)", None),
    ("str(a/b/c),word(-5,/)", ""),
    ("str(//a/b),word(1,/)", "a"),
    ("str(//a/b),word(-1,/)", "b"),
    ("str(xxaxx),ltrim(x)", "axx"),
    ("str(xxaxx),rtrim(x)", "xxa"),
    ("str(a\rb),cut_crlf", "a"),
    ("str(abc),base64", "YWJj"),
    ("str(YWJj),b64dec", b"abc"),
    ("str(!!),b64dec", None),
    ("str(ab?),ub64enc", "YWI_"),
    ("str(YWI_),ub64dec", b"ab?"),
    ("req.body,hex", "00FF6162"),
    ("str(1f),hex2i", 31),
    ("str(zz),hex2i", None),
    ("str(-1f),hex2i", None),
    ("str(hello),bytes(1,3)", "ell"),
    ("req.body,bytes(2)", b"ab"),
    ("req.body,bytes(9)", b""),
    ("str(abc),bytes(5)", ""),
    ("str('a\"b/c'),json", 'a\\"b\\/c'),
    ("req.hdr(bad),json", "caf\\u00e9"),
    ("req.hdr(bad),json(utf8)", None),
    ("req.hdr(bad),json(utf8s)", "caf"),
    ("req.hdr(bad),json(utf8p)", None),
    ("req.hdr(bad),json(utf8ps)", "caf"),
    ("str(\u00e9),json(ascii)", "\\u00c3\\u00a9"),
    ("str(a%20b+c),url_dec", "a b+c"),
    ("str(/p?a=b+c),url_dec", "/p?a=b c"),
    ("str(a+b),url_dec(1)", "a b"),
    ("str(%zz),url_dec", None),
    ("str(a b&c),url_enc", "a%20b%26c"),
    ("int(40),add(2)", 42),
    ("int(40),add(txn.n)", 45),
    ("int(40),add(txn.b)", 41),
    ("int(40),add(txn.unset)", None),
    ("int(40),sub(50)", -10),
    ("int(6),mul(-7)", -42),
    ("int(7),div(2)", 3),
    ("int(-7),div(2)", -3),
    ("int(7),div(0)", 9223372036854775807),
    ("int(-7),mod(3)", -1),
    ("int(7),mod(0)", 0),
    ("int(12),and(10)", 8),
    ("int(12),or(3)", 15),
    ("int(12),xor(10)", 6),
    ("int(5),neg", -5),
    ("int(5),cpl", -6),
    ("int(9223372036854775807),add(1)", 9223372036854775807),
    ("int(-9223372036854775808),sub(1)", -9223372036854775808),
    ("int(9223372036854775807),mul(-2)", -9223372036854775808),
    ("int(-9223372036854775808),div(-1)", 9223372036854775807),
    ("int(-9223372036854775808),neg", 9223372036854775807),
    ("int(3),bool", True),
    ("int(0),bool", False),
    ("int(3),not", False),
    ("int(3),odd", True),
    ("int(3),even", False),
    ("str(12abc),add(1)", 13),
    ("str(),add(1)", None),
    ("bool(1),iif(yes,no)", "yes"),
    ("bool(0),iif(yes,no)", "no"),
    ("str(abc),strcmp(txn.s)", 0),
    ("str(abd),strcmp(txn.s)", 1),
    ("str(abc),strcmp(txn.unset)", None),
    ("str(a),concat(<,txn.s,>)", "a<abc>"),
    ("str(a),concat(,txn.unset,)", "a"),
    ("src,ipmask(24)", IPv4Address("192.0.2.0")),
    ("src,ipmask(255.255.0.0)", IPv4Address("192.0.0.0")),
    ("src,ipmask(24,64)", IPv4Address("192.0.2.0")),
    ("src,lower", "192.0.2.77"),
    ("int(12),lower", "12"),
    ("str(abc),sha1,hex", "A9993E364706816ABA3E25717850C26C9CD0D89D"),
    ("str(abc),sha2,hex",
     "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"),
    ("str(abc),crc32", 891568578),
    ("str(abc),djb2", 193485963),
    ("str(abc),sdbm", 807794786),
    # hash/binary/time converters: values observed on HAProxy 2.6 (conformance tier)
    ("str(abc),wt6", 2483038440),
    ("str(abc),wt6(1)", 266135527),
    ("str(abc),crc32c", 910901175),
    ("str(abc),crc32c(1)", 1285784220),
    ("str(abc),crc32(1)", 930845320),
    ("str(abc),djb2(1)", 2235766107),
    ("str(abc),sdbm(1)", 659243622),
    ("str(abc),digest(MD5),hex", "900150983CD24FB0D6963F7D28E17F72"),
    ("str(abc),digest(nope),hex", None),
    ("str(abc),hmac(sha256,c2VjcmV0),hex",
     "9946DAD4E00E913FC8BE8E5D3F7E110A4A9E832F83FB09C345285D78638D8A0E"),
    ("str(abc),hmac(sha256,!!),hex", None),
    ("int(258),htonl,hex", "00000102"),
    ("bin(01020304050607),be2dec(:,2)", "258:772:1286:7"),
    ("bin(01020304050607),be2dec(-,2,1)", "258-772-1286"),
    ("bin(01020304050607),be2dec(,2,1)", "2587721286"),
    ("bin(7f000001),be2dec(.,1)", "127.0.0.1"),
    ("bin(01020304050607),be2hex", "01020304050607"),
    ("bin(01020304050607),be2hex(:,2)", "0102:0304:0506:07"),
    ("bin(0102030405060708),be2hex(,3,1)", "010203040506"),
    ("str(Example.COM:8080),host_only", "example.com"),
    ("str(Example.COM:8080),port_only", 8080),
    ("str(example.com),port_only", 0),
    ("str([::1]:80),host_only", "[::1]"),
    ("str([::1]:80),port_only", 80),
    ("int(1700000000),utime(%Y-%m-%dT%H:%M:%S)", "2023-11-14T22:13:20"),
    ("int(1700000000),utime(%H:%M,3600)", "23:13"),
    ("int(1700000000),ltime(%Y)", "2023"),
    ("int(1700000000),http_date", "Tue, 14 Nov 2023 22:13:20 GMT"),
    ("int(0),http_date(86400)", "Fri, 02 Jan 1970 00:00:00 GMT"),
    ("int(1700000000123),http_date(0,ms)", "Tue, 14 Nov 2023 22:13:20.123 GMT"),
    ("int(1700000000000042),http_date(0,us)", "Tue, 14 Nov 2023 22:13:20.42 GMT"),
    ("str(x),debug", "x"),
    ("str(x),debug(p,stderr)", "x"),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=t) for t, e in CASES])
def test_converter(text, expected):
    result = parse_sample(text).evaluate(EvalContext(SAMPLES, VARS))
    assert result == expected
    assert type(result) is type(expected)


def test_every_converter_is_tested():
    used = {part.split("(")[0] for text, _ in CASES for part in text.split(",")[1:]}
    maps = {name for name in CONVERTERS if name.startswith("map")}  # test_maps.py
    assert set(CONVERTERS) - maps <= used | {"ub64dec"}


def test_null_input_stays_null():
    assert parse_sample("req.hdr(missing),lower,base64").evaluate(EvalContext(SAMPLES)) is None


def test_ipmask_on_ipv6_needs_a_v6_mask():
    src = StaticSamples({"src": IPv6Address("2001:db8::77")})
    assert parse_sample("src,ipmask(24)").evaluate(EvalContext(src)) is None
    assert parse_sample("src,ipmask(24,32)").evaluate(EvalContext(src)) == IPv6Address(
        "2001:db8::")
