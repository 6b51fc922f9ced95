"""Sample expression parsing (SPOE.txt §2.3 ``args``; configuration.txt §7.3): keywords,
arguments, converters, HAProxy's error messages, canonical names, variable references and where
each fetch may be used (docs/explanation/haproxy-behaviour.md §7.3/§7.5)."""

from __future__ import annotations

import pytest

from spoe_sync.errors import ExpressionError
from spoe_sync.rules import EvalContext, StaticSamples, parse_sample
from spoe_sync.rules.names import CONVERTERS, FETCHES


@pytest.mark.parametrize(("text", "fetch", "implemented", "out_type"), [
    pytest.param("src", "src", True, "addr", id="src"),
    pytest.param("hdr(host)", "req.hdr", True, "str", id="hdr-alias"),
    pytest.param("req.hdr(host,-1),lower", "req.hdr", True, "str", id="converter"),
    pytest.param("str(a),base64", "str", True, "str", id="str-base64"),
    pytest.param("int(1),bool", "int", True, "bool", id="int-bool"),
    pytest.param("src,,lower", "src", True, "str", id="doubled-comma"),
    pytest.param("src,", "src", True, "addr", id="trailing-comma"),
    pytest.param("cook(x)", "req.cook", True, "str", id="cook-alias"),
    pytest.param("req.hdrs_bin", "req.hdrs_bin", True, "bin", id="hdrs-bin"),
    pytest.param("wait_end", "wait_end", False, "bool", id="known-unimplemented-fetch"),
    pytest.param("src,xxh64", "src", False, "sint", id="known-unimplemented-converter"),
    pytest.param("sc0_get_gpc0", "sc0_get_gpc0", False, "sint", id="stick-counter"),
    pytest.param("str", "str", True, "str", id="str-without-parens"),
    pytest.param("src()", "src", True, "addr", id="empty-parens"),
])
def test_parse_ok(text, fetch, implemented, out_type):
    expr = parse_sample(text)
    assert (expr.text, expr.fetch, expr.implemented, expr.out_type) == (
        text, fetch, implemented, out_type)


@pytest.mark.parametrize(("text", "message"), [
    # the messages HAProxy 2.6.12 prints for the same `args x=<text>` (checked with haproxy -c)
    pytest.param("foo", "unknown fetch method 'foo'", id="unknown-fetch"),
    pytest.param("src,foo", "unknown converter 'foo'", id="unknown-converter"),
    pytest.param("url_dec", "unknown fetch method 'url_dec'", id="converter-as-fetch"),
    pytest.param(",lower", "missing fetch method", id="missing-fetch"),
    pytest.param("req.hdr(host", "fetch method 'req.hdr' : expected ')'", id="unclosed"),
    pytest.param("req.hdr(host)x", "missing comma after fetch keyword 'req.hdr'", id="no-comma"),
    pytest.param("req.payload", "fetch method 'req.payload' : expected type 'integer' at "
                 "position 1, but got nothing", id="missing-args"),
    pytest.param("req.payload(a,1)", "fetch method 'req.payload' : failed to parse 'a' as type "
                 "'integer' at position 1", id="bad-int"),
    pytest.param("req.payload(1)", "fetch method 'req.payload' : missing arguments (got 1/2), "
                 "type 'integer' expected", id="too-few"),
    pytest.param("src(1)", "fetch method 'src' : expected ')' before '1)'", id="args-to-none"),
    pytest.param("req.hdr(host,1,2)", "fetch method 'req.hdr' : expected ')' before ',2)'",
                 id="too-many"),
    pytest.param("req.hdr(host,x)", "fetch method 'req.hdr' : failed to parse 'x' as type "
                 "'integer' at position 2", id="bad-occ"),
    pytest.param("int(abc)", "fetch method 'int' : failed to parse 'abc' as type 'integer' at "
                 "position 1", id="int-literal"),
    pytest.param("int", "fetch method 'int' : expected type 'integer' at position 1, but got "
                 "nothing", id="int-no-arg"),
    pytest.param("ipv4(1.2.3)", "fetch method 'ipv4' : failed to parse '1.2.3' as type "
                 "'IPv4 address' at position 1", id="ipv4-literal"),
    pytest.param("ipv6(zz)", "failed to parse 'zz' as type 'IPv6 address'", id="ipv6-literal"),
    pytest.param("bool(maybe)", "invalid args in fetch method 'bool' : Expects 'true', "
                 "'false', '0' or '1'", id="bool-literal"),
    pytest.param("bin(abc)", "invalid args in fetch method 'bin' : an even number of hex digit "
                 "is expected", id="bin-odd"),
    pytest.param("var(foo)", "invalid args in fetch method 'var' : invalid variable name 'foo'",
                 id="var-scope"),
    pytest.param("var()", "invalid args in fetch method 'var' : Empty variable name cannot be "
                 "accepted", id="var-empty"),
    pytest.param("src,lower(1)", "invalid arg 1 in converter 'lower' : expected ')' before '1)'",
                 id="converter-extra-arg"),
    pytest.param("src,regsub(a)", "invalid arg 2 in converter 'regsub' : missing arguments "
                 "(got 1/2), type 'string' expected", id="converter-missing-arg"),
    pytest.param("src,json(foo)", "invalid args in converter 'json'", id="json-code"),
    pytest.param("str(a,b)", "fetch method 'str' : expected ')' before ',b)'", id="str-comma"),
    pytest.param("", "missing fetch method", id="empty"),
])
def test_parse_errors(text, message):
    with pytest.raises(ExpressionError) as err:
        parse_sample(text)
    assert message in str(err.value)
    assert err.value.text == text


