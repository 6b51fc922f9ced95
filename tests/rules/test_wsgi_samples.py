"""WSGISamples (issue 3 "Sample sources"): fetches over a PEP 3333 environ, with the raw header
list, raw URI and local address that ``SpoeWSGIHandler`` adds, through a real gevent.pywsgi server
on 127.0.0.1 and a raw client socket; and the fallbacks for a plain environ."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import gevent
import pytest
from gevent import socket as gsocket
from gevent.pywsgi import WSGIHandler, WSGIServer

from spoe_sync.rules import EvalContext, ResponseInfo, parse_sample
from spoe_sync.samples import SpoeWSGIHandler, WSGISamples, decode_hdrs_bin

EXPRS = ["src", "src_port", "dst", "dst_port", "method", "url", "path", "query", "req.ver",
         "req.hdrs", "req.hdrs_bin", "req.hdr(x-list)", "req.fhdr(x-list)", "req.hdr(x-list,1)",
         "req.fhdr(user-agent)", "req.cook(sid)", "req.body", "req.body_size", "unique-id",
         "ssl_fc"]

RAW = (b"POST /p%20q?a=1&b=? HTTP/1.1\r\nHost: Example.ORG\r\nX-List: a, b\r\n"
       b"User-Agent: agent/1.0 (x, y)\r\nx-LIST: c\r\nCookie: sid=1\r\nCOOKIE: sid=2\r\n"
       b"Content-Length: 4\r\nConnection: close\r\n\r\nbody")


def serve_once(handler_class, raw: bytes, *, buffer_body: bool = True):
    results = []

    def app(environ, start_response):
        body = environ["wsgi.input"].read() if buffer_body else None
        samples = WSGISamples(environ, body=body)
        ctx = EvalContext(samples)
        results.append(({e: parse_sample(e).evaluate(ctx) for e in EXPRS}, samples, environ))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), app, handler_class=handler_class, log=None,
                        error_log=None)
    server.start()
    try:
        with gsocket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
            sock.sendall(raw)
            data = b""
            with gevent.Timeout(5):
                while not data.endswith(b"ok"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            client_port = sock.getsockname()[1]
        assert data.startswith(b"HTTP/1.1 200"), data
        assert len(results) == 1
        return results[0], server.server_port, client_port
    finally:
        server.stop(timeout=1)


def test_real_server_with_spoe_handler():
    (values, _, _), server_port, client_port = serve_once(SpoeWSGIHandler, RAW)
    assert values["src"] == IPv4Address("127.0.0.1")
    assert values["src_port"] == client_port
    assert values["dst"] == IPv4Address("127.0.0.1")
    assert values["dst_port"] == server_port
    assert values["method"] == "POST"
    assert values["url"] == "/p%20q?a=1&b=?"
    assert values["path"] == "/p%20q"
    assert values["query"] == "a=1&b=?"
    assert values["req.ver"] == "1.1"
    assert values["req.hdrs"] == ("host: Example.ORG\r\nx-list: a, b\r\n"
                                  "user-agent: agent/1.0 (x, y)\r\nx-list: c\r\n"
                                  "cookie: sid=1\r\ncookie: sid=2\r\ncontent-length: 4\r\n\r\n")
    assert decode_hdrs_bin(values["req.hdrs_bin"])[:4] == [
        (b"host", b"Example.ORG"), (b"x-list", b"a, b"),
        (b"user-agent", b"agent/1.0 (x, y)"), (b"x-list", b"c")]
    assert values["req.hdr(x-list)"] == "c"
    assert values["req.fhdr(x-list)"] == "c"
    assert values["req.hdr(x-list,1)"] == "a"
    assert values["req.fhdr(user-agent)"] == "agent/1.0 (x, y)"
    assert values["req.cook(sid)"] == "2"
    assert values["req.body"] == b"body"
    assert values["req.body_size"] == 4
    assert values["unique-id"] is None
    assert values["ssl_fc"] is False


def test_plain_gevent_handler_falls_back_to_environ_keys():
    (values, _, _), server_port, _ = serve_once(WSGIHandler, RAW)
    # gevent joins duplicates with ',' (cookies with '; ') and loses the raw URI
    assert values["req.fhdr(x-list)"] == "a, b,c"
    assert values["req.cook(sid)"] == "2"
    assert values["url"] == "/p%20q?a=1&b=?"
    assert values["dst_port"] == server_port
    # dst: SERVER_NAME is a host name; the socket under wsgi.input tells the address
    assert values["dst"] == IPv4Address("127.0.0.1")
    # CONTENT_LENGTH is set before the HTTP_* keys: arrival order is lost
    assert values["req.hdrs"].startswith("content-length: 4\r\nhost: Example.ORG\r\n")
    assert "user-agent: agent/1.0 (x, y)\r\n" in values["req.hdrs"]


def test_body_not_buffered_by_the_integration():
    (values, _, _), _, _ = serve_once(SpoeWSGIHandler, RAW, buffer_body=False)
    assert values["req.body"] == b""
    assert values["req.body_size"] == 4


def test_body_is_cut_at_the_haproxy_buffer_limit():
    env = {**BASE_ENV, "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "100000"}
    body = b"x" * 100000
    cut = parse_sample("req.body_len").evaluate(EvalContext(WSGISamples(env, body=body)))
    whole = parse_sample("req.body_len").evaluate(
        EvalContext(WSGISamples(env, body=body, bufsize=None)))
    assert 15000 < cut < 16384 and whole == 100000


def test_next_request_keeps_the_connection():
    first = WSGISamples({**BASE_ENV, "spoe_sync.local_addr": ("10.0.0.8", 81)})
    env2 = {**BASE_ENV, "REMOTE_ADDR": "10.9.9.9", "spoe_sync.raw_uri": "/second?q",
            "CONTENT_LENGTH": "100000"}
    second = first.next_request(env2, body=b"y" * 100000)
    ctx = EvalContext(second)
    assert parse_sample("src").evaluate(ctx) == IPv6Address("::1")  # the connection's
    assert parse_sample("dst_port").evaluate(ctx) == 81
    assert parse_sample("url").evaluate(ctx) == "/second?q"
    assert 15000 < parse_sample("req.body_len").evaluate(ctx) < 16384
    assert parse_sample("url").evaluate(EvalContext(first)) == "/a%20b"


def test_with_response():
    (_, samples, _), _, _ = serve_once(SpoeWSGIHandler, RAW)
    resp = samples.with_response(ResponseInfo(404, [("Content-Type", "text/plain"),
                                                    ("X-A", "1")], body=b"nope"))
    ctx = EvalContext(resp)
    assert parse_sample("status").evaluate(ctx) == 404
    assert parse_sample("res.hdrs").evaluate(ctx) == "content-type: text/plain\r\nx-a: 1\r\n\r\n"
    assert parse_sample("res.body").evaluate(ctx) == b"nope"
    assert parse_sample("res.ver").evaluate(ctx) == "1.1"
    assert parse_sample("status").evaluate(EvalContext(samples)) is None


BASE_ENV = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/a b",
            "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.0", "REMOTE_ADDR": "::1",
            "REMOTE_PORT": "4242", "SERVER_NAME": "localhost", "SERVER_PORT": "8080",
            "CONTENT_TYPE": "text/plain", "HTTP_HOST": "h", "wsgi.url_scheme": "https"}


@pytest.mark.parametrize(("extra", "expr", "expected"), [
    pytest.param({}, "url", "/a%20b", id="rebuilt-url"),
    pytest.param({}, "query", None, id="empty-query-string-is-no-query"),
    pytest.param({"QUERY_STRING": "x=1"}, "url", "/a%20b?x=1", id="rebuilt-with-query"),
    pytest.param({"REQUEST_URI": "/raw?"}, "query", "", id="request-uri-key"),
    pytest.param({"spoe_sync.raw_uri": "/r%2Fx"}, "path", "/r%2Fx", id="raw-uri-key"),
    pytest.param({}, "src", IPv6Address("::1"), id="ipv6-remote"),
    pytest.param({}, "dst", None, id="server-name-not-an-ip"),
    pytest.param({}, "dst_port", 8080, id="server-port"),
    pytest.param({"SERVER_NAME": "10.0.0.9"}, "dst", IPv4Address("10.0.0.9"), id="server-ip"),
    pytest.param({"spoe_sync.local_addr": ("10.0.0.8", 81)}, "dst_port", 81, id="local-key"),
    pytest.param({}, "ssl_fc", True, id="https-scheme"),
    pytest.param({}, "req.ver", "1.0", id="version"),
    pytest.param({}, "req.hdrs", "content-type: text/plain\r\nhost: h\r\n\r\n", id="fallback"),
    pytest.param({"spoe_sync.raw_headers": [("Host", "x"), ("host", "y")]}, "req.hdr_cnt(host)",
                 2, id="raw-headers-key"),
    pytest.param({"spoe_sync.body": b"abc"}, "req.body", b"abc", id="body-key"),
    pytest.param({"spoe_sync.unique_id": "u-1"}, "unique-id", "u-1", id="unique-id-key"),
    pytest.param({"REMOTE_ADDR": "bad"}, "src", None, id="bad-remote"),
    # issue 12: src comes from REMOTE_ADDR alone (Werkzeug's test client sets no REMOTE_PORT,
    # its dev server an int): a deny rule on src must never go silently off
    pytest.param({"REMOTE_PORT": None}, "src", IPv6Address("::1"), id="src-without-port"),
    pytest.param({"REMOTE_PORT": 4242}, "src", IPv6Address("::1"), id="src-int-port"),
    pytest.param({"REMOTE_PORT": 4242}, "src_port", 4242, id="src-port-int"),
    pytest.param({"REMOTE_PORT": None}, "src_port", None, id="src-port-missing"),
    pytest.param({"REMOTE_PORT": "x"}, "src_port", None, id="src-port-not-a-number"),
    pytest.param({"REMOTE_PORT": 70000}, "src_port", None, id="src-port-out-of-range"),
    pytest.param({"REMOTE_PORT": "x"}, "src", IPv6Address("::1"), id="src-bad-port"),
    pytest.param({"HTTP_X_BAD": "caf\xe9"}, "req.hdr(x-bad),hex", "636166E9",
                 id="latin1-environ-bytes"),
])
def test_environ(extra, expr, expected):
    env = {k: v for k, v in {**BASE_ENV, **extra}.items() if v is not None}
    assert parse_sample(expr).evaluate(EvalContext(WSGISamples(env))) == expected


class _AcceptInvalid(SpoeWSGIHandler):
    accept_invalid_http_request = True  # HAProxy refuses an 8-bit target (400) without it


@pytest.mark.parametrize("handler_class", [pytest.param(_AcceptInvalid, id="spoe-handler")])
def test_an_8bit_request_target_goes_out_as_its_raw_bytes(handler_class):
    """PEP 3333 carries the request line's bytes as latin-1 text; the ``path`` and ``url``
    fetches must send those bytes (as HAProxy does with option accept-invalid-http-request),
    not their UTF-8 encoding.  (Under
    gevent's own handler the raw target is unknown: it is rebuilt from PATH_INFO, quoted.)"""
    from spoe_sync.protocol.codec import MessageEncoder

    raw = b"GET /caf\xc3\xa9?q=\xff HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    (values, _, _), _, _ = serve_once(handler_class, raw, buffer_body=False)
    wire = MessageEncoder("m", ["p"]).encode([values["path"]])
    assert wire.endswith(b"\x08\x06/caf\xc3\xa9")
    url = MessageEncoder("m", ["u"]).encode([values["url"]])
    assert url.endswith(b"/caf\xc3\xa9?q=\xff")
