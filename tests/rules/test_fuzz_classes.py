"""Mismatch classes the differential fuzz tier (tests/conformance/fuzz) found against HAProxy
2.6, one pure test each: HAProxy's value (observed with HAProxy 2.6.12, reproducer in the test
id) and why (the HAProxy function the behaviour comes from)."""

from __future__ import annotations

import pytest

from spoe_sync.rules import EvalContext, RequestInfo, SampleSource, parse_sample
from spoe_sync.rules.casts import int_of_text, strl2ic


def evaluate(expr: str, target: str = "/", headers=(), body: bytes | None = None):
    request = RequestInfo("GET", target, "HTTP/1.1", list(headers), body)
    return parse_sample(expr).evaluate(EvalContext(SampleSource(request=request)))


# --------------------------------------------------------------- url_param / urlp / body_param
# find_url_param_pos()/find_next_url_param(): the list starts after the first delimiter of the
# whole target; '&', ';' and the delimiter separate parameters; the first match wins.


@pytest.mark.parametrize(("target", "expr", "expected"), [
    ("/?a=1;b=2", "url_param(b)", "2"),  # ';' separates by default
    ("/?c=a?b", "url_param(c)", "a"),  # the delimiter '?' ends a value
    ("/??a=1", "urlp(a)", "1"),  # and separates parameters
    ("/?b=?", "urlp(b)", ""),
    ("/?a=1", "url_param(a,;)", None),  # the list starts at the first ';': there is none
    ("/?a=1=2;a=%zz", "url_param(a,;)", "%zz"),
    ("/?a=1&a=1;b=2", "url_param(b,&)", "2"),
    ("/?b=?", "url_param(b,&)", None),
    ("/?a=%zz;x=%41", "url_param()", "%zz"),  # no name: after the first '='
    ("/?a=%zz;x=%41", "url_param(a)", "%zz"),
    ("/??;a=3", "urlp(a)", "3"),
    ("/??a=1;b=2&a=", "url_param(a,;)", ""),
    ("/?n=-7", "urlp_val(n)", -7),
    ("/?n=+5", "urlp_val(n)", -45),
])
def test_url_param(target, expr, expected):
    assert evaluate(expr, target) == expected


@pytest.mark.parametrize(("body", "expr", "expected"), [
    (b"a=1;b", "req.body_param(a)", "1"),
    (b"a=1;b=x%20y", "req.body_param(b)", "x%20y"),
    (b"a=1;b", "req.body_param", "1"),
])
def test_body_param(body, expr, expected):
    assert evaluate(expr, body=body) == expected


# --------------------------------------------------------------- integers from header text


@pytest.mark.parametrize(("text", "expected"), [
    (b"", 0), (b"42", 42), (b"+5", -45), (b"1 2", -58), (b"127.", 1268), (b"-3", -3),
    (b"-", 0), (b"abc", 0), (b"9223372036854775807", -1),  # 32-bit int, wrapped
    (b"4294967296", 0),
])
def test_strl2ic(text, expected):
    assert strl2ic(text) == expected


@pytest.mark.parametrize(("value", "expr", "expected"), [
    ("+7", "req.hdr_val(x-n)", -43),
    ("127.", "req.hdr_val(x-n)", 1268),
    ("", "req.hdr_val(x-n)", 0),
])
def test_hdr_val_reads_like_strl2ic(value, expr, expected):
    assert evaluate(expr, headers=[("X-N", value)]) == expected


def test_cook_val_of_an_empty_cookie_is_zero():
    assert evaluate("req.cook_val(a)", headers=[("Cookie", "a=;b=1")]) == 0


@pytest.mark.parametrize(("text", "expected"), [
    (b"99999999999999999999", 2**63 - 1),  # read_int64 saturates
    (b"-99999999999999999999", -2**63),
    (b"18446744073709551617", 2**63 - 1),
    (b" 5", 0),  # no blank skipped
    (b"+5", 5),
])
def test_string_to_integer_cast(text, expected):
    assert int_of_text(text) == expected


def test_arithmetic_on_a_huge_header_saturates():
    assert evaluate("req.hdr(x-n),sub(1)", headers=[("X-N", "99999999999999999999")]) == \
        2**63 - 2


# --------------------------------------------------------------- cookies
# http_extract_cookie_value(): the scan stops when fewer than len(name) + 2 bytes are left;
# smp_fetch_cookie_cnt() with no name counts every cookie; Set-Cookie values split at commas.


