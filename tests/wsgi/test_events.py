"""SpoeMiddleware event points (SPOE.txt §2.5 "event", docs/explanation/agents.md §0.10 and §5): where
each event fires relative to the rules, on-client-session on every request as HAProxy 2.6 fires
it (one per HTTP stream, keep-alive included), sess variables for the connection's lifetime, several engines in declaration order, the haproxy.cfg
form, and no I/O before the first request."""

from __future__ import annotations

import textwrap

import pytest
from gevent.pywsgi import WSGIHandler, WSGIServer

from spoe_sync.errors import ConfigError
from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import EngineSpec, SpoeMiddleware, listener

from .support import CONF, CONF_OTHER, Client, echo_app, example_handler, get, parse_echo, serve


def _messages(agent: FakeAgent, name: str) -> int:
    return sum(1 for n in agent.notifies for m in n.messages if m.name == name)


def test_client_session_per_request_and_sess_vars_live_on_the_connection(agent, make_mw):
    # HAProxy 2.6 fires on-client-session for every HTTP stream (3 NOTIFYs for 3 keep-alive
    # requests on one connection); sess.* variables still last the connection
    mw = make_mw(http_request=["set-var(sess.count) int(0) if !{ var(sess.count) -m found }",
                               "set-var(sess.count) var(sess.count),add(1)",
                               "set-var(txn.mine) var(sess.count)"])
    with serve(mw) as port:
        with Client(port) as c:
            first = [parse_echo(c.request("GET", f"/{i}").body) for i in range(3)]
        with Client(port) as c:
            second = parse_echo(c.request("GET", "/").body)
    assert _messages(agent, "check-client") == 4
    assert [s["sess.test.ip_score"] for s in first] == ["10", "10", "10"]
    assert [s["txn.mine"] for s in first] == ["1", "2", "3"]  # one session, three requests
    assert second["sess.test.ip_score"] == "10" and second["txn.mine"] == "1"
    assert _messages(agent, "check-request") == 4


COUNTER = ["set-var(sess.count) int(0) if !{ var(sess.count) -m found }",
           "set-var(sess.count) var(sess.count),add(1)", "set-var(txn.mine) var(sess.count)"]


def test_gevent_stock_handler_sess_vars_live_on_the_connection(agent, make_mw):
    # gevent's own WSGIHandler exposes no socket, but its per-connection reader is behind
    # every request's wsgi.input: sess.* lasts the connection there too, as in HAProxy
    mw = make_mw(http_request=COUNTER)
    seen = []
    server = WSGIServer(listener(("127.0.0.1", 0)), mw, handler_class=WSGIHandler, log=None,
                        error_log=None)
    server.start()
    try:
        for _ in range(2):
            with Client(server.server_port) as c:
                seen.append([parse_echo(c.request("GET", f"/{i}").body)["txn.mine"]
                             for i in range(2)])
    finally:
        server.stop(timeout=1)
    assert _messages(agent, "check-client") == 4  # on-client-session: one per HTTP stream
    assert seen == [["1", "2"], ["1", "2"]]  # one session per connection, none shared


def test_request_events_fire_before_rules(agent, make_mw):
    # set-var(txn.test.seen) runs after on-frontend-http-request: the message sends NULL
    mw = make_mw(http_request=["set-var(txn.test.seen) str(late)"])
    with serve(mw) as port:
        assert get(port, "/").status == 200
    (msg,) = [m for n in agent.notifies for m in n.messages if m.name == "check-request"]
    assert dict(msg.args)["seen"] is None


def test_backend_event_condition(agent, make_mw):
    with serve(make_mw()) as port:
        on = parse_echo(get(port, "/", {"x-backend": "1"}).body)
        off = parse_echo(get(port, "/").body)
    assert on["txn.test.backend"] == "seen" and off["txn.test.backend"] == "None"
    assert _messages(agent, "check-backend") == 1


def test_http_response_event_sees_status_and_headers(agent, make_mw):
    mw = make_mw(http_response=["set-header x-seen %[var(txn.test.status)]/%[var(txn.test.ctype)]"])
    with serve(mw) as port:
        r = get(port, "/")
    assert r.header("x-seen") == "200/text/plain"
    (msg,) = [m for n in agent.notifies for m in n.messages if m.name == "check-response"]
    assert dict(msg.args)["status"] == 200


def test_no_response_event_for_a_generated_response(agent, make_mw):
    with serve(make_mw(http_request=["deny"])) as port:
        assert get(port, "/").status == 403
    assert _messages(agent, "check-response") == 0


def test_results_and_vars_in_environ(make_mw):
    seen = {}

    def app(environ, start_response):
        seen["results"] = [(r.name, int(r.status), r.skipped)
                           for r in environ["spoe_sync.results"]]
        seen["action"] = environ["spoe_sync.vars"].get("txn.test.action")
        start_response("204 No Content", [])
        return []

    with serve(make_mw(app)) as port:
        assert get(port, "/", {"x-action": "look"}).status == 204
    assert seen["action"] == "look"
    assert seen["results"] == [("on-client-session", 0, False),
                               ("on-frontend-http-request", 0, False),
                               ("on-backend-http-request", 0, True)]  # its condition is false


