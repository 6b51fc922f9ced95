"""SpoeWSGIHandler refuses what HAProxy 2.6 refuses (issue 13, "HTTP validity"): HAProxy's status
and bytes, no SPOE event, the connection closed; and it serves what HAProxy serves where gevent
alone would answer 400 (a HEAD request with a body, ``HTTP/2.0`` in the request line).  Real
sockets, a real middleware and FakeAgent; the same requests against HAProxy are in the fuzz tier
(tests/conformance/test_fuzz_haproxy.py)."""

from __future__ import annotations

import pytest
from gevent import socket

from spoe_sync.wsgi.validity import error_response
from tests.kit import read_until_eof

from .support import CONF, serve

pytestmark = pytest.mark.timeout(60)


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        return read_until_eof(sock, timeout=10)


def _app(environ, start_response):
    body = environ["wsgi.input"].read()
    payload = b"%s %s %d" % (environ["REQUEST_METHOD"].encode(),
                             environ["SERVER_PROTOCOL"].encode(), len(body))
    start_response("200 OK", [("Content-Length", str(len(payload)))])
    return [payload]


@pytest.mark.parametrize(("raw", "status"), [
    pytest.param(b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="fragment"),
    pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="8-bit-target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
    pytest.param(b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400, id="authority-not-host"),
    pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
                 id="two-lengths"),
    pytest.param(b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 422,
                 id="coding-before-chunked"),
    pytest.param(b"GET / HTTP/1.0\r\nContent-Length: 1\r\n\r\na", 413,
                 id="http10-get-with-body"),
])
def test_what_haproxy_refuses_gets_its_answer_and_no_event(make_mw, agent, raw, status):
    mw = make_mw(app=_app, conf=CONF, buffer_body=16384)
    with serve(mw) as port:
        answer = _exchange(port, raw)
    assert answer == error_response(status)  # HAProxy's bytes, then the connection closed
    assert agent.notifies == []  # before any SPOE event, on-client-session included


def test_the_413_whether_or_not_the_body_is_waited_for(make_mw, agent):
    # HAProxy 2.6 refuses an HTTP/1.0 GET, HEAD or DELETE with a body without
    # option http-buffer-request too (tests/conformance/test_fuzz_validity_haproxy.py)
    mw = make_mw(app=_app, conf=CONF)  # no buffer_body
    with serve(mw) as port:
        for method in (b"GET", b"HEAD", b"DELETE"):
            answer = _exchange(port, method + b" / HTTP/1.0\r\nContent-Length: 1\r\n\r\na")
            assert answer == error_response(413), method
        assert agent.notifies == []  # refused before any event
        answer = _exchange(port, b"OPTIONS / HTTP/1.0\r\nContent-Length: 1\r\n\r\na")
    assert answer.startswith(b"HTTP/1.1 200 ") or answer.startswith(b"HTTP/1.0 200 ")
    assert answer.endswith(b"OPTIONS HTTP/1.0 1")
    assert agent.notifies


def test_a_head_request_with_a_body_is_served(make_mw, agent):
    mw = make_mw(app=_app, conf=CONF)
    with serve(mw) as port:
        answer = _exchange(port, b"HEAD / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close"
                                 b"\r\n\r\nabc")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"HEAD HTTP/1.1 3")  # the app got the body (gevent leaves a HEAD
    # answer's body to the app)
    assert any(m.name == "check-request" for n in agent.notifies for m in n.messages)


def test_http_2_0_in_the_request_line_is_served(make_mw, agent):
    mw = make_mw(app=_app, conf=CONF)
    with serve(mw) as port:
        answer = _exchange(port, b"GET / HTTP/2.0\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"GET HTTP/2.0 0")


def test_the_raw_headers_keep_a_content_length_dropped_for_chunked(make_mw, agent):
    # HAProxy drops it too, but counts it in req.body_size: the rules need to see it
    def app(environ, start_response):
        payload = repr(environ.get("spoe_sync.raw_headers")).encode() + b"|" \
            + environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(payload)))])
        return [payload]

    mw = make_mw(app=app, conf=CONF)
    with serve(mw) as port:
        answer = _exchange(port, b"POST / HTTP/1.1\r\nX-A: 1\r\nContent-Length: 5\r\n"
                                 b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                 b"2\r\nhi\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"('Content-Length', '5')" in answer
    assert answer.endswith(b"|hi")
