"""SpoeWSGIHandler's header parsing (spoe_sync.wsgi.request_head) against gevent's own: the same
header object, the same environ, the same refusals, for plain blocks (the fast path) and for
every other block (handed to gevent's parser, replayed from the first line)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from gevent import pywsgi, socket
from gevent.pywsgi import WSGIHandler, WSGIServer
from hypothesis import given, settings
from hypothesis import strategies as st

from spoe_sync.wsgi import SpoeWSGIHandler, listener
from spoe_sync.wsgi.request_head import environ_headers, parse_head
from spoe_sync.wsgi.validity import check_raw


def _general(fp):
    return pywsgi.headers_factory(fp, 0)


def _outcome(parse, block: bytes):
    """What parsing ``block`` gives: the header pairs, gevent's status, the environ items and
    what is left unread; or the error raised."""
    fp = io.BytesIO(block)
    try:
        msg = parse(fp)
    except Exception as exc:  # the refusal itself is compared
        return ("error", type(exc), str(exc))
    items = environ_headers(msg)
    if items is None:
        items = WSGIHandler._headers(SimpleNamespace(headers=msg))
    return (list(msg._headers), msg.status, list(items), msg.get("content-type"),
            msg.get("content-length"), fp.read())


def _both(block: bytes):
    return _outcome(lambda fp: parse_head(fp, _general), block), _outcome(_general, block)


BLOCKS = [
    b"\r\n",
    b"\n",
    b"Host: a\r\n\r\n",
    b"Host: a\n\n",
    b"Host:a\r\n\r\n",
    b"Host: \t a  \r\n\r\n",  # leading blanks dropped, trailing kept in the pair
    b"Host:\r\n\r\n",
    b"X-A: 1\r\nx-a: 2\r\nX-A: 3\r\n\r\n",  # duplicates: gevent joins them with ','
    b"Cookie: a=1\r\nCookie: b=2\r\n\r\n",  # ... cookies with '; '
    b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc",
    b"X_Under: 1\r\nX-Over: 2\r\n\r\n",  # underscores: dropped from the environ
    b"X-Latin: caf\xe9 \xa0\r\n\r\n",
    b"X-Fold: a\r\n b\r\n\r\n",  # folded: general path
    b" X-First: folded\r\nHost: a\r\n\r\n",
    b"NoColon\r\nHost: a\r\n\r\n",
    b": no name\r\nHost: a\r\n\r\n",
    b"Bad Name: 1\r\n\r\n",
    b"From me: 1\r\n\r\n",
    b"X-CR: a\rb\r\n\r\n",
    b"X-NEL: a\x85b\r\n\r\n",
    b"X-VT: a\x0bb\r\n\r\n",
    b"X-Nul: a\x00b\r\n\r\n",
    b"Host: a\r\n",  # the stream ends before the blank line
    b"Host: a",
    b"",
    b"X-Long: " + b"a" * 70000 + b"\r\n\r\n",
    b"".join(b"X-%d: v\r\n" % i for i in range(99)) + b"\r\n",
    b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n",  # 101 lines: refused
    b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
]


@pytest.mark.parametrize("block", BLOCKS)
def test_same_as_gevents_parser(block):
    ours, gevents = _both(block)
    assert ours == gevents


_NAME = st.text(st.sampled_from("Aa-_:xX \t\x85"), min_size=0, max_size=6)
_VALUE = st.text(st.sampled_from("a ,;:\t\r\x85\xa0\xe9\x00_"), max_size=8)
_END = st.sampled_from(["\r\n", "\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_NAME, st.sampled_from([":", ": ", ""]), _VALUE, _END),
                max_size=6), _END)
def test_same_as_gevents_parser_for_any_block(lines, last):
    block = "".join(n + c + v + e for n, c, v, e in lines) + last
    ours, gevents = _both(block.encode("latin-1"))
    assert ours == gevents


def _serve_environ(handler):
    def app(environ, start_response):
        keys = sorted(k for k in environ if k.startswith(("HTTP_", "CONTENT_")))
        body = repr([(k, environ[k]) for k in keys]).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = WSGIServer(listener(("127.0.0.1", 0)), app, handler_class=handler, log=None,
                        error_log=None)
    server.start()
    return server


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    return status + b"\r\n" + body


def _check_as_haproxy_or_gevent(request: bytes) -> None:
    """SpoeWSGIHandler answers what HAProxy 2.6 refuses as HAProxy does (spoe_sync.wsgi.validity,
    checked against HAProxy by the conformance tier), and everything else as gevent's handler,
    environ included, unless gevent refuses what HAProxy serves (then it is served)."""
    servers = [_serve_environ(h) for h in (WSGIHandler, SpoeWSGIHandler)]
    try:
        plain, ours = (_exchange(s.server_port, request) for s in servers)
    finally:
        for s in servers:
            s.stop(timeout=1)
    refusal = check_raw(request)
    if refusal is not None:
        head, _, body = refusal.response.partition(b"\r\n\r\n")
        assert ours == head.split(b"\r\n", 1)[0] + b"\r\n" + body
    elif plain.startswith(b"HTTP/1.1 400"):
        assert ours.startswith(b"HTTP/1.1 200")
    else:
        assert ours == plain


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.endswith(b"\n\n") or b == b""])
def test_same_environ_and_answer_as_gevents_handler_or_haproxys_refusal(block):
    _check_as_haproxy_or_gevent(b"GET /x HTTP/1.1\r\nConnection: close\r\n" + block)


@pytest.mark.parametrize(("block", "plain"), [
    (b"Host: a\r\n\r\n", True), (b"Host: a\n\n", True), (b"X_A: 1\r\nX-L: \xe9\r\n\r\n", True),
    (b"X-Fold: a\r\n b\r\n\r\n", False), (b"NoColon\r\n\r\n", False), (b"Host: a", False),
])
def test_plain_blocks_skip_the_email_parser(block, plain):
    # the comparisons above would pass if every block took gevent's path: this one pins
    # which blocks take the fast one
    msg = parse_head(io.BytesIO(block), _general)
    assert (environ_headers(msg) is not None) is plain


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0",
                                     "HTTP/1.x", "HTTP/1.1.1", "HTTP/01.1", "HTTX/1.1"])
def test_any_version_answered_as_gevent_or_haproxy(version):
    _check_as_haproxy_or_gevent(
        f"GET /x {version}\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
