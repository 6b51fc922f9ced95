"""HAProxy rule lines (configuration.txt §4.2: http-request, http-response, http-after-response,
tcp-request content, tcp-response content) parsed by spoe_sync.config.rule_lines: each action's
arguments, HAProxy's parse errors and wording (checked against ``haproxy -c`` 2.6), sample-point
checks, and the replies, redirects, header matches and set-var conditions they produce."""

from __future__ import annotations

import warnings
from ipaddress import IPv4Address

import pytest

from spoe_sync.config import Hook, RuleLine, parse_rule, parse_rules
from spoe_sync.config.rule_lines import (
    Accept,
    DelHeader,
    Deny,
    Redirect,
    Reject,
    Return,
    SendSpoeGroup,
    SetHeader,
    SetStatus,
    SetVar,
    SilentDrop,
    Tarpit,
    UnsetVar,
)
from spoe_sync.errors import ConfigError, SpoeConfigWarning
from spoe_sync.rules import EvalContext, StaticSamples


class _Vars(dict):
    def get(self, name, default=None):
        return dict.get(self, name, default)


CTX = EvalContext(StaticSamples({"src": IPv4Address("10.0.0.1"), "url": "/u?x"}),
                  _Vars({"txn.coraza.data": "/blocked", "txn.a": "v"}))


@pytest.mark.parametrize(("ruleset", "text", "kind", "fields"), [
    pytest.param("http-request", "send-spoe-group coraza coraza-req", SendSpoeGroup,
                 {"engine": "coraza", "group": "coraza-req"}, id="send-spoe-group"),
    pytest.param("http-request", "http-request deny", Deny, {}, id="with-ruleset-keyword"),
    pytest.param("http-request", "set-header X-A %[src]", SetHeader,
                 {"name": "X-A", "add": False}, id="set-header"),
    pytest.param("http-response", "add-header Set-Cookie a=%[var(txn.a)]", SetHeader,
                 {"name": "Set-Cookie", "add": True}, id="add-header"),
    pytest.param("http-after-response", "del-header x- -m beg", DelHeader,
                 {"name": "x-", "method": "beg"}, id="del-header-beg"),
    pytest.param("http-request", "set-var(txn.coraza.app) str(sample_app)", SetVar,
                 {"name": "txn.coraza.app", "conditions": ()}, id="set-var"),
    pytest.param("http-request", "set-var(sess.x,ifnotexists,ifnotempty) src", SetVar,
                 {"name": "sess.x", "conditions": ("ifnotexists", "ifnotempty")},
                 id="set-var-conditions"),
    pytest.param("http-request", "set-var-fmt(txn.from) %[src]:%[src_port]", SetVar,
                 {"name": "txn.from", "expr": None}, id="set-var-fmt"),
    pytest.param("http-response", "unset-var(txn.x)", UnsetVar, {"name": "txn.x"},
                 id="unset-var"),
    pytest.param("http-response", "set-status 503 reason 'Slow Down'", SetStatus,
                 {"status": 503, "reason": "Slow Down"}, id="set-status-reason"),
    pytest.param("http-request", "silent-drop", SilentDrop, {}, id="silent-drop"),
    pytest.param("http-request", "tarpit deny_status 403", Tarpit, {}, id="tarpit"),
    pytest.param("tcp-request content", "content reject", Reject, {}, id="tcp-reject"),
    pytest.param("tcp-request content", "tcp-request content accept", Accept, {},
                 id="tcp-accept"),
    pytest.param("tcp-response content", "send-spoe-group e g", SendSpoeGroup,
                 {"engine": "e", "group": "g"}, id="tcp-response-group"),
])
def test_actions(ruleset, text, kind, fields):
    rule = parse_rule(text, ruleset)
    assert isinstance(rule.action, kind)
    for name, value in fields.items():
        assert getattr(rule.action, name) == value
    assert rule.condition is None and rule.ruleset == ruleset