def test_nothing_connects_before_the_first_request(agent, make_mw):
    mw = make_mw()
    assert agent.connections == 0 and mw._runtime is None
    with serve(mw) as port:
        assert agent.connections == 0
        get(port, "/")
    assert agent.connections == 1


def test_several_engines_in_declaration_order_share_variables(agent):
    with FakeAgent({"*": example_handler}) as other:
        mw = SpoeMiddleware(echo_app, engines=[
            EngineSpec(CONF, "test", {"agents": [agent.address]}),
            {"config": CONF_OTHER, "engine": "other", "backends": {"others": [other.address]}}],
            http_request=["set-var(txn.app) str(two)", "send-spoe-group other other-grp"])
        try:
            with serve(mw) as port:
                seen = parse_echo(get(port, "/", {"x-action": "first"}).body)
        finally:
            mw.close(timeout=1)
        # the other engine's event saw what the first engine's agent set
        assert seen["txn.other.seen"] == "first"
        assert seen["txn.other.app"] == "two"
        assert other.frames == 2


def test_duplicate_engine_ids_are_refused(agent):
    with pytest.raises(ConfigError, match="duplicated name for SPOE engine 'test'"):
        SpoeMiddleware(echo_app, engines=[(CONF, "test", {"agents": [agent.address]}),
                                          (CONF, "test", {"agents": [agent.address]})])


def test_send_spoe_group_names_a_known_engine_and_group(agent):
    for rule, text in [("send-spoe-group nope grp-body", "unable to find SPOE engine 'nope'"),
                       ("send-spoe-group test nope", "unable to find SPOE group 'nope'")]:
        with pytest.raises(ConfigError, match=text):
            SpoeMiddleware(echo_app, CONF, "test", {"agents": [agent.address]},
                           http_request=[rule])


def test_from_haproxy_cfg(agent, tmp_path):
    (tmp_path / "spoe.conf").write_text(CONF)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        frontend www
            bind :8080
            filter spoe engine test config spoe.conf
            http-request set-var(txn.app) str(cfg)
            http-request send-spoe-group test grp-path
            acl denied var(txn.test.action) -m str deny
            http-request deny deny_status 403 if denied
            http-response set-header x-grp %[var(txn.test.grp_app)]
        backend agents
            mode tcp
            server a1 {agent.address}
        """))
    mw = SpoeMiddleware.from_haproxy_cfg(echo_app, cfg, "www")
    try:
        with serve(mw) as port:
            assert get(port, "/", {"x-action": "deny"}).status == 403
            ok = get(port, "/")
    finally:
        mw.close(timeout=1)
    assert ok.status == 200 and ok.header("x-grp") == "cfg"

    cfg.write_text(cfg.read_text().replace("deny deny_status 403", "deny deny_status 999"))
    with pytest.raises(ConfigError) as err:
        SpoeMiddleware.from_haproxy_cfg(echo_app, cfg, "www")
    assert err.value.lineno == 7 and "Unexpected status code '999'" in str(err.value)
    assert f"[{cfg}:7]" in str(err.value)


def test_from_haproxy_cfg_bad_acl(agent, tmp_path):
    (tmp_path / "spoe.conf").write_text(CONF)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        frontend www
            filter spoe engine test config spoe.conf
            acl bad hdr(x) -m nosuch a
            http-request deny if bad
        backend agents
            server a1 {agent.address}
        """))
    with pytest.raises(ConfigError) as err:
        SpoeMiddleware.from_haproxy_cfg(echo_app, cfg, "www")
    assert err.value.lineno == 3 and "acl 'bad'" in str(err.value)


def test_keep_alive_requests_each_see_their_own_request(agent, make_mw):
    mw = make_mw(http_request=["set-var(txn.mine) req.hdr(x-n)"])

    def proxy_fix(environ, start_response):  # an outer middleware rewriting the client per request
        if "HTTP_X_FORWARDED_FOR" in environ:
            environ["REMOTE_ADDR"] = environ["HTTP_X_FORWARDED_FOR"]
        return mw(environ, start_response)

    with serve(proxy_fix) as port, Client(port) as c:
        seen = [parse_echo(c.request("GET", f"/p{i}", {"x-n": str(i), **(
            {"X-Forwarded-For": "10.9.8.7"} if i == 2 else {})}).body) for i in range(4)]
    assert [s["txn.mine"] for s in seen] == ["0", "1", "2", "3"]
    requests = [dict(m.args) for n in agent.notifies for m in n.messages
                if m.name == "check-request"]
    assert [r["path"] for r in requests] == ["/p0", "/p1", "/p2", "/p3"]
    assert [str(r["ip"]) for r in requests] == ["127.0.0.1", "127.0.0.1", "10.9.8.7",
                                                "127.0.0.1"]
