"""Conditions (configuration.txt §7.2; SPOE.txt §2.3 ``event <name> [ { if | unless }
<condition> ]``): if/unless, ``!``, implicit AND, ``||``/``or``, anonymous ``{ }`` ACLs, named and
predefined ACLs, and HAProxy's parse errors."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from spoe_sync.errors import ExpressionError
from spoe_sync.rules import (
    AclRegistry,
    EvalContext,
    RequestInfo,
    SampleSource,
    parse_condition,
)

CTX = EvalContext(
    SampleSource(client=(IPv4Address("10.1.2.3"), 1),
                 request=RequestInfo("GET", "/api/x", headers=[("Host", "app1.example.com")])),
    {"txn.a.action": "deny", "txn.a.err": 0},
)


def registry() -> AclRegistry:
    acls = AclRegistry()
    acls.add("yes", ["always_true"])
    acls.add("no", ["always_false"])
    acls.add("api", ["path_beg", "/api"])
    return acls


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("if yes", True, id="if"),
    pytest.param("unless yes", False, id="unless"),
    pytest.param("if no", False, id="if-false"),
    pytest.param("unless no", True, id="unless-false"),
    pytest.param("if !no", True, id="bang-attached"),
    pytest.param("if ! no", True, id="bang-separate"),
    pytest.param("if !!yes", True, id="double-bang"),
    pytest.param("if ! ! yes", True, id="double-bang-separate"),
    pytest.param("if yes no", False, id="implicit-and"),
    pytest.param("if yes api", True, id="and-true"),
    pytest.param("if no || yes", True, id="or-pipes"),
    pytest.param("if no or yes", True, id="or-word"),
    pytest.param("if no OR yes", True, id="or-upper"),
    pytest.param("if yes no || no", False, id="and-binds-tighter"),
    pytest.param("if ! yes || yes", True, id="negation-resets-at-or"),
    pytest.param("unless no || no", True, id="unless-or"),
    pytest.param("if { path_beg /api }", True, id="anonymous"),
    pytest.param("if ! { path_beg /api }", False, id="anonymous-negated"),
    pytest.param("if !{ path_beg /api }", False, id="anonymous-negated-attached"),
    pytest.param("if { hdr_beg(host) -i app1. } || { hdr_beg(host) -i app2. }", True,
                 id="anonymous-or"),
    pytest.param("if { var(txn.a.action) -m str deny }", True, id="var-str"),
    pytest.param("if { var(txn.a.err) -m int gt 0 }", False, id="var-int"),
    pytest.param("if { var(txn.a.missing) -m found }", False, id="var-missing"),
    pytest.param("if ! { var(txn.a.missing) -m found }", True, id="not-found"),
    pytest.param("if ! { src 10.0.0.0/8 }", False, id="spoe-txt-whitelist-form"),
    pytest.param("if TRUE", True, id="predefined"),
    pytest.param("if !HTTP_1.0 !HTTP_2.0", True, id="predefined-negated"),
    pytest.param("if METH_GET api", True, id="predefined-and-named"),
])
def test_condition(text, expected):
    assert parse_condition(text.split(), registry()).evaluate(CTX) is expected


@pytest.mark.parametrize(("words", "message"), [
    pytest.param(["when", "yes"], "expects either 'if' or 'unless' followed by a condition but "
                 "found 'when'", id="keyword"),
    pytest.param([], "found 'nothing'", id="empty"),
    pytest.param(["if"], "missing condition after 'if'", id="if-alone"),
    pytest.param(["if", "!"], "missing condition after 'if'", id="bang-alone"),
    pytest.param(["if", "y"], "no such ACL : 'y'", id="unknown-acl"),
    pytest.param(["if", "{", "src", "1.2.3.4"], "missing closing '}' in condition",
                 id="unclosed-brace"),
    pytest.param(["if", "{", "nope", "}"], "unknown fetch method 'nope'", id="bad-anonymous"),
])
def test_condition_errors(words, message):
    with pytest.raises(ExpressionError) as err:
        parse_condition(words, registry())
    assert message in str(err.value)


def test_var_refs_and_availability():
    cond = parse_condition("if { var(txn.a.x) -m found } || { req.hdr(h) -m found } "
                           "{ var(sess.b) -m bool }".split(), registry())
    assert cond.var_refs == ("txn.a.x", "sess.b")
    assert cond.unavailable_at("on-frontend-http-request") is None
    assert "none of which is available here" in cond.unavailable_at("on-client-session")
    assert cond.implemented


def test_unimplemented_fetch_in_condition():
    cond = parse_condition("if { sc0_get_gpc0 gt 0 }".split(), registry())
    assert not cond.implemented
    with pytest.raises(ExpressionError, match="not implemented"):
        cond.evaluate(CTX)


def test_condition_sees_acl_lines_added_later():
    acls = AclRegistry()
    acls.add("x", ["always_false"])
    cond = parse_condition(["if", "x"], acls)
    assert cond.evaluate(CTX) is False
    acls.add("x", ["always_true"])
    assert cond.evaluate(CTX) is True