@pytest.mark.parametrize(("text", "status", "reason", "headers", "body"), [
    pytest.param("deny", 403, "Forbidden", [("cache-control", "no-cache"),
                                            ("content-type", "text/html")],
                 b"<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative "
                 b"rules.\n</body></html>\n", id="deny-default-page"),
    pytest.param("deny deny_status 400", 400, "Bad request",
                 [("cache-control", "no-cache"), ("content-type", "text/html"),
                  ("connection", "close")], None, id="deny-400-page"),
    pytest.param("deny deny_status 403 hdr waf-block request", 403, "Forbidden",
                 [("waf-block", "request")], b"", id="deny-hdr-dummy"),
    pytest.param("deny status 429 content-type text/plain string slow", 429,
                 "Too Many Requests", [("content-type", "text/plain")], b"slow",
                 id="deny-string"),
    pytest.param("return", 200, "OK", [], b"", id="return-dummy"),
    pytest.param("return status 401 content-type text/plain lf-string 'no %[src]' hdr x %[url]",
                 401, "Unauthorized", [("x", "/u?x"), ("content-type", "text/plain")],
                 b"no 10.0.0.1", id="return-lf-string"),
    pytest.param("return status 201 content-type text/plain hdr x-empty %[var(txn.nope)]", 201,
                 "Created", [], b"", id="return-empty-hdr-skipped"),
    pytest.param("tarpit", 500, "Internal Server Error",
                 [("cache-control", "no-cache"), ("content-type", "text/html")], None,
                 id="tarpit-default-page"),
])
def test_replies(text, status, reason, headers, body):
    rule = parse_rule(text, "http-request")
    got = rule.action.reply.render(CTX)  # type: ignore[union-attr]
    assert got[:3] == (status, reason, headers)
    if body is not None:
        assert got[3] == body


@pytest.mark.parametrize(("text", "target", "host", "location", "headers"), [
    pytest.param("redirect code 302 location %[var(txn.coraza.data)]", "/a?b", None, "/blocked",
                 [("cache-control", "no-cache")], id="location-lf"),
    pytest.param("redirect location /l code 301 set-cookie A=1", "/", None, "/l",
                 [("set-cookie", "A=1; path=/;")], id="301-cookie"),
    pytest.param("redirect prefix /p drop-query", "/dq/a?q=1", None, "/p/dq/a",
                 [("cache-control", "no-cache")], id="prefix-drop-query"),
    pytest.param("redirect prefix /p append-slash drop-query", "/as/a?q=1", None, "/p/as/a/",
                 [("cache-control", "no-cache")], id="append-slash"),
    pytest.param("redirect prefix / clear-cookie B=", "/slash/x?y", None, "/slash/x?y",
                 [("cache-control", "no-cache"), ("set-cookie", "B=; path=/; Max-Age=0;")],
                 id="prefix-slash"),
    pytest.param("redirect prefix /p", "/pre/x?y", None, "/p/pre/x?y",
                 [("cache-control", "no-cache")], id="prefix-keeps-query"),
    pytest.param("redirect scheme https", "/sch/x?y", "h:1", "https://h:1/sch/x?y",
                 [("cache-control", "no-cache")], id="scheme"),
])
def test_redirects(text, target, host, location, headers):
    action = parse_rule(text, "http-request").action
    assert isinstance(action, Redirect)
    got = action.location(CTX, target, host)
    assert got == location
    assert action.headers(got) == [("location", location), *headers]


def test_redirect_ignore_empty():
    action = parse_rule("redirect location %[var(txn.nope)] ignore-empty", "http-request").action
    assert action.location(CTX, "/", None) is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("method", "name", "header", "matches"), [
    pytest.param("str", "X-A", "x-a", True, id="str-case-insensitive"),
    pytest.param("str", "x-a", "x-ab", False, id="str-exact"),
    pytest.param("beg", "x-", "X-Foo", True, id="beg"),
    pytest.param("end", "-id", "x-req-id", True, id="end"),
    pytest.param("sub", "req", "x-req-id", True, id="sub"),
    pytest.param("reg", "^x-[0-9]+$", "x-12", True, id="reg"),
    pytest.param("reg", "^x-[0-9]+$", "x-a", False, id="reg-no"),
])
def test_del_header_match(method, name, header, matches):
    action = parse_rule(f"del-header {name} -m {method}", "http-request").action
    assert action.matches(header) is matches  # type: ignore[union-attr]


