"""SpoeMiddleware rule actions (configuration.txt §4.2 http-request / http-response /
http-after-response; docs/explanation/agents.md §6) through a real gevent.pywsgi server and the
example-like agent: each action's HTTP result, as HAProxy 2.6 produces it."""

from __future__ import annotations

import time

import pytest

from .support import Client, get, parse_echo, serve


def test_send_spoe_group_then_deny_default_page(make_mw):
    mw = make_mw(http_request=["deny if { var(txn.test.action) -m str deny }"])
    with serve(mw) as port:
        denied = get(port, "/x", {"x-action": "deny"})
        allowed = get(port, "/x", {"x-action": "allow"})
    assert denied.status == 403 and denied.reason == "Forbidden"
    assert denied.body == (b"<html><body><h1>403 Forbidden</h1>\nRequest forbidden by "
                           b"administrative rules.\n</body></html>\n")
    assert denied.header("content-type") == "text/html"
    assert allowed.status == 200 and parse_echo(allowed.body)["txn.test.action"] == "allow"


def test_deny_status_and_hdr_give_a_dummy_response(make_mw):
    mw = make_mw(http_request=[
        'deny deny_status 429 hdr waf-block "request %[var(txn.test.action)]" hdr x-empty '
        '"%[var(txn.nope)]" if { var(txn.test.action) -m str deny }'])
    with serve(mw) as port:
        r = get(port, "/", {"x-action": "deny"})
    assert r.status == 429 and r.body == b""
    assert r.header("waf-block") == "request deny"
    assert r.header("x-empty") is None  # HAProxy skips a hdr that renders empty


def test_return_lf_string(make_mw):
    mw = make_mw(http_request=[
        'return status 401 content-type text/plain lf-string "no %[var(txn.test.path)] for '
        '%[src]" hdr x-why "%[var(txn.test.action)]" if { var(txn.test.action) -m str auth }'])
    with serve(mw) as port:
        r = get(port, "/secret", {"x-action": "auth"})
    assert r.status == 401 and r.reason == "Unauthorized"
    assert r.body == b"no /secret for 127.0.0.1"
    assert r.header("content-type") == "text/plain" and r.header("x-why") == "auth"


@pytest.mark.parametrize(("rule", "path", "code", "location", "cookie"), [
    pytest.param("redirect code 302 location %[var(txn.test.data)] if "
                 "{ var(txn.test.action) -m str redirect }", "/a?b=1", 302, "/blocked?x=1",
                 None, id="location-from-agent"),
    pytest.param("redirect prefix https://example.org code 301 if "
                 "{ var(txn.test.action) -m str redirect }", "/a?b=1", 301,
                 "https://example.org/a?b=1", None, id="prefix"),
    pytest.param("redirect prefix /p drop-query append-slash if TRUE", "/a?b=1", 302, "/p/a/",
                 None, id="prefix-drop-query-append-slash"),
    pytest.param("redirect location /altcha?url=%[url] set-cookie SEEN=1 if TRUE", "/q?z", 302,
                 "/altcha?url=/q?z", "SEEN=1; path=/;", id="location-url-set-cookie"),
])
def test_redirect(make_mw, rule, path, code, location, cookie):
    mw = make_mw(http_request=[rule])
    with serve(mw) as port:
        r = get(port, path, {"x-action": "redirect", "x-data": "/blocked?x=1"})
    assert r.status == code
    assert r.header("location") == location
    assert r.header("set-cookie") == cookie
    assert (r.header("cache-control") == "no-cache") == (code != 301)


def test_redirect_ignore_empty_goes_on(make_mw):
    mw = make_mw(http_request=["redirect location %[var(txn.nope)] ignore-empty"])
    with serve(mw) as port:
        assert get(port, "/").status == 200


def test_request_header_edits_reach_app_and_later_fetches(make_mw):
    mw = make_mw(http_request=[
        "set-header x-added %[var(txn.test.action)]",
        "add-header x-added second",
        "del-header x-dr -m beg",
        "deny deny_status 400 if { req.hdr(x-drop) -m found }",
        "return status 200 content-type text/plain lf-string %[req.hdr(x-added,1)] "
        "if { req.hdr_cnt(x-added) -m int eq 2 } { path /count }"])
    with serve(mw) as port:
        echo = get(port, "/", {"x-action": "hello", "x-drop": "1", "x-added": "old"})
        count = get(port, "/count", {"x-action": "hello"})
    seen = parse_echo(echo.body)
    assert echo.status == 200
    assert seen["x-added"] == "hello,second" and seen["x-drop"] == "None"
    assert count.body == b"hello"


def test_set_var_unset_var_and_group_args(make_mw):
    mw = make_mw(http_request=[
        "set-var(txn.app) str(shop)",
        "set-var(txn.mine) var(txn.test.action),upper",
        "set-var(txn.mine,ifnotexists) str(never)",
        "send-spoe-group test grp-path",
        "unset-var(txn.app) if { path /unset }",
        "set-var-fmt(txn.fmt) %[var(txn.app)]-%[path]",
        "return status 200 content-type text/plain lf-string %[var(txn.fmt)] if { path /fmt }"])
    with serve(mw) as port:
        seen = parse_echo(get(port, "/", {"x-action": "go"}).body)
        fmt = get(port, "/fmt").body
        unset = get(port, "/unset")
    assert seen["txn.mine"] == "GO" and seen["txn.test.grp_app"] == "shop"
    assert fmt == b"shop-/fmt"
    assert unset.status == 200