def test_quoted_argument_keeps_comma():
    expr = parse_sample("str('a,b')")
    assert expr.evaluate(EvalContext(StaticSamples())) == "a,b"


@pytest.mark.parametrize(("text", "refs"), [
    pytest.param("var(txn.coraza.app)", ("txn.coraza.app",), id="var"),
    pytest.param("int(1),add(txn.n),sub(sess.m)", ("txn.n", "sess.m"), id="arith-vars"),
    pytest.param("int(1),add(3)", (), id="arith-int"),
    pytest.param("str(a),concat(<,req.x,>)", ("req.x",), id="concat"),
    pytest.param("str(a),strcmp(txn.y)", ("txn.y",), id="strcmp"),
    pytest.param("src", (), id="none"),
])
def test_var_refs(text, refs):
    assert parse_sample(text).var_refs == refs


@pytest.mark.parametrize(("text", "point", "message"), [
    pytest.param("src", "on-client-session", None, id="src-everywhere"),
    pytest.param("unique-id", "on-client-session", None, id="unique-id-everywhere"),
    pytest.param("req.hdr(host)", "on-frontend-http-request", None, id="hdr-http-request"),
    pytest.param("req.hdr(host)", "on-client-session",
                 "some args extract information from 'backend http-request body rule', none of "
                 "which is available here ('frontend tcp-request connection rule')",
                 id="hdr-client-session"),
    pytest.param("status", "on-frontend-http-request",
                 "some args extract information from 'frontend http-response body rule', none "
                 "of which is available here ('frontend http-request header rule')",
                 id="status-request"),
    pytest.param("status", "on-http-response", None, id="status-response"),
    pytest.param("ssl_fc", "on-client-session",
                 "some args extract information from 'frontend use-backend rule', none of which "
                 "is available here ('frontend tcp-request connection rule')", id="ssl-fc"),
    pytest.param("ssl_fc", "on-frontend-tcp-request", None, id="ssl-fc-tcp"),
    pytest.param("req.payload(0,4)", "on-frontend-tcp-request", None, id="payload-tcp"),
    pytest.param("res.hdr(x)", "http-request",
                 "some args extract information from 'frontend http-response header rule', "
                 "none of which is available here ('frontend http-request header rule')",
                 id="res-hdr-rule"),
    pytest.param("res.hdrs", "http-response", None, id="res-hdrs-rule"),
    pytest.param("req.body", "tcp-request content", None, id="body-tcp-rule"),
    pytest.param("status", "tcp-request content",
                 "some args extract information from 'frontend http-response body rule', none "
                 "of which is available here ('frontend tcp-request content rule')",
                 id="status-tcp-rule"),
])
def test_unavailable_at(text, point, message):
    assert parse_sample(text).unavailable_at(point) == message


def test_unknown_point_is_an_error():
    with pytest.raises(ExpressionError, match="unknown sample point"):
        parse_sample("src").unavailable_at("on-whatever")


def test_unimplemented_fetch_raises_only_when_evaluated():
    expr = parse_sample("wait_end")
    with pytest.raises(ExpressionError, match="fetch method 'wait_end' is not implemented"):
        expr.evaluate(EvalContext(StaticSamples({"wait_end": True})))
    with pytest.raises(ExpressionError, match="converter 'xxh64' is not implemented"):
        parse_sample("src,xxh64").evaluate(EvalContext(StaticSamples()))


def test_keyword_tables_come_from_haproxy():
    # A few anchors from `haproxy -dKsmp` / `-dKcnv` of 2.6.12.
    assert FETCHES["req.hdrs"].out_type == "bin"  # HAProxy says bin, sends STRING
    assert FETCHES["unique-id"].mask == "Y" * 22
    assert CONVERTERS["base64"].in_type == "bin" and CONVERTERS["base64"].out_type == "str"
    assert len(FETCHES) > 400 and len(CONVERTERS) > 100