@pytest.mark.parametrize(("conds", "exists", "old", "new", "allowed"), [
    pytest.param("ifexists", False, None, "a", False, id="ifexists-no"),
    pytest.param("ifnotexists", False, None, "a", True, id="ifnotexists"),
    pytest.param("ifempty", True, "x", "", True, id="ifempty"),
    pytest.param("ifnotempty", True, "x", "", False, id="ifnotempty-no"),
    pytest.param("ifempty", True, "x", 0, False, id="scalar-never-empty"),
    pytest.param("ifgt", True, 5, 3, True, id="ifgt"),
    pytest.param("iflt", True, 5, 3, False, id="iflt-no"),
    pytest.param("ifgt", True, "5", 3, True, id="ifgt-not-int-is-true"),
    pytest.param("ifset,ifnotempty", True, "x", "y", True, id="two"),
])
def test_set_var_conditions(conds, exists, old, new, allowed):
    action = parse_rule(f"set-var(txn.x,{conds}) str(a)", "http-request").action
    assert action.allowed(exists, old, new) is allowed  # type: ignore[union-attr]


# Messages as haproxy -c 2.6 prints them (the rule text is added by spoe_sync).
ERRORS = [
    ("http-request", "frob", "'http-request' expects 'send-spoe-group'"),
    ("http-request", "deny deny_status 999", "Unexpected status code '999'"),
    ("http-request", "return status 99", "Unexpected status code '99'"),
    ("http-request", "return status 204 content-type t string x", "No body expected for 204"),
    ("http-request", "return status 200 string x",
     "a content type must be defined when non-empty payload is configured."),
    ("http-request", "redirect location /x code 304",
     "'code': unsupported HTTP code '304' (must be one of 301, 302, 303, 307 or 308)."),
    ("http-request", "redirect code 302",
     "redirection type expected ('prefix', 'location', or 'scheme')."),
    ("http-request", "redirect location", "missing argument for 'location'."),
    ("http-request", "set-var(foo.a) str(a)", "invalid variable name 'foo.a'."),
    ("http-request", "set-var(txn.a)", "missing fetch method."),
    ("http-request", "set-var(txn.a) nosuch", "unknown fetch method 'nosuch'"),
    ("http-request", "set-var(txn.a,ifsomething) str(a)", "'ifsomething' is not a valid"),
    ("http-request", "set-var(txn.a) res.hdr(x)", "none of which is available here"),
    ("http-request", "set-header X", "expects exactly 2 arguments."),
    ("http-request", "set-header X %[res.hdr(x)]", "may not be reliably used here"),
    ("http-request", "return content-type text/plain string x hdr",
     "'hdr' expects <name> and <value> as arguments."),
    ("http-request", "deny if nosuch", "no such ACL : 'nosuch'"),
    ("http-request", "deny foo",
     "'http-request deny' expects either 'if' or 'unless' followed by a condition but found "
     "'foo'"),
    ("http-request", "unset-var(txn.a) foo", "expects either 'if' or 'unless'"),
    ("http-request", "set-status 200", "but got 'set-status'"),
    ("http-response", "set-status 99", "expects an integer status code between 100 and 999."),
    ("http-response", "set-status 200 reason", "expects either 'if' or 'unless'"),
    ("http-response", "tarpit", "but got 'tarpit'"),
    ("http-after-response", "deny", "but got 'deny'"),
    ("http-request", "deny errorfile /x", "'errorfile' is not supported"),
    ("http-request", "return content-type t file /nonexistent/x", "failed to open file"),
    ("http-request", "del-header x -m foo", "bad '-m' argument 'foo'"),
    ("http-request", "send-spoe-group onlyone", "expects 2 arguments"),
    ("tcp-request content", "deny", "but got 'deny'"),
    ("http-request", "deny if { hdr(x) -m str 'a }", "unmatched quote"),
    ("http-request", "", "expects an action"),
]


@pytest.mark.parametrize(("ruleset", "text", "message"),
                         [pytest.param(r, t, m, id=t or "empty") for r, t, m in ERRORS])