@pytest.mark.parametrize(("line", "expr", "expected"), [
    ("a=;b=1", "req.cook_cnt", 2),
    ("a=;b=1", "req.cook_val(a)", 0),
    ("a=x;c;b=2;a=", "req.cook(a)", "x"),  # the trailing "a=" is never reached
    ("=v; d = 4 ;a=", "req.cook(a)", None),
    ("=v; d = 4 ;a=", "req.cook(d)", "4"),
    ("d = 4 ;n=42;a=", "req.cook_cnt(a)", 0),
    ("a=1, b=2", "req.cook_cnt", 2),
])
def test_request_cookies(line, expr, expected):
    assert evaluate(expr, headers=[("Cookie", line)]) == expected


def response_eval(expr: str, headers, method: str = "GET", body: bytes = b"ok"):
    from spoe_sync.rules import ResponseInfo

    source = SampleSource(request=RequestInfo(method, "/", "HTTP/1.1", []),
                          response=ResponseInfo(200, headers, body))
    return parse_sample(expr).evaluate(EvalContext(source))


@pytest.mark.parametrize(("headers", "expr", "expected"), [
    ([("Set-Cookie", "s=1; Path=/"), ("set-cookie", "t=2, n=5")], "res.cook_cnt", 4),
    ([("Set-Cookie", "s=")], "res.cook_cnt(s)", 0),
    ([("Set-Cookie", "s=")], "res.cook(s)", None),
    ([("Set-Cookie", "n=42; s=x")], "res.cook(s)", None),  # only the first attr names it
    ([("Set-Cookie", "t=2, n=5")], "res.cook_val(n)", 5),
])
def test_response_cookies(headers, expr, expected):
    assert response_eval(expr, headers) == expected


@pytest.mark.parametrize(("expr", "expected"), [
    ("res.body", b""), ("res.body_len", 0), ("res.body_size", 0), ("res.hdr(content-length)", "2"),
])
def test_a_response_to_head_has_no_body(expr, expected):
    assert response_eval(expr, [("Content-Length", "2")], method="HEAD") == expected


def test_field_past_the_last_one_is_null():
    # sample_conv_field(): "Field not found" fails the sample, from the start as from the end
    assert evaluate("req.hdr(x-c),field(2,;)", headers=[("X-C", "Mozil")]) is None
    assert evaluate("req.hdr(x-c),field(-2,;)", headers=[("X-C", "Mozil")]) is None
    assert evaluate("req.hdr(x-c),field(1,;)", headers=[("X-C", "Mozil")]) == "Mozil"


# --------------------------------------------------------------- ACLs iterate


@pytest.mark.parametrize(("target", "headers", "cond", "expected"), [
    ("/..?a=1=2&a=1", [], "{ urlp(a) -m str 1 }", True),  # the second occurrence matches
    ("/?a=2", [], "{ urlp(a) -m str 1 }", False),
    ("/", [("X-IP", "127.0.0.1:80, /api/x")], "{ req.hdr_ip(x-ip) -m ip 127.0.0.0/8 }", True),
    ("/", [("X-Forwarded-For", "10.0.0.1,")], "{ req.hdr_ip(x-forwarded-for) 10.0.0.0/8 }",
     True),
    ("/", [("X-IP", "1.2.3.4, 10.0.0.1")], "{ req.hdr_ip(x-ip) 10.0.0.0/8 }", True),
])
def test_acls_test_every_value(target, headers, cond, expected):
    from spoe_sync.rules import AclRegistry, parse_condition

    request = RequestInfo("GET", target, "HTTP/1.1", headers)
    ctx = EvalContext(SampleSource(request=request))
    assert parse_condition(["if", *cond.split()], AclRegistry()).evaluate(ctx) is expected


# --------------------------------------------------------------- integers, dates, addresses


@pytest.mark.parametrize(("value", "expected"), [("\xc3\xa9t\xc3\xa9", -1225), ("caf\xe9", 0)])
def test_hdr_val_bytes_past_0x7f_are_negative_digits(value, expected):
    assert evaluate("req.hdr_val(x-n)", headers=[("X-N", value)]) == expected