def test_http_response_rules(make_mw):
    mw = make_mw(http_response=[
        "set-status 202 reason Taken if { var(txn.test.status) -m int eq 200 }",
        "set-header x-status %[var(txn.test.status)]",
        "del-header x-app",
        "add-header x-ctype %[var(txn.test.ctype)]",
        "deny deny_status 502 if { var(txn.test.path) -m str /hide }"],
        http_after_response=["set-header x-after %[status]"])
    with serve(mw) as port:
        r = get(port, "/")
        hidden = get(port, "/hide")
    assert (r.status, r.reason) == (202, "Taken")
    assert r.header("x-status") == "200" and r.header("x-app") is None
    assert r.header("x-ctype") == "text/plain" and r.header("x-after") == "202"
    assert parse_echo(r.body)["txn.test.action"] == "allow"
    assert hidden.status == 502 and b"502 Bad Gateway" in hidden.body
    assert hidden.header("x-after") == "502"


def test_after_response_applies_to_generated_responses(make_mw):
    mw = make_mw(http_request=["deny if { var(txn.test.action) -m str deny }"],
                 http_after_response=["set-header x-act %[var(txn.test.action)]",
                                      "add-header set-cookie a=1"])
    with serve(mw) as port:
        r = get(port, "/", {"x-action": "deny"})
    assert r.status == 403 and r.header("x-act") == "deny" and r.header("set-cookie") == "a=1"


def test_silent_drop_closes_without_response(make_mw):
    mw = make_mw(http_request=["silent-drop if { var(txn.test.action) -m str drop }"])
    with serve(mw) as port:
        with Client(port) as c:
            assert c.request("GET", "/").status == 200
            c.send("GET", "/", {"x-action": "drop"})
            assert c.closed_without_response()
        assert get(port, "/").status == 200  # the server is fine


def test_tarpit_waits_then_500(make_mw):
    mw = make_mw(http_request=["tarpit if { var(txn.test.action) -m str slow }"],
                 tarpit_timeout=0.3)
    with serve(mw) as port:
        start = time.monotonic()
        r = get(port, "/", {"x-action": "slow"})
        elapsed = time.monotonic() - start
    assert r.status == 500 and b"500 Internal Server Error" in r.body
    assert 0.3 <= elapsed < 3.0  # slack for a loaded CI machine


def test_allow_stops_the_rules(make_mw):
    mw = make_mw(http_request=["allow if { path /open }", "deny"])
    with serve(mw) as port:
        assert get(port, "/open").status == 200
        assert get(port, "/closed").status == 403


def test_python_hooks(make_mw):
    def block(environ):
        if environ["spoe_sync.vars"].get("txn.test.action") == "hook":
            return 418, [("x-hook", "1")], b"teapot"
        return None

    def stamp(environ, response):
        response.headers.append(("x-stamped", str(response.status)))

    from spoe_sync.config import Hook
    mw = make_mw(http_request=[block, Hook(lambda env: (451, [], b"no"), "if { path /legal }")],
                 http_response=[stamp])
    with serve(mw) as port:
        hooked = get(port, "/", {"x-action": "hook"})
        legal = get(port, "/legal")
        plain = get(port, "/")
    assert (hooked.status, hooked.body, hooked.header("x-hook")) == (418, b"teapot", "1")
    assert legal.status == 451
    assert plain.status == 200 and plain.header("x-stamped") == "200"


def test_response_body_buffered_for_res_body(make_mw):
    def app(environ, start_response):
        def body():  # start_response is called lazily, on the first iteration
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"hello "
            yield b"world, "
            yield b"and more"
        return body()

    mw = make_mw(app, buffer_response=10,
                 http_response=["set-header x-head %[res.body]",
                                "deny deny_status 502 if { res.body -m sub secret }"])
    with serve(mw) as port:
        r = get(port, "/")
    assert r.status == 200 and r.body == b"hello world, and more"
    assert r.header("x-head") == "hello worl"  # what fits the buffer


def test_write_callable_and_streaming_without_response_rules(make_mw):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return iter([b"then ", b"iterated"])

    for kw in ({}, {"http_response": ["set-header x-r 1"]}):
        mw = make_mw(app, **kw)
        with serve(mw) as port:
            assert get(port, "/").body == b"written then iterated"


def test_rules_without_any_engine():
    from spoe_sync.wsgi import SpoeMiddleware

    from .support import echo_app
    mw = SpoeMiddleware(echo_app, http_request=["set-var(txn.mine) req.hdr(x-v)",
                                                "deny deny_status 429 if { path /private }"],
                        http_after_response=["set-header x-v %[var(txn.mine)]"])
    with serve(mw) as port:
        assert get(port, "/private").status == 429
        r = get(port, "/", {"x-v": "hi"})
    assert r.status == 200 and parse_echo(r.body)["txn.mine"] == "hi" and r.header("x-v") == "hi"


def test_res_body_use_turns_response_buffering_on(make_mw):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * 20000, b"tail"]

    with_body = make_mw(app, http_response=["set-header x-len %[res.body,length]"])
    without = make_mw(app, http_response=["set-header x-len %[res.hdr(content-type)]"])
    assert with_body.buffer_response == 16384 and without.buffer_response is None
    with serve(with_body) as port:
        r = get(port, "/")
    assert r.header("x-len") == "16384" and len(r.body) == 20004