def test_errors(ruleset, text, message):
    with pytest.raises(ConfigError) as err:
        parse_rule(text, ruleset)
    assert message in str(err.value)
    assert text.strip() in str(err.value)


def test_errors_name_file_and_line():
    lines = [RuleLine(("http-request", "deny"), 3),
             RuleLine(("http-request", "deny", "deny_status", "999"), 7),
             RuleLine(("http-request", "frob"), 9)]
    with pytest.raises(ConfigError) as err:
        parse_rules(lines, "http-request", filename="haproxy.cfg")
    assert str(err.value).startswith("[haproxy.cfg:7]")
    assert [e.lineno for e in err.value.errors] == [7, 9]


def test_send_spoe_group_checked_against_engines():
    engines = {"coraza": ("coraza-req",)}
    assert parse_rule("send-spoe-group coraza coraza-req", "http-request", engines=engines)
    with pytest.raises(ConfigError, match="unable to find SPOE engine 'x' used by the "
                                          "send-spoe-group 'coraza-req'"):
        parse_rule("send-spoe-group x coraza-req", "http-request", engines=engines)
    with pytest.raises(ConfigError, match="unable to find SPOE group 'g' into SPOE engine"):
        parse_rule("send-spoe-group coraza g", "http-request", engines=engines)


def test_condition_at_wrong_point_warns_as_haproxy():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rule = parse_rule("deny if { res.hdr(x) -m found }", "http-request")
    assert rule.condition is not None
    assert any(issubclass(w.category, SpoeConfigWarning) and "will never match" in
               str(w.message) for w in caught)


def test_conditions_evaluate():
    rule = parse_rule("deny if { var(txn.a) -m str v } || FALSE", "http-request")
    unless = parse_rule("deny unless { var(txn.a) -m str v }", "http-request")
    assert rule.applies(CTX) and not unless.applies(CTX)
    assert rule.var_refs == ("txn.a",)


def test_hooks():
    def fn(environ):
        return None

    plain = parse_rule(fn, "http-request")
    guarded = parse_rule(Hook(fn, "if { var(txn.a) -m found }"), "http-response")
    assert plain.keyword == "hook" and plain.applies(CTX)
    assert guarded.condition is not None and guarded.applies(CTX)
    with pytest.raises(ConfigError, match="no such ACL"):
        parse_rule(Hook(fn, "if nosuch"), "http-request")


def test_file_payloads(tmp_path):
    (tmp_path / "page.txt").write_text("hello %[src]")
    raw = parse_rule("return content-type text/plain file page.txt", "http-request",
                     base_dir=str(tmp_path))
    lf = parse_rule("return content-type text/plain lf-file page.txt", "http-request",
                    base_dir=str(tmp_path))
    assert isinstance(raw.action, Return) and raw.action.reply.render(CTX)[3] == b"hello %[src]"
    assert lf.action.reply.render(CTX)[3] == b"hello 10.0.0.1"  # type: ignore[union-attr]


def test_unknown_ruleset():
    with pytest.raises(ConfigError, match="unknown rule set"):
        parse_rule("deny", "http-foo")


def test_set_var_and_unset_var_apply_to_engine_vars():
    from spoe_sync.engine.vars import Vars

    store = Vars()
    ctx = EvalContext(StaticSamples({"src": IPv4Address("10.0.0.1")}), store)
    rules = parse_rules(["set-var(txn.ip) src", "set-var(txn.ip,ifnotexists) str(no)",
                         "set-var(sess.n) var(txn.nope)", "set-var(txn.up) var(txn.ip),upper"],
                        "http-request")
    done = [r.action.apply(ctx, store) for r in rules]  # type: ignore[union-attr]
    assert done == [True, False, False, True]
    assert store.get("txn.ip") == IPv4Address("10.0.0.1") and "sess.n" not in store
    assert store.get("txn.up") == "10.0.0.1"
    assert parse_rule("unset-var(txn.ip)", "http-request").action.apply(ctx, store)  # type: ignore[union-attr]
    assert "txn.ip" not in store