@pytest.mark.parametrize(("expr", "expected"), [
    ("int(-1),sub(1)", 2**63 - 1),  # arith_add()'s own overflow check wraps in C
    ("int(-5),add(-3)", 2**63 - 1),
    ("int(-9223372036854775807),add(-5)", -2**63),
    ("int(5),add(-3)", 2),
    ("int(-5),add(3)", -2),
    ("int(9223372036854775807),add(1)", 2**63 - 1),
    ("int(3),sub(-9223372036854775808)", 2**63 - 1),
    ("int(-1),http_date", "Sun, 13 Jun 1141709097 06:26:07 GMT"),  # 55-bit mask
    ("int(9223372036854775807),http_date", "Sun, 13 Jun 1141709097 06:26:07 GMT"),
    ("str(YQ==),ub64dec", b"a\x0f\xff"),  # '=' decodes as '_'
    ("str(a=b),ub64dec", b"k\xf6"),
    ("str(!!),ub64dec", None),
    ("str(127.0.),ub64dec", None),
    ("str(a),ub64dec", None),
])
def test_converter_edges(expr, expected):
    assert evaluate(expr) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("10.0.0.1 !!", None), ("10.0.0.1", "10.0.0.1"), ("127.0.0.1:80", "127.0.0.1"),
    ("127.0.0.1:99999", None), ("::1", "::1"), ("1.2.3.4.", None),
])
def test_hdr_ip_takes_a_whole_address(value, expected):
    got = evaluate("req.hdr_ip(x-ip)", headers=[("X-IP", value)])
    assert (None if got is None else str(got)) == expected


def test_map_int_reads_a_leading_dash_as_a_range(tmp_path):
    # pat_parse_int(): '-' separates a range like ':': "-3" is "up to 3"
    (tmp_path / "m.map").write_text("-3 low\n5-9 mid\n")
    assert evaluate(f"req.hdr(x-n),map_int({tmp_path}/m.map)", headers=[("X-N", "YWI_")]) == "low"
    assert evaluate(f"req.hdr(x-n),map_int({tmp_path}/m.map)", headers=[("X-N", "7")]) == "mid"


def test_expect_100_continue_is_gone_once_the_body_was_waited_for():
    from spoe_sync.samples import WSGISamples

    env = {"REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "1.2.3.4",
           "spoe_sync.raw_headers": [("Expect", "100-continue"), ("Content-Length", "1")]}
    waited = WSGISamples(env, body=b"{")
    assert parse_sample("req.hdr_names").evaluate(EvalContext(waited)) == "content-length"
    not_waited = WSGISamples(env)
    assert parse_sample("req.hdr(expect)").evaluate(EvalContext(not_waited)) == "100-continue"


# --------------------------------------------------------------- req.len / res.len in HTTP mode


@pytest.mark.parametrize(("request_", "expected"), [
    # htx->data: start line strings, normalised headers, body, +1 ending a chunked request,
    # and 21 (values observed with HAProxy 2.6.12)
    (RequestInfo("GET", "/", "HTTP/1.1", []), 33),
    (RequestInfo("GET", "/", "HTTP/1.1", [("Connection", "close")]), 33),
    (RequestInfo("GET", "/", "HTTP/1.0", [("A", "b"), ("C", "dd")]), 38),
    (RequestInfo("POST", "/", "HTTP/1.1", [("Content-Length", "3")], b"abc"), 52),
    (RequestInfo("POST", "/", "HTTP/1.1", [("Transfer-Encoding", "chunked")], b"abc"), 62),
    (RequestInfo("GET", "/", "HTTP/1.1", [("Connection", "foo")]), 46),
])
def test_req_len_of_an_http_request(request_, expected):
    assert parse_sample("req.len").evaluate(EvalContext(SampleSource(request=request_))) == \
        expected


def test_res_len_of_an_http_response():
    from spoe_sync.rules import ResponseInfo

    res = ResponseInfo(200, [("Content-Type", "text/plain"), ("Content-Length", "2")], b"ok",
                       reason="OK")
    assert parse_sample("res.len").evaluate(EvalContext(SampleSource(response=res))) == 73
    head = SampleSource(request=RequestInfo("HEAD", "/", "HTTP/1.1", []), response=res)
    assert parse_sample("res.len").evaluate(EvalContext(head)) == 71


def test_hdr_val_in_an_acl_reads_every_value():
    from spoe_sync.rules import AclRegistry, parse_condition

    request = RequestInfo("PUT", "/", "HTTP/1.1", [("x-n", "10.0.0.1"), ("X-N", "caf\xe9")])
    cond = parse_condition(["if", "{", "req.hdr_val(x-n)", "-m", "int", "gt", "5", "}"],
                           AclRegistry())
    assert cond.evaluate(EvalContext(SampleSource(request=request))) is True


