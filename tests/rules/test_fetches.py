"""Every implemented sample fetch (configuration.txt §7.3.2-§7.3.6) with HAProxy's output type
and NULL-vs-empty semantics (docs/explanation/agents.md §2.1, §3.2, §3.3)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.protocol import DataType, data_type_of
from spoe_sync.rules import (
    EvalContext,
    RequestInfo,
    ResponseInfo,
    SampleSource,
    StaticSamples,
    TCPSamples,
    parse_sample,
)
from spoe_sync.rules.fetches import REGISTRY

REQUEST = RequestInfo(
    method="POST",
    target="/some/path?x=1&y=&x=3",
    version="HTTP/1.1",
    headers=[
        ("Host", "Example.COM"),
        ("X-List", " a, b "),
        ("User-Agent", "curl/8.0 (x, y)"),
        ("x-list", '"c,d", e'),
        ("Cookie", "sid=abc; other=1; $Version=1"),
        ("Cookie", "sid=second; empty="),
        ("Content-Length", "11"),
        ("Connection", "close"),
    ],
    body=b"hello world",
)
RESPONSE = ResponseInfo(302, [("Location", "/x"), ("Set-Cookie", "s=1; Path=/"),
                              ("Set-Cookie", "t=2")], body=b"moved", version="HTTP/1.0")
SOURCE = SampleSource(
    client=(IPv4Address("192.0.2.7"), 40000),
    local=(IPv6Address("2001:db8::1"), 443),
    ssl=True,
    request=REQUEST,
    response=RESPONSE,
    req_payload=b"\x16\x03\x01hello",
    res_payload=b"HTTP/1.1 200",
    unique_id="abc-123",
    frontend_id=3,
    frontend_name="web",
    sni="www.example.com",
    sni_known=True,
)
VARS = {"txn.a.s": "text", "txn.a.i": 7, "sess.x": True}

HDRS = ("host: Example.COM\r\nx-list: a, b\r\nuser-agent: curl/8.0 (x, y)\r\n"
        'x-list: "c,d", e\r\ncookie: sid=abc; other=1; $Version=1\r\n'
        "cookie: sid=second; empty=\r\ncontent-length: 11\r\n\r\n")

CASES = [
    # layer 4/5
    ("src", IPv4Address("192.0.2.7"), DataType.IPV4),
    ("src_port", 40000, DataType.INT64),
    ("dst", IPv6Address("2001:db8::1"), DataType.IPV6),
    ("dst_port", 443, DataType.INT64),
    ("ssl_fc", True, DataType.BOOL),
    ("ssl_fc_sni", "www.example.com", DataType.STRING),
    ("ssl_fc_has_sni", True, DataType.BOOL),
    ("fe_id", 3, DataType.INT64),
    ("unique-id", "abc-123", DataType.STRING),
    ("req.payload(0,3)", b"\x16\x03\x01", DataType.BINARY),
    ("req.payload(3,0)", b"hello", DataType.BINARY),
    ("req.payload(5,10)", None, DataType.NULL),
    ("payload(0,1)", b"\x16", DataType.BINARY),
    ("req.len", 8, DataType.INT64),
    ("res.payload(0,4)", b"HTTP", DataType.BINARY),
    ("res.len", 12, DataType.INT64),
    # request line
    ("method", "POST", DataType.STRING),
    ("url", "/some/path?x=1&y=&x=3", DataType.STRING),
    ("path", "/some/path", DataType.STRING),
    ("pathq", "/some/path?x=1&y=&x=3", DataType.STRING),
    ("query", "x=1&y=&x=3", DataType.STRING),
    ("req.ver", "1.1", DataType.STRING),
    ("req_ver", "1.1", DataType.STRING),
    ("base", "Example.COM/some/path", DataType.STRING),
    ("url_param(x)", "1", DataType.STRING),
    ("url_param(y)", "", DataType.STRING),
    ("url_param(z)", None, DataType.NULL),
    ("urlp_val(x)", 1, DataType.INT64),
    ("urlp(x)", "1", DataType.STRING),
    ("req.proto_http", True, DataType.BOOL),
    # request headers
    ("req.hdr(host)", "Example.COM", DataType.STRING),
    ("hdr(HOST)", "Example.COM", DataType.STRING),
    ("req.hdr(x-list)", "e", DataType.STRING),
    ("req.hdr(x-list,1)", "a", DataType.STRING),
    ("req.hdr(x-list,3)", '"c,d"', DataType.STRING),
    ("req.hdr(x-list,-2)", '"c,d"', DataType.STRING),
    ("req.hdr(x-list,5)", None, DataType.NULL),
    ("req.hdr(x-list,0)", "e", DataType.STRING),
    ("req.hdr(x-missing)", None, DataType.NULL),
    ("req.hdr(connection)", None, DataType.NULL),
    ("req.fhdr(x-list)", '"c,d", e', DataType.STRING),
    ("req.fhdr(x-list,1)", "a, b", DataType.STRING),
    ("req.fhdr(user-agent)", "curl/8.0 (x, y)", DataType.STRING),
    ("req.hdr(user-agent)", "y)", DataType.STRING),
    ("req.hdr_cnt(x-list)", 4, DataType.INT64),
    ("req.fhdr_cnt(x-list)", 2, DataType.INT64),
    ("req.hdr_cnt(nope)", 0, DataType.INT64),
    ("req.hdr_val(content-length)", 11, DataType.INT64),
    ("req.hdr_names", "host,x-list,user-agent,x-list,cookie,cookie,content-length",
     DataType.STRING),
    ("req.hdr_names(;)", "host;x-list;user-agent;x-list;cookie;cookie;content-length",
     DataType.STRING),
    ("req.hdrs", HDRS, DataType.STRING),
    ("req.cook(sid)", "second", DataType.STRING),
    ("req.cook(other)", "1", DataType.STRING),
    ("req.cook(empty)", "", DataType.STRING),
    ("req.cook(nope)", None, DataType.NULL),
    ("req.cook($Version)", None, DataType.NULL),
    ("cook(sid)", "second", DataType.STRING),
    ("req.cook", "abc", DataType.STRING),  # no name: the first cookie (observed, 2.6)
    ("req.hdr", None, DataType.NULL),  # no name: the fetch fails (observed, 2.6)
    ("req.fhdr", None, DataType.NULL),
    ("req.hdr_cnt", 10, DataType.INT64),
    ("req.fhdr_cnt", 7, DataType.INT64),
    ("req.cook_cnt(sid)", 2, DataType.INT64),
    ("req.cook_val(other)", 1, DataType.INT64),
    # bodies
    ("req.body", b"hello world", DataType.BINARY),
    ("req.body_len", 11, DataType.INT64),
    ("req.body_size", 11, DataType.INT64),
    # response
    ("status", 302, DataType.INT64),
    ("res.ver", "1.0", DataType.STRING),
    ("resp_ver", "1.0", DataType.STRING),
    ("res.hdr(location)", "/x", DataType.STRING),
    ("shdr(location)", "/x", DataType.STRING),
    ("res.fhdr(set-cookie,1)", "s=1; Path=/", DataType.STRING),
    ("res.hdr_cnt(set-cookie)", 2, DataType.INT64),
    ("res.hdrs", "location: /x\r\nset-cookie: s=1; Path=/\r\nset-cookie: t=2\r\n\r\n",
     DataType.STRING),
    ("res.cook(s)", "1", DataType.STRING),
    ("res.cook(t)", "2", DataType.STRING),
    ("res.cook(Path)", None, DataType.NULL),
    ("res.body", b"moved", DataType.BINARY),
    ("res.body_len", 5, DataType.INT64),
    ("res.body_size", 5, DataType.INT64),
    # derived (values checked against HAProxy 2.6 in the conformance tier)
    ("baseq", "Example.COM/some/path?x=1&y=&x=3", DataType.STRING),
    ("base32", 1253137197, DataType.INT64),
    ("url32", 946898254, DataType.INT64),
    ("base32+src", (1253137197).to_bytes(4, "big") + bytes([192, 0, 2, 7]), DataType.BINARY),
    ("url32+src", (946898254).to_bytes(4, "big") + bytes([192, 0, 2, 7]), DataType.BINARY),
    ("url_ip", None, DataType.NULL),
    ("url_port", None, DataType.NULL),
    ("req.body_param(x)", None, DataType.NULL),
    ("req.body_param", None, DataType.NULL),
    ("req.hdr_ip(x-list)", None, DataType.NULL),
    ("fe_name", "web", DataType.STRING),
    # literals and internal state
    ("str(abc)", "abc", DataType.STRING),
    ("str()", "", DataType.STRING),
    ("int(-5)", -5, DataType.INT64),
    ("bool(true)", True, DataType.BOOL),
    ("bool(0)", False, DataType.BOOL),
    ("bin(DEADbeef)", b"\xde\xad\xbe\xef", DataType.BINARY),
    ("ipv4(10.0.0.1)", IPv4Address("10.0.0.1"), DataType.IPV4),
    ("ipv6(::55)", IPv6Address("::55"), DataType.IPV6),
    ("always_true", True, DataType.BOOL),
    ("always_false", False, DataType.BOOL),
    ("var(txn.a.s)", "text", DataType.STRING),
    ("var(txn.a.i)", 7, DataType.INT64),
    ("var(sess.x)", True, DataType.BOOL),
    ("var(txn.unset)", None, DataType.NULL),
    ("var(txn.unset,fallback)", "fallback", DataType.STRING),
]


@pytest.mark.parametrize(("text", "value", "wire"),
                         [pytest.param(*c, id=c[0]) for c in CASES])
def test_fetch(text, value, wire):
    result = parse_sample(text).evaluate(EvalContext(SOURCE, VARS))
    assert result == value
    assert type(result) is type(value)
    assert data_type_of(result) == wire


def test_variables_are_sent_as_haproxy_types():
    from spoe_sync.protocol import Int32, UInt32, UInt64

    vars_ = {"txn.a": UInt32(5), "txn.b": Int32(-1), "txn.c": UInt64(2**64 - 1)}
    ctx = EvalContext(SOURCE, vars_)
    got = [parse_sample(f"var(txn.{n})").evaluate(ctx) for n in "abc"]
    # HAProxy stores every integer as a signed 64-bit sample and sends INT64
    assert got == [5, -1, -1]
    assert [type(v) for v in got] == [int, int, int]


@pytest.mark.parametrize(("target", "headers", "body", "text", "expected"), [
    pytest.param("http://1.2.3.4:8080/p?x", [], b"", "url_ip", IPv4Address("1.2.3.4"),
                 id="url_ip"),
    pytest.param("http://1.2.3.4:8080/p?x", [], b"", "url_port", 8080, id="url_port"),
    pytest.param("http://[2001:db8::1]:81/", [], b"", "url_ip", IPv6Address("2001:db8::1"),
                 id="url_ip-v6"),
    pytest.param("http://1.2.3.4/p", [], b"", "url_port", None, id="url_port-absent"),
    pytest.param("http://name/p", [], b"", "url_ip", None, id="url_ip-name"),
    pytest.param("/", [], b"a=1&b=x%20y", "req.body_param(b)", "x%20y", id="body_param"),
    pytest.param("/", [], b"a=1&b=2", "req.body_param", "1", id="body_param-first"),
    pytest.param("/", [], b"flag&b=2", "req.body_param", "2", id="body_param-needs-equal"),
    pytest.param("/", [("X-IP", "10.0.0.1, ::1")], b"", "req.hdr_ip(x-ip)",
                 IPv6Address("::1"), id="hdr_ip-last"),
    pytest.param("/", [("X-IP", "10.0.0.1, ::1")], b"", "req.hdr_ip(x-ip,1)",
                 IPv4Address("10.0.0.1"), id="hdr_ip-first"),
    pytest.param("/p", [], b"", "base", "/p", id="base-without-host"),
])
def test_derived_fetches(target, headers, body, text, expected):
    ctx = EvalContext(SampleSource(request=RequestInfo("POST", target, "HTTP/1.1", headers,
                                                       body)))
    assert parse_sample(text).evaluate(ctx) == expected


def test_internal_fetches(monkeypatch):
    import platform
    import time
    import uuid

    monkeypatch.setenv("SPOE_SYNC_TEST_ENV", "v")
    ctx = EvalContext(SampleSource())
    assert parse_sample("env(SPOE_SYNC_TEST_ENV)").evaluate(ctx) == "v"
    assert parse_sample("env(SPOE_SYNC_TEST_UNSET)").evaluate(ctx) is None
    assert parse_sample("hostname").evaluate(ctx) == platform.node()
    assert all(0 <= parse_sample("rand(7)").evaluate(ctx) < 7 for _ in range(50))
    assert 0 <= parse_sample("rand").evaluate(ctx) < 2**32
    now = int(time.time())
    assert now - 1 <= parse_sample("date").evaluate(ctx) <= now + 1
    assert now + 99 <= parse_sample("date(100)").evaluate(ctx) <= now + 101
    assert abs(parse_sample("date(0,ms)").evaluate(ctx) - now * 1000) < 2000
    # HAProxy 2.6's uuid(): a random version 4 UUID, lowercase 8-4-4-4-12 hex
    ids = [parse_sample(t).evaluate(ctx) for t in ("uuid", "uuid()", "uuid(4)")]
    assert len(set(ids)) == 3 and all(uuid.UUID(i).version == 4 and i == i.lower() for i in ids)


def test_req_hdrs_bin_layout():
    block = parse_sample("req.hdrs_bin").evaluate(EvalContext(SOURCE))
    assert block.startswith(b"\x04host\x0bExample.COM\x06x-list\x04a, b")
    assert block.endswith(b"\x0econtent-length\x0211\x00\x00")


def test_every_registered_fetch_is_in_the_table_or_an_alias():
    tested = {parse_sample(c[0]).fetch for c in CASES} | {"req.hdrs_bin", "res.hdrs_bin",
                                                         "res.hdr_val", "res.cook_cnt",
                                                         "res.cook_val", "res.hdr_names",
                                                         "res.fhdr_cnt", "env", "hostname",
                                                         "rand", "date", "uuid", "req.ssl_hello_type",
                                                         "req.ssl_ver", "req.ssl_sni",
                                                         "req.ssl_alpn", "req.ssl_ec_ext",
                                                         "req.ssl_st_ext",  # test_tls_fetches
                                                         "capture.req.hdr"}  # tests/wsgi
    assert set(REGISTRY) <= tested


@pytest.mark.parametrize("text", [pytest.param(t, id=t) for t in (
    "src", "dst_port", "method", "path", "url", "query", "req.ver", "req.hdr(host)", "req.hdrs",
    "req.hdrs_bin", "req.body", "req.body_size", "status", "res.hdrs", "res.ver", "res.body",
    "req.cook(a)", "unique-id", "fe_id", "req.payload(0,1)", "req.len")])
def test_missing_data_is_null(text):
    assert parse_sample(text).evaluate(EvalContext(SampleSource())) is None


@pytest.mark.parametrize(("target", "path", "query", "pathq"), [
    pytest.param("/a?b", "/a", "b", "/a?b", id="origin-form"),
    pytest.param("/a?", "/a", "", "/a?", id="empty-query"),
    pytest.param("/a", "/a", None, "/a", id="no-query"),
    pytest.param("*", None, None, None, id="asterisk"),
    pytest.param("http://h:80/p?q", "/p", "q", "/p?q", id="absolute"),
    pytest.param("http://h", None, None, None, id="absolute-no-path"),
    pytest.param("h:443", None, None, None, id="authority-form"),
    pytest.param("/a?b?c", "/a", "b?c", "/a?b?c", id="two-question-marks"),
])
def test_path_and_query(target, path, query, pathq):
    ctx = EvalContext(SampleSource(request=RequestInfo("GET", target)))
    assert [parse_sample(t).evaluate(ctx) for t in ("path", "query", "pathq")] == [
        path, query, pathq]


@pytest.mark.parametrize(("version", "expected"), [
    pytest.param("HTTP/1.1", "1.1", id="1.1"),
    pytest.param("HTTP/2.0", "2.0", id="2.0"),
    pytest.param("HTTP/", None, id="empty"),
    pytest.param("junk", None, id="no-slash"),
])
def test_req_ver(version, expected):
    ctx = EvalContext(SampleSource(request=RequestInfo("GET", "/", version)))
    assert parse_sample("req.ver").evaluate(ctx) == expected


def test_body_not_buffered_is_empty_binary():
    ctx = EvalContext(SampleSource(request=RequestInfo("GET", "/")))
    assert parse_sample("req.body").evaluate(ctx) == b""
    assert parse_sample("req.body_size").evaluate(ctx) == 0


def test_transfer_encoding_drops_content_length():
    req = RequestInfo("POST", "/", headers=[("Content-Length", "99"),
                                            ("Transfer-Encoding", "chunked")], body=b"abc")
    ctx = EvalContext(SampleSource(request=req))
    assert parse_sample("req.hdr(content-length)").evaluate(ctx) is None
    # HAProxy 2.6 still counts the dropped Content-Length as known to come (htx->extra):
    # the data held plus 99 (observed by the fuzz tier: chunked "b" with Content-Length 5 is 6)
    assert parse_sample("req.body_size").evaluate(ctx) == 102


def test_connection_header_keeps_other_tokens():
    req = RequestInfo("GET", "/", headers=[("Connection", "keep-alive, Upgrade, close")])
    ctx = EvalContext(SampleSource(request=req))
    assert parse_sample("req.fhdr(connection)").evaluate(ctx) == "Upgrade"


def test_non_utf8_header_bytes_round_trip():
    req = RequestInfo("GET", "/", headers=[(b"X-Latin", b"caf\xe9")])
    ctx = EvalContext(SampleSource(request=req))
    value = parse_sample("req.hdr(x-latin)").evaluate(ctx)
    assert value.encode("utf-8", "surrogateescape") == b"caf\xe9"


def test_tcp_samples():
    src = TCPSamples(("10.1.1.1", 1234), ("10.2.2.2", 443), b"GET / HTTP/1.1\r\n", ssl=True)
    ctx = EvalContext(src)
    got = [parse_sample(t).evaluate(ctx)
           for t in ("src", "src_port", "dst", "dst_port", "req.len", "req.payload(0,3)",
                     "ssl_fc", "req.hdr(host)")]
    assert got == [IPv4Address("10.1.1.1"), 1234, IPv4Address("10.2.2.2"), 443, 16, b"GET",
                   True, None]


@pytest.mark.parametrize("addr", [
    pytest.param("/tmp/sock", id="unix-path"),
    pytest.param(("not-an-ip", 1), id="hostname"),
    pytest.param(None, id="none"),
    pytest.param(("10.0.0.1", "x"), id="bad-port"),
])
def test_tcp_samples_bad_addresses_are_null(addr):
    ctx = EvalContext(TCPSamples(addr, addr))
    assert parse_sample("src").evaluate(ctx) is None
    assert parse_sample("dst_port").evaluate(ctx) is None


def test_tcp_samples_ipv6_with_scope():
    ctx = EvalContext(TCPSamples(("fe80::1%eth0", 5, 0, 2), None))
    assert parse_sample("src").evaluate(ctx) == IPv6Address("fe80::1")


@pytest.mark.parametrize(("mapping", "text", "expected"), [
    pytest.param({"src": IPv4Address("10.0.0.1")}, "src", IPv4Address("10.0.0.1"), id="src"),
    pytest.param({"req.hdr(host)": "A.example"}, "req.hdr(host),lower", "a.example",
                 id="converter-on-static"),
    pytest.param({"req.hdr(host)": "a"}, "hdr(host)", "a", id="alias-finds-canonical"),
    pytest.param({"hdr(host)": "a"}, "hdr(host)", "a", id="as-written"),
    pytest.param({}, "path", None, id="missing-is-null"),
    pytest.param({"str(x)": "ignored"}, "str(x)", "x", id="literal-not-looked-up"),
    pytest.param({"status": 200}, "status", 200, id="int"),
])
def test_static_samples(mapping, text, expected):
    assert parse_sample(text).evaluate(EvalContext(StaticSamples(mapping))) == expected


@pytest.mark.parametrize(("method", "target", "headers", "bufsize", "limit"), [
    # req.body_len measured on HAProxy 2.6.12 with option http-buffer-request, 100000-byte body
    pytest.param("POST", "/b", [], 16384, 15212, id="default-bufsize"),
    pytest.param("PUT", "/longer/uri?x=1", [("A", "1"), ("Bb", "22"), ("C", "")], 16384, 15169,
                 id="more-headers"),
    pytest.param("POST", "/b", [("X", "y")] * 20, 16384, 15012, id="many-headers"),
    pytest.param("POST", "/b", [], 32768, 31596, id="bigger-bufsize"),
])
def test_haproxy_body_limit(method, target, headers, bufsize, limit):
    from spoe_sync.rules.sources import haproxy_body_limit

    req = RequestInfo(method, target, "HTTP/1.1",
                      [("Host", "h"), *headers, ("Content-Length", "100000"),
                       ("Connection", "close")])
    assert haproxy_body_limit(req, bufsize) == limit


def test_static_samples_reject_values_without_a_spop_type():
    with pytest.raises(TypeError, match=r"StaticSamples\['src'\]: float has no SPOP type"):
        StaticSamples({"src": 1.5})


# HAProxy 2.6.12, observed with ``http-request return lf-string "%[base]..."`` and
# ``acl x base -m found`` on raw requests: a target without a path (``OPTIONS *``, an absolute
# URI without one) gives the Host alone; no Host and no path gives NULL (smp_fetch_base())
@pytest.mark.parametrize(("method", "target", "headers", "base", "baseq", "base32"), [
    pytest.param("OPTIONS", "*", [("Host", "h")], "h", "h", 1228821030, id="options-star"),
    pytest.param("OPTIONS", "*", [], None, None, 2874071335, id="options-star-no-host"),
    pytest.param("GET", "http://h", [("Host", "h")], "h", "h", None, id="absolute-no-path"),
    pytest.param("GET", "/", [("Host", "h")], "h/", "h/", 1983837113, id="root"),
    pytest.param("GET", "/a?b", [("Host", "h")], "h/a", "h/a?b", 4103165788, id="query"),
    pytest.param("GET", "/a?b", [], "/a", "/a?b", None, id="no-host"),
    pytest.param("GET", "http://h/a?b", [("Host", "h")], "h/a", "h/a?b", None, id="absolute"),
])
def test_base_fetches_without_a_path(method, target, headers, base, baseq, base32):
    ctx = EvalContext(SampleSource(request=RequestInfo(method, target, "HTTP/1.1", headers,
                                                       b"")))
    assert parse_sample("base").evaluate(ctx) == base
    assert parse_sample("baseq").evaluate(ctx) == baseq
    if base32 is not None:
        assert parse_sample("base32").evaluate(ctx) == base32


@pytest.mark.parametrize("ssl, sni, known, expected", [
    pytest.param(True, "a.example", True, ("a.example", True), id="tls-with-sni"),
    pytest.param(True, None, True, (None, False), id="tls-without-sni"),
    # a WSGI server over TLS does not tell the SNI: has_sni is absent, not a guess
    pytest.param(True, None, False, (None, None), id="tls-sni-unknown"),
    # HAProxy (conformance tier): no SNI (NULL) and has_sni false without TLS
    pytest.param(False, "a.example", True, (None, False), id="no-tls"),
])
def test_ssl_fc_sni(ssl, sni, known, expected):
    ctx = EvalContext(SampleSource(ssl=ssl, sni=sni, sni_known=known))
    assert (parse_sample("ssl_fc_sni").evaluate(ctx),
            parse_sample("ssl_fc_has_sni").evaluate(ctx)) == expected
