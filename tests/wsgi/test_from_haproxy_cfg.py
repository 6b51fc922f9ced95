"""``SpoeMiddleware.from_haproxy_cfg`` honours what a frontend's settings change for agents
(``option http-buffer-request``: the body reaches the agent) and names in a SpoeConfigWarning
each such setting it does not honour (docs/explanation/haproxy-behaviour.md §8)."""

from __future__ import annotations

import textwrap
import warnings

import pytest

from spoe_sync.config.haproxy_cfg import parse_haproxy_cfg
from spoe_sync.errors import SpoeConfigWarning
from spoe_sync.protocol import SetVar, VarScope
from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware

from .support import Client, echo_app, parse_echo, serve

SPOE = """[waf]
spoe-agent waf-agent
    messages check-body
    option var-prefix waf
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend agents

spoe-message check-body
    args body=req.body
    event on-frontend-http-request
"""


def _cfg(tmp_path, agent, frontend_lines: str, defaults: str = "") -> str:
    (tmp_path / "waf.conf").write_text(SPOE)
    path = tmp_path / "haproxy.cfg"
    path.write_text(textwrap.dedent("""\
        global
            tune.bufsize 32768
        defaults
            mode http
        {defaults}
        frontend www
            bind :8080
            filter spoe engine waf config waf.conf
        {frontend}
        backend agents
            mode tcp
            server a1 {address}
        """).format(defaults=defaults, frontend=frontend_lines, address=agent.address))
    return str(path)


@pytest.fixture
def body_agent():
    seen: list[bytes | None] = []

    def check(message):
        body = dict(message.args).get("body")
        seen.append(body)
        return [SetVar(VarScope.TXN, "verdict",
                       "deny" if body and b"<script>" in body else "allow")]

    with FakeAgent({"check-body": check}) as agent:
        agent.seen = seen
        yield agent


def _post(mw, body: bytes):
    with serve(mw) as port, Client(port) as c:
        return c.request("POST", "/", {"content-type": "text/xml"}, body)


@pytest.mark.parametrize("where", ["frontend", "defaults"])
def test_http_buffer_request_sends_the_body_to_the_agent(tmp_path, body_agent, where):
    # before: the agent saw an empty body, so the body attack passed with 200
    line = "    option http-buffer-request"
    rules = "    http-request deny if { var(txn.waf.verdict) -m str deny }"
    path = _cfg(tmp_path, body_agent, line + "\n" + rules if where == "frontend" else rules,
                defaults=line if where == "defaults" else "")
    mw = SpoeMiddleware.from_haproxy_cfg(echo_app, path, "www")
    try:
        assert mw.buffer_body == 32768  # the global tune.bufsize
        attack = _post(mw, b"<a><script>alert(1)</script></a>")
        benign = _post(mw, b"<a>hello</a>")
    finally:
        mw.close(timeout=1)
    assert attack.status == 403
    assert benign.status == 200 and parse_echo(benign.body)["body"] == "12"  # the app reads it all
    assert body_agent.seen == [b"<a><script>alert(1)</script></a>", b"<a>hello</a>"]


def test_no_option_in_the_frontend_overrides_the_defaults(tmp_path, body_agent):
    path = _cfg(tmp_path, body_agent, "    no option http-buffer-request",
                defaults="    option http-buffer-request")
    with pytest.warns(SpoeConfigWarning, match="req.body but buffer_body is not set"):
        mw = SpoeMiddleware.from_haproxy_cfg(echo_app, path, "www")
    assert mw.buffer_body is None
    mw.close(timeout=1)


def test_an_explicit_option_wins_over_the_file(tmp_path, body_agent):
    path = _cfg(tmp_path, body_agent, "    option http-buffer-request")
    mw = SpoeMiddleware.from_haproxy_cfg(echo_app, path, "www", buffer_body=100)
    assert mw.buffer_body == 100
    mw.close(timeout=1)


def test_each_setting_not_honoured_is_named_once(tmp_path, body_agent):
    path = _cfg(tmp_path, body_agent, textwrap.indent(textwrap.dedent("""\
        option http-buffer-request
        option forwardfor
        option accept-invalid-http-request
        tcp-request content reject if { src 10.0.0.1 }
        tcp-request inspect-delay 5s
        errorfile 403 /dev/null
        compression algo gzip
        filter trace
        default_backend app
        """), "    "))
    with open(path, "a") as f:
        f.write("backend app\n    filter spoe engine waf config waf.conf\n"
                "    http-request deny if { path /x }\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mw = SpoeMiddleware.from_haproxy_cfg(echo_app, path, "www")
    mw.close(timeout=0)
    texts = [str(w.message) for w in caught if issubclass(w.category, SpoeConfigWarning)]
    for keyword in ("option forwardfor", "option accept-invalid-http-request", "tcp-request",
                    "errorfile", "compression", "filter", "default_backend"):
        hits = [t for t in texts if f"'{keyword}' is not honoured" in t]
        assert len(hits) == 1, (keyword, texts)
    assert any(":12,13]" in t for t in texts if "'tcp-request'" in t), texts  # both lines named
    assert not any("http-buffer-request" in t for t in texts)
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]


def test_section_settings_are_read_once_with_defaults_first():
    cfg = parse_haproxy_cfg(textwrap.dedent("""\
        defaults
            mode http
            option http-buffer-request
            unique-id-format %[uuid()]
        frontend fe
            no option http-buffer-request
            unique-id-header X-Id
            acl a path /a
        defaults
            option forwardfor
        frontend other
        """))
    fe, other = cfg.proxies["fe"], cfg.proxies["other"]
    assert fe.setting("option", "http-buffer-request") is None
    assert fe.setting("unique-id-format").words == ("unique-id-format", "%[uuid()]")
    assert fe.setting("unique-id-header").lineno == 7
    assert [a.words for a in fe.acls] == [("acl", "a", "path", "/a")]
    # a later defaults section replaces the earlier one for the proxies after it
    assert other.setting("unique-id-format") is None
    assert other.setting("option", "forwardfor").lineno == 10