@pytest.mark.parametrize(("expr", "expected"), [
    ("int(-1),utime(%Y-%m-%d)", "1141709097-06-13"),  # 55-bit mask, as http_date
    ("int(9223372036854775807),utime(%H:%M)", "06:26"),
    ("int(1700000000),utime(%Y-%m-%dT%H:%M:%S)", "2023-11-14T22:13:20"),
])
def test_utime_masks_like_http_date(expr, expected):
    assert evaluate(expr) == expected


@pytest.mark.parametrize(("mode", "expected"), [
    ("utf8s", "\\u00e9t\\u00e9"), ("utf8p", "\\u00e9t\\u00e9"), ("utf8", "\\u00e9t\\u00e9"),
    ("ascii", "\\u00c3\\u00a9t\\u00c3\\u00a9"),
])
def test_json_escapes_every_non_ascii_character(mode, expected):
    # sample_conv_json(): c > 0x7e is written "\\u%04x" once decoded (utf8*) or byte by byte
    assert evaluate(f"req.hdr(x-c),json({mode})", headers=[("X-C", "\xc3\xa9t\xc3\xa9")]) == \
        expected


def test_expect_stays_when_there_is_no_body_to_wait_for():
    from spoe_sync.samples import WSGISamples

    env = {"REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "1.2.3.4",
           "spoe_sync.raw_headers": [("Content-Length", "0"), ("Expect", "100-continue")]}
    samples = WSGISamples(env, body=b"")
    assert parse_sample("req.hdr(expect)").evaluate(EvalContext(samples)) == "100-continue"


def test_expect_goes_with_an_empty_chunked_body_too():
    from spoe_sync.samples import WSGISamples

    env = {"REQUEST_METHOD": "PATCH", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "1.2.3.4",
           "spoe_sync.raw_headers": [("Transfer-Encoding", "chunked"), ("Expect", "100-continue")]}
    samples = WSGISamples(env, body=b"")
    assert parse_sample("req.hdr(expect)").evaluate(EvalContext(samples)) is None


# --------------------------------------------------------------- HTX normalisation


@pytest.mark.parametrize(("headers", "expr", "expected"), [
    ([("host", "h"), ("host", "h")], "req.hdr_cnt(host)", 1),
    ([("HOST", "1.2.3.4"), ("host", "1.2.3.4")], "req.hdrs", "host: 1.2.3.4\r\n\r\n"),
    ([("Host", "a"), ("host", "A")], "req.hdr_names", "host"),
    ([("Content-Length", "1, 1"), ("Content-Length", "1")], "req.hdrs", "content-length: 1\r\n\r\n"),
    ([("Content-Length", "01")], "req.hdr(content-length)", "01"),
    ([("X-A", "YWI_\r\n gol")], "req.fhdr(x-a)", "YWI_   gol"),
    ([("X-A", "a\r\n\tb")], "req.fhdr(x-a)", "a  \tb"),
    ([("X-B", "c\n d")], "req.fhdr(x-b)", "c  d"),
])
def test_headers_as_htx_holds_them(headers, expr, expected):
    assert evaluate(expr, headers=headers) == expected


@pytest.mark.parametrize(("headers", "body", "expected"), [
    ([("Transfer-Encoding", "chunked"), ("Content-Length", "5")], b"b", 6),
    ([("Content-Length", "2"), ("Transfer-Encoding", "chunked")], b"", 2),
    ([("Transfer-Encoding", "chunked")], b"abc", 3),
    ([("Content-Length", "3")], b"abc", 3),
])
def test_body_size_counts_a_dropped_content_length(headers, body, expected):
    assert evaluate("req.body_size", headers=headers, body=body) == expected


@pytest.mark.parametrize(("target", "host", "url", "host_after"), [
    ("http://h:80/A", "h:80", "http://h/A", "h"),
    ("http://h:80", None, "http://h", None),
    ("https://H:443/x?y", "h", "https://H/x?y", "H"),
    ("HTTP://h:80/A", None, "HTTP://h/A", None),
    ("http://h:8080/A", "h:8080", "http://h:8080/A", "h:8080"),
    ("/", "h:80", "/", "h:80"),
    ("http://u@h:80/", None, "http://u@h/", None),
    ("http://h:/A", None, "http://h/A", None),
])
def test_absolute_targets_are_normalised_as_htx_does(target, host, url, host_after):
    from spoe_sync.samples import WSGISamples

    env = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "1.2.3.4",
           "spoe_sync.raw_uri": target,
           "spoe_sync.raw_headers": [("Host", host)] if host is not None else []}
    ctx = EvalContext(WSGISamples(env))
    assert parse_sample("url").evaluate(ctx) == url
    assert parse_sample("req.hdr(host)").evaluate(ctx) == host_after
