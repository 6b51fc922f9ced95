"""SpoeMiddleware against what HAProxy 2.6 does (docs/explanation/haproxy-behaviour.md, SPOE.txt §2.5
"event" and configuration.txt §4.2/§7.3.2): ``on-client-session`` on every keep-alive request,
``http-response deny`` answering 502, a client vanishing mid-body, ``unique-id-format`` and
``uuid()``, the ``req.body`` without ``buffer_body`` warning, one public handler, generated 204
replies without content-length, and clear errors for bad options."""

from __future__ import annotations

import io
import re
import textwrap
import time
import warnings

import gevent
import pytest
from gevent import socket
from gevent.pywsgi import WSGIServer

import spoe_sync.samples
import spoe_sync.wsgi
from spoe_sync.errors import ConfigError, SpoeConfigWarning
from spoe_sync.protocol import SetVar, VarScope
from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware, listener

from .support import CONF, Client, echo_app, get, parse_echo, serve

BANNED = """[cs]
spoe-agent cs-agent
    messages crowdsec
    option var-prefix crowdsec
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend agents

spoe-message crowdsec
    args ip=src id=unique-id
    event on-client-session
"""


def _crowdsec(message):
    return [SetVar(VarScope.TXN, "remediation", "ban")]


def test_client_session_check_covers_every_keep_alive_request():
    # CrowdSec's bouncer sends its message on on-client-session and sets txn.*: HAProxy 2.6
    # fires the event for each HTTP stream, so every request of the connection is denied
    with FakeAgent({"*": _crowdsec}) as agent:
        mw = SpoeMiddleware(echo_app, BANNED, "cs", {"agents": [agent.address]},
                            http_request=["deny if { var(txn.crowdsec.remediation) -m str ban }"])
        try:
            with serve(mw) as port, Client(port) as c:
                statuses = [c.request("GET", f"/{i}").status for i in range(3)]
        finally:
            mw.close(timeout=1)
        assert statuses == [403, 403, 403]
        assert sum(len(n.messages) for n in agent.notifies) == 3


@pytest.mark.parametrize(("rule", "status"), [
    pytest.param("deny", 502, id="default-502"),
    pytest.param("deny deny_status 403", 403, id="explicit"),
])
def test_http_response_deny_status(make_mw, rule, status):
    with serve(make_mw(http_response=[rule])) as port:
        r = get(port, "/")
    assert r.status == status


def test_client_gone_mid_body_is_quiet(make_mw, capfd):
    called = []

    def app(environ, start_response):
        called.append(1)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    mw = make_mw(app, buffer_body=1 << 20)
    errors, access = io.StringIO(), io.StringIO()
    server = WSGIServer(listener(("127.0.0.1", 0)), mw,
                        handler_class=spoe_sync.wsgi.SpoeWSGIHandler, log=access,
                        error_log=errors)
    server.start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
                     + b"a" * 100)
        sock.close()  # the server sees the end of the stream wherever it is reading
        deadline = time.monotonic() + 5
        while not access.getvalue() and time.monotonic() < deadline:  # the request ended
            gevent.sleep(0.01)
    finally:
        server.stop(timeout=1)
    assert access.getvalue(), "the server never finished the request"
    assert not called
    assert "Traceback" not in errors.getvalue() + capfd.readouterr().err


UID = CONF.replace("args ip=src path=path act=req.hdr(x-action)",
                   "args id=unique-id ip=src path=path act=req.hdr(x-action)")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")


def _ids(agent):
    return [dict(m.args)["id"] for n in agent.notifies for m in n.messages
            if m.name == "check-request"]


def test_unique_id_format_reaches_the_agent_as_a_string(agent):
    seen = []

    def app(environ, start_response):
        seen.append(environ.get("HTTP_X_UNIQUE_ID"))
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    mw = SpoeMiddleware(app, UID, "test", {"agents": [agent.address]},
                        unique_id_format="%[uuid()]", unique_id_header="X-Unique-ID")
    try:
        with serve(mw) as port, Client(port) as c:
            for i in range(2):
                assert c.request("GET", f"/{i}").status == 200
    finally:
        mw.close(timeout=1)
    ids = _ids(agent)
    assert len(ids) == 2 and all(isinstance(i, str) and _UUID4.match(i) for i in ids)
    assert ids[0] != ids[1] and seen == ids


def test_unique_id_is_null_without_a_format(make_mw, agent):
    with serve(SpoeMiddleware(echo_app, UID, "test", {"agents": [agent.address]})) as port:
        get(port, "/")
    assert _ids(agent) == [None]


def test_unique_id_format_from_haproxy_cfg(agent, tmp_path):
    (tmp_path / "spoe.conf").write_text(UID)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        defaults
            unique-id-format %[str(dflt)]
        frontend www
            unique-id-format id-%[path]
            filter spoe engine test config spoe.conf
        backend agents
            server a1 {agent.address}
        """))
    mw = SpoeMiddleware.from_haproxy_cfg(echo_app, cfg, "www")
    try:
        with serve(mw) as port:
            get(port, "/here")
    finally:
        mw.close(timeout=1)
    assert _ids(agent) == ["id-/here"]


def test_req_body_without_buffer_body_warns(agent):
    backends = {"agents": [agent.address]}
    with pytest.warns(SpoeConfigWarning, match="req.body"):
        SpoeMiddleware(echo_app, CONF, "test", backends,
                       http_request=["send-spoe-group test grp-body"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SpoeMiddleware(echo_app, CONF, "test", backends,
                       http_request=["send-spoe-group test grp-body"], buffer_body=1024)
        SpoeMiddleware(echo_app, CONF, "test", backends)  # the group is never sent


def test_one_public_handler_keeps_the_session(make_mw):
    assert spoe_sync.samples.SpoeWSGIHandler is spoe_sync.wsgi.SpoeWSGIHandler
    mw = make_mw(http_request=["set-var(sess.count) int(0) if !{ var(sess.count) -m found }",
                               "set-var(sess.count) var(sess.count),add(1)",
                               "set-var(txn.mine) var(sess.count)"])
    server = WSGIServer(listener(("127.0.0.1", 0)), mw,
                        handler_class=spoe_sync.samples.SpoeWSGIHandler, log=None,
                        error_log=None)
    server.start()
    try:
        with Client(server.server_port) as c:
            seen = [parse_echo(c.request("GET", "/").body)["txn.mine"] for _ in range(2)]
    finally:
        server.stop(timeout=1)
    assert seen == ["1", "2"]


def test_generated_204_has_no_content_length(make_mw):
    with serve(make_mw(http_request=["return status 204"])) as port:
        r = get(port, "/")
    assert r.status == 204 and r.header("content-length") is None


@pytest.mark.parametrize(("kw", "text"), [
    pytest.param({"http_request": [42]}, r"'http-request' rule 42 : expected", id="int-rule"),
    pytest.param({"buffer_body": -1}, "buffer_body must be", id="negative-buffer"),
    pytest.param({"backends": {"nope": ["127.0.0.1:1"]}},
                 r"unknown backend 'agents'.*backends=\{'agents'", id="unknown-backend"),
])
def test_bad_options_are_clear(agent, kw, text):
    kw.setdefault("backends", {"agents": [agent.address]})
    with pytest.raises(ConfigError, match=text):
        SpoeMiddleware(echo_app, CONF, "test", **kw)
