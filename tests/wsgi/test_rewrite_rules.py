"""SpoeMiddleware's request-rewriting rule actions (configuration.txt §4.2: http-request
``set-method``, ``set-path``, ``set-pathq``, ``set-query``, ``set-uri``, ``set-src``,
``replace-header``, ``replace-value``, ``capture``; docs/explanation/agents.md §6: CrowdSec's
``set-src``, HaRP's ``set-path``) through a real gevent.pywsgi server, a raw HTTP client and a
real SPOP agent: what the app, later rules and SPOE messages see after each rewrite."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address

import pytest
from gevent import socket

from spoe_sync.protocol import Message, SetVar, VarScope
from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware, SpoeWSGIHandler
from tests.kit import read_until_eof

from .support import get, serve

CONF = """[rw]
spoe-agent rw-agent
    groups seen
    option var-prefix rw
    timeout hello 1s
    timeout idle 30s
    timeout processing 2s
    use-backend agents

spoe-message request-seen
    args method=method path=path query=query url=url src=src port=src_port cap=capture.req.hdr(0)
spoe-group seen
    messages request-seen
"""


def _agent_handler(message: Message) -> list[SetVar]:
    # echo what the message carried, with its SPOP type, so the test sees what the agent got
    args = dict(message.args)
    src = args.get("src")
    kind = "ipv4" if isinstance(src, IPv4Address) else "ipv6" if isinstance(
        src, IPv6Address) else type(src).__name__
    seen = {k: (None if v is None else str(int(v)) if isinstance(v, int) else str(v))
            for k, v in args.items()}
    seen["src_type"] = kind
    return [SetVar(VarScope.TXN, "seen", json.dumps(seen))]


def environ_app(environ, start_response):
    """Answers with the parts of the environ a rewrite changes, as JSON."""
    keys = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SCRIPT_NAME", "REMOTE_ADDR",
            "REMOTE_PORT", "HTTP_HOST", "HTTP_X_R", "HTTP_X_V", "HTTP_X_AFTER", "HTTP_X_CAP",
            "HTTP_X_SRC", "spoe_sync.raw_uri", "spoe_sync.captures")
    seen = {k: environ.get(k) for k in keys}
    seen["raw_headers"] = [list(h) for h in environ.get("spoe_sync.raw_headers") or ()]
    seen["agent"] = environ["spoe_sync.vars"].get("txn.rw.seen")
    seen["body"] = environ["wsgi.input"].read().decode("latin-1")
    payload = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("X-R", "abc, aq"), ("X-R", "xa"), ("X-V", "b1, bb2 ,c"),
                              ("Content-Length", str(len(payload)))])
    return [payload]


@pytest.fixture
def rw_agent():
    with FakeAgent({"*": _agent_handler}) as agent:
        yield agent


@pytest.fixture
def make(rw_agent):
    made = []

    def build(**kw):
        mw = SpoeMiddleware(environ_app, CONF, "rw", {"agents": [rw_agent.address]}, **kw)
        made.append(mw)
        return mw

    yield build
    for mw in made:
        mw.close(timeout=1)


def raw_request(port: int, raw: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One raw request (``Connection: close``): status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = read_until_eof(s, timeout=timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def seen(port: int, line: str, headers: str = "") -> dict:
    raw = (f"{line} HTTP/1.1\r\nHost: h.test\r\n{headers}Connection: close\r\n\r\n")
    status, _, body = raw_request(port, raw.encode("latin-1"))
    assert status == 200, body
    return json.loads(body)


AFTER = "set-header x-after %[method]|%[path]|%[query]|%[url]|%[base]"

# (rule, request line, extra header lines, method, PATH_INFO, QUERY_STRING, raw uri, x-after)
START_LINE = [
    pytest.param("set-path /new%[path]", "GET /a%20b?x=1", "", "GET", "/new/a b", "x=1",
                 "/new/a%20b?x=1", "GET|/new/a%20b|x=1|/new/a%20b?x=1|h.test/new/a%20b",
                 id="set-path-keeps-query"),
    pytest.param("set-path /caf%%C3%%A9", "GET /a", "", "GET", "/caf\xc3\xa9", "",
                 "/caf%C3%A9", "GET|/caf%C3%A9||/caf%C3%A9|h.test/caf%C3%A9",
                 id="set-path-percent-decoded-as-latin-1"),
    pytest.param("set-path /b", "GET http://h.test/a?z", "", "GET", "http://h.test/b", "z",
                 "http://h.test/b?z", "GET|/b|z|http://h.test/b?z|h.test/b",
                 id="set-path-keeps-scheme-and-authority"),
    pytest.param("set-path /star", "OPTIONS *", "", "OPTIONS", "/star", "", "/star",
                 "OPTIONS|/star||/star|h.test/star", id="set-path-replaces-star"),
    pytest.param("set-pathq /p?q=%[query]", "GET /a?z", "", "GET", "/p", "q=z", "/p?q=z",
                 "GET|/p|q=z|/p?q=z|h.test/p", id="set-pathq"),
    pytest.param("set-pathq /p", "GET /a?z", "", "GET", "/p", "", "/p",
                 "GET|/p||/p|h.test/p", id="set-pathq-drops-query"),
    pytest.param("set-query a=b", "GET /a", "", "GET", "/a", "a=b", "/a?a=b",
                 "GET|/a|a=b|/a?a=b|h.test/a", id="set-query-adds-qmark"),
    pytest.param("set-query %[hdr(x-none)]", "GET /a", "", "GET", "/a", "", "/a",
                 "GET|/a||/a|h.test/a", id="set-query-empty-adds-nothing"),
    pytest.param("set-query %[hdr(x-none)]", "GET /a?z", "", "GET", "/a", "", "/a?",
                 "GET|/a||/a?|h.test/a", id="set-query-empty-keeps-qmark"),
    pytest.param("set-uri /u?v", "GET /a?z", "", "GET", "/u", "v", "/u?v",
                 "GET|/u|v|/u?v|h.test/u", id="set-uri"),
    pytest.param("set-method PURGE", "GET /a", "", "PURGE", "/a", "", "/a",
                 "PURGE|/a||/a|h.test/a", id="set-method"),
    pytest.param("set-path %[hdr(x-p)]", "GET /a?z", "x-p: /a?b\r\n", "GET", "/a", "b?z",
                 "/a?b?z", "GET|/a|b?z|/a?b?z|h.test/a", id="set-path-with-qmark"),
]


@pytest.mark.parametrize(("rule", "line", "extra", "method", "path_info", "query", "raw",
                          "after"), START_LINE)
def test_start_line_rewrites(make, rule, line, extra, method, path_info, query, raw, after):
    with serve(make(http_request=[rule, AFTER])) as port:
        env = seen(port, line, extra)
    assert env["REQUEST_METHOD"] == method
    assert env["PATH_INFO"] == path_info and env["QUERY_STRING"] == query
    assert env["spoe_sync.raw_uri"] == raw
    assert env["HTTP_X_AFTER"] == after


def test_set_uri_with_authority_sets_host(make):
    with serve(make(http_request=["set-uri http://other.test/x?y", AFTER])) as port:
        env = seen(port, "GET /a")
    assert env["HTTP_HOST"] == "other.test"
    assert ["host", "other.test"] in [[n.lower(), v] for n, v in env["raw_headers"]]
    assert env["PATH_INFO"] == "http://other.test/x"  # what gevent makes of an absolute URI
    assert env["HTTP_X_AFTER"] == "GET|/x|y|http://other.test/x?y|other.test/x"


def test_spoe_group_after_rewrites_sees_the_new_request(make):
    rules = ["set-src hdr(x-real-ip) if { req.hdr(x-real-ip) -m found }",
             "set-path /app%[path]", "set-query id=1", "capture req.hdr(host) len 3",
             "send-spoe-group rw seen"]
    with serve(make(http_request=rules)) as port:
        env = seen(port, "GET /a?old", "X-Real-IP: 192.0.2.7\r\n")
        v6 = seen(port, "GET /b", "X-Real-IP: 2001:db8::1\r\n")
    agent = json.loads(env["agent"])
    assert agent["path"] == "/app/a" and agent["query"] == "id=1"
    assert agent["url"] == "/app/a?id=1" and agent["method"] == "GET"
    assert agent["src"] == "192.0.2.7" and agent["src_type"] == "ipv4"
    assert agent["port"] == env["REMOTE_PORT"]  # HAProxy 2.6 keeps the client's port
    assert agent["cap"] == "h.t"
    assert env["REMOTE_ADDR"] == "192.0.2.7"
    assert json.loads(v6["agent"])["src_type"] == "ipv6" and v6["REMOTE_ADDR"] == "2001:db8::1"


@pytest.mark.parametrize("header", [
    pytest.param("X-Real-IP: not-an-ip\r\n", id="not-an-address"),
    pytest.param("", id="sample-fails"),
])
def test_set_src_without_an_address_changes_nothing(make, header):
    with serve(make(http_request=["set-src hdr(x-real-ip)",
                                  "set-header x-src %[src]"])) as port:
        env = seen(port, "GET /", header)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["HTTP_X_SRC"] == "127.0.0.1"


@pytest.mark.parametrize("rule", [
    pytest.param("set-method %[hdr(x-none)]", id="empty-method"),
    pytest.param("set-path /a%%20b\\ c", id="space-in-path"),
    pytest.param("set-uri %[hdr(x-none)]", id="empty-uri"),
])
def test_request_line_gevent_would_refuse_is_answered_400(make, rule):
    with serve(make(http_request=[rule])) as port:
        status, headers, body = raw_request(
            port, b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert status == 400 and b"400 Bad request" in body
    assert headers["connection"] == "close"


def test_rewrite_under_script_name(make, rw_agent):
    mw = make(http_request=["set-path /mnt/new", AFTER])

    def mounted(environ, start_response):
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/mnt", environ["PATH_INFO"][4:]
        return mw(environ, start_response)

    with serve(mounted) as port:
        env = seen(port, "GET /mnt/old")
    assert env["SCRIPT_NAME"] == "/mnt" and env["PATH_INFO"] == "/new"


def test_replace_header_and_value_on_the_request(make):
    rules = [r"replace-header x-r ^a(.*)$ <\1>%[src]", r"replace-value x-v ^b(.*)$ [\1]"]
    with serve(make(http_request=rules)) as port:
        env = seen(port, "GET /", 'X-R: abc, aq\r\nX-R: xa\r\nX-V: b1, bb2 ,c, b3,,"b,5"\r\n'
                                  "X-V: x , b4\r\n")
    assert [v for n, v in env["raw_headers"] if n.lower() == "x-r"] == ["<bc, aq>127.0.0.1",
                                                                         "xa"]
    # each comma-separated value, trimmed for the match, replaced with its spaces
    assert [v for n, v in env["raw_headers"] if n.lower() == "x-v"] == \
        ['[1],[b2],c,[3],,"b,5"', "x ,[4]"]
    assert env["HTTP_X_R"] == "<bc, aq>127.0.0.1,xa"


def test_replace_on_responses_and_after_responses(make):
    mw = make(http_response=[r"replace-value x-v ^b(.*)$ <\1>"],
              http_after_response=[r"replace-header x-r ^x(a)$ \1\1\9"])
    with serve(mw) as port:
        r = get(port, "/")
    assert r.status == 200
    assert [v for n, v in r.headers if n.lower() == "x-r"] == ["abc, aq", "aa"]
    assert r.header("x-v") == "<1>,<b2>,c"


def test_capture_slots(make):
    rules = ["capture req.hdr(host) len 3", "capture path len 100",
             "capture req.hdr(x-none) len 5", "set-path /changed",
             "capture bin(41004243) len 9 if TRUE",  # cut at the NUL, as HAProxy's buffer
             "capture str(late) id 2",
             "set-header x-cap %[capture.req.hdr(0)]|%[capture.req.hdr(1)]|"
             "%[capture.req.hdr(3)]|%[capture.req.hdr(7)]"]
    with serve(make(http_request=rules)) as port:
        env = seen(port, "GET /orig")
    assert env["spoe_sync.captures"] == ["h.t", "/orig", "late", "A"]
    assert env["HTTP_X_CAP"] == "h.t|/orig|A|"  # slot 7 does not exist: the fetch fails


def test_no_effect_actions_warn_and_are_skipped(make):
    rules = ["set-log-level silent", "set-nice 10", "set-tos 0x10", "set-mark 3",
             "set-priority-class int(1)", "set-priority-offset int(5)", "strict-mode off",
             "set-header x-after done"]
    with pytest.warns(Warning) as caught:
        mw = make(http_request=rules, http_response=["set-log-level info"])
    texts = [str(w.message) for w in caught]
    for kw in ("set-log-level", "set-nice", "set-tos", "set-mark", "set-priority-class",
               "set-priority-offset", "strict-mode"):
        assert any(f"'http-request {kw}' has no effect" in t for t in texts), kw
    with serve(mw) as port:
        assert seen(port, "GET /")["HTTP_X_AFTER"] == "done"


@pytest.mark.parametrize(("kwargs", "needle"), [
    pytest.param({"http_request": ["lua.crowdsec_handle if TRUE"]},
                 "pass a Python callable", id="lua"),
    pytest.param({"http_response": ["capture res.hdr(x) id 0"]},
                 "'declare capture response'", id="response-capture"),
    pytest.param({"http_request": ["capture src id 0"]},
                 "unable to find capture id '0'", id="capture-id-without-slot"),
    pytest.param({"http_request": ["set-path"]}, "expects exactly 1 argument <format>.",
                 id="set-path-no-arg"),
    pytest.param({"http_request": ["normalize-uri path-merge-slashes"]},
                 "spoe_sync implements these actions", id="normalize-uri"),
])
def test_config_errors(make, kwargs, needle):
    from spoe_sync.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make(**kwargs)
    assert needle in str(err.value)


class _AcceptInvalid(SpoeWSGIHandler):
    accept_invalid_http_request = True  # HAProxy refuses an 8-bit target (400) without it


def test_rewrites_and_redirects_keep_an_8bit_target_s_raw_bytes(make):
    """The client's bytes c3 a9 stay those bytes: in PATH_INFO (PEP 3333: one character per
    byte), in the raw URI after a set-query, and in a redirect's Location (HAProxy keeps the
    request's bytes as they came, with option accept-invalid-http-request)."""
    with serve(make(http_request=["set-query b=2"]), _AcceptInvalid) as port:
        env = seen(port, "GET /caf\xc3\xa9?a=1")
    assert env["PATH_INFO"] == "/caf\xc3\xa9" and env["QUERY_STRING"] == "b=2"
    assert env["spoe_sync.raw_uri"] == "/caf\xc3\xa9?b=2"
    with serve(make(http_request=["redirect prefix /p"]), _AcceptInvalid) as port:
        status, headers, _ = raw_request(
            port, b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n")
    assert status == 302
    assert headers["location"].encode("latin-1") == b"/p/caf\xc3\xa9"
