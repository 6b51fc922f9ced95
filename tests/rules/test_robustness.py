"""Robustness (issue 3: "a failed fetch/converter yields None, as HAProxy"): evaluation never
raises on odd data, and parsing any text raises ExpressionError or succeeds, nothing else."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoe_sync.errors import ExpressionError
from spoe_sync.rules import (
    AclRegistry,
    EvalContext,
    RequestInfo,
    ResponseInfo,
    SampleSource,
    parse_condition,
    parse_sample,
)
from spoe_sync.samples import WSGISamples

EXPRESSIONS = [parse_sample(t) for t in (
    "src", "dst_port", "method", "url", "path", "pathq", "query", "base", "url_param(a)",
    "req.ver", "req.hdr(x)", "req.hdr(x,-3)", "req.fhdr(x,2)", "req.hdr_cnt", "req.hdr_val(x)",
    "req.hdrs", "req.hdrs_bin", "req.hdr_names", "req.cook(a)", "req.cook_val(a)", "req.body",
    "req.body_size", "status", "res.hdrs", "res.cook(a)", "res.ver", "req.payload(1,2)",
    "req.hdr(x),lower,upper,length", "req.hdr(x),url_dec,json(utf8)", "req.hdr(x),b64dec,hex",
    "req.hdr(x),regsub(a+,b,g),field(2,/)", "req.hdr(x),word(-1,.)", "req.hdr(x),add(txn.v)",
    "req.hdr(x),hex2i,div(0),mod(0)", "var(txn.v),ipmask(24)", "var(txn.v),bytes(2,1)",
    "var(txn.v),concat(a,txn.v,b)", "var(txn.v),strcmp(txn.v)", "req.fhdr(x),ub64dec",
)]
ACLS = AclRegistry()
CONDITIONS = [parse_condition(c.split(), ACLS) for c in (
    "if { req.hdr(x) -m ip 10.0.0.0/8 }", "if { req.hdr(x) -m int gt 3 }",
    "if { var(txn.v) -m bool }", "if { req.hdr(x) -m reg ^a } || { req.hdr(x) -m dom a }",
    "if { var(txn.v) -m len 3 } !{ req.cook(a) -m dir x }", "if HTTP_URL_ABS METH_GET",
)]

text = st.text(st.characters(codec="latin-1"), max_size=40)
raw = st.binary(max_size=40)
values = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), text, raw,
                   st.builds(IPv4Address, st.integers(0, 2**32 - 1)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=text, target=text, version=text, headers=st.lists(st.tuples(raw, raw), max_size=5),
       body=st.one_of(st.none(), raw), status=st.integers(-5, 10**6), var=values)
def test_evaluation_never_raises(method, target, version, headers, body, status, var):
    src = SampleSource(request=RequestInfo(method, target, version, headers, body),
                       response=ResponseInfo(status, headers, body, version),
                       req_payload=body)
    ctx = EvalContext(src, {"txn.v": var})
    for expr in EXPRESSIONS:
        expr.evaluate(ctx)
    for cond in CONDITIONS:
        assert cond.evaluate(ctx) in (True, False)


@settings(max_examples=100, deadline=None)
@given(env=st.dictionaries(st.sampled_from([
    "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "REMOTE_ADDR",
    "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "HTTP_X", "CONTENT_LENGTH", "REQUEST_URI",
    "spoe_sync.raw_headers", "spoe_sync.local_addr", "spoe_sync.body"]),
    st.one_of(text, raw, st.integers(), st.none(), st.lists(st.tuples(text, text), max_size=2))))
def test_wsgi_samples_on_odd_environs(env):
    try:
        samples = WSGISamples(env)
    except ExpressionError:
        return
    ctx = EvalContext(samples)
    for expr in EXPRESSIONS:
        expr.evaluate(ctx)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abhdrq.(),_-'\"0129:x ")), max_size=30))
def test_parse_raises_only_expression_error(source):
    try:
        parse_sample(source)
    except ExpressionError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["if", "unless", "!", "{", "}", "||", "or", "TRUE", "src",
                                 "-m", "str", "-i", "int", "gt", "1", "x", "path_beg", "/a",
                                 "-f", "--", "req.hdr(x)", "found"]), max_size=8))
def test_parse_condition_raises_only_expression_error(words):
    try:
        parse_condition(words, AclRegistry())
    except ExpressionError:
        pass
