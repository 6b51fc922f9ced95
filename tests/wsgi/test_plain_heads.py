"""SpoeWSGIHandler's plain heads (issue 15): validity.plain_fields() and the handler's parse-once
path against the general ones they bypass (check(), gevent's read_request with parse_head).
Differential: the fuzz tier's generated requests and hypothesis-made heads near the edges go
through both; the fast path must only ever say "valid" where check() says so, and the handler
must end with the same request attributes, header object and environ."""

from __future__ import annotations

import io

import pytest
from gevent import pywsgi, socket
from hypothesis import given, settings
from hypothesis import strategies as st

from spoe_sync.wsgi import SpoeWSGIHandler
from spoe_sync.wsgi.request_head import _MAXLINE
from spoe_sync.wsgi.validity import (
    DEFAULT_BUFSIZE,
    DEFAULT_MAXREWRITE,
    Refused,
    check_raw,
    plain_fields,
    read_head_fields,
)
from tests.conformance.fuzz.generator import generate

from ..rules.test_validity import ROWS

#: the fuzz tier's requests (the fuzz run itself uses other seeds and counts)
FUZZ = [r.raw for seed in (7, 31) for r in generate(seed, 400)]
EDGES = [raw for raw, _ in ROWS] + [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET /a?b=c HTTP/1.0\r\n\r\n",
    b"get /x HTTP/1.1\r\nX-A:\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.0\r\nContent-Length: 1\r\n\r\na",  # 413 when the body is waited for
    b"POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 2 \t\r\n\r\nab",
    b"GET / HTTP/1.1\r\nHost: a\r\nHOST: A\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: a\xa0\xff\t \r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: a\x85\r\n\r\n",
    b"POST /%41%e9?%41 HTTP/1.1\r\nX_A: 1\r\nContent_Type: t\r\nContent-Type: a\r\n"
    b"content-type: b\r\nX-B: \xa0b\xa0\r\nx-b: c\r\nCookie: a=1\r\nCOOKIE: b=2\r\n"
    b"Connection: Upgrade\r\nUpgrade: h2c\r\nExpect: 100-continue\r\nContent-Length: 0 \r\n\r\n",
    b"GET / HTTP/1.0\r\nUpgrade: WebSocket\r\nupgrade: x\r\nConnection: Keep-Alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: a\r\n",  # no blank line: EOF
    b"\r\nGET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(98)) + b"\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(99)) + b"\r\n",
    # the buffer's edge (15360 bytes), each side; with LF ends check() counts 2 more bytes
    # than read_head() reads
    *(b"GET / HTTP/1.1\r\nX: " + b"a" * n + b"\r\n\r\n" for n in (15337, 15338)),
    *(b"GET / HTTP/1.1\nX: " + b"a" * n + b"\n\n" for n in (15338, 15339, 15340, 15341)),
]


def _read(raw: bytes, fast: bool, **options):
    """read_head_fields as SpoeWSGIHandler calls it: the outcome, the fields, what is left."""
    rfile = io.BytesIO(raw)
    line = rfile.readline(pywsgi.MAX_REQUEST_LINE)
    try:
        block, fields = read_head_fields(rfile, line, fast=fast, **options)
    except Refused as refused:
        return ("refused", refused.refusal), None, rfile.read()
    return ("read", block), fields, rfile.read()


def _same_outcome(raw: bytes, **options) -> bool:
    fast, fields, rest = _read(raw, True, **options)
    general, none, general_rest = _read(raw, False, **options)
    assert none is None
    assert (fast, rest) == (general, general_rest)
    if fields is not None:  # "plainly valid": check() lets it through
        assert check_raw(raw, **options) is None
        assert check_raw(raw, **dict(options, accept_invalid=False)) is None
    return fields is not None


_OPTIONS = [{}, {"accept_invalid": True}]


@pytest.mark.parametrize("options", _OPTIONS, ids=["plain", "accept-invalid"])
def test_fast_path_is_a_subset_of_check_on_the_fuzz_requests(options):
    taken = sum(_same_outcome(raw, **options) for raw in FUZZ + EDGES)
    assert taken > len(FUZZ) // 2  # not vacuous: most generated requests are plain


def test_which_heads_are_plain():
    # the comparisons pass if no head were plain: this pins which ones are
    plain = [b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"\r\n"]
    assert plain_fields(plain[0], plain[1:]) == [(b"Host", b"a")]
    assert plain_fields(b"get /x?y HTTP/1.0\n", [b"X-A: \t v \n", b"Content-Length: 01\n",
                                                   b"\n"]) == [(b"X-A", b"v "),
                                                               (b"Content-Length", b"01")]
    for line, lines, options in [
        (b"GET / HTTP/2.0\r\n", [b"\r\n"], {}),
        (b"GET  / HTTP/1.1\r\n", [b"\r\n"], {}),
        (b"GET * HTTP/1.1\r\n", [b"\r\n"], {}),
        (b"GET http://a/ HTTP/1.1\r\n", [b"\r\n"], {}),
        (b"GET /# HTTP/1.1\r\n", [b"\r\n"], {}),
        (b"GET /\xe9 HTTP/1.1\r\n", [b"\r\n"], {}),
        (b"GET / HTTP/1.1\r\n", [b"Host: a\r\n"], {}),  # no blank line
        (b"GET / HTTP/1.1\r\n", [b"Host: a\r\n", b"host: a\r\n", b"\r\n"], {}),
        (b"GET / HTTP/1.1\r\n", [b"X A: a\r\n", b"\r\n"], {}),
        (b"GET / HTTP/1.1\r\n", [b"X: a\x01\r\n", b"\r\n"], {}),
        (b"GET / HTTP/1.1\r\n", [b"X: a\r\n", b" b\r\n", b"\r\n"], {}),
        (b"GET / HTTP/1.1\r\n", [b"Transfer-Encoding: chunked\r\n", b"\r\n"], {}),
        (b"GET / HTTP/1.1\r\n", [b"Content-Length: 1\r\n", b"Content-Length: 1\r\n", b"\r\n"],
         {}),
        (b"GET / HTTP/1.1\r\n", [b"Content-Length: 1, 1\r\n", b"\r\n"], {}),
        (b"GET / HTTP/1.0\r\n", [b"Content-Length: 1\r\n", b"\r\n"], {}),  # HAProxy's 413
        (b"HEAD / HTTP/1.0\r\n", [b"Content-Length: 2\r\n", b"\r\n"], {}),
    ]:
        assert plain_fields(line, lines, **options) is None, (line, lines)


_METHOD = st.sampled_from(["GET", "POST", "HEAD", "DELETE", "get", "G@T", "", "PURGE"])
_SEP = st.sampled_from([" ", " ", " ", "  ", "\t", ""])
_TARGET = st.one_of(st.sampled_from(["/", "/a?b=c", "*", "http://a/", "//a", "/a#b", "x:y"]),
                    st.text(st.sampled_from("/a%#?\x00\x01\x1f \x7f\x80\xe9\xff\"<>"),
                            max_size=6))
_VERSION = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "http/1.1", "",
                            "HTTP/1", "HTTP/11.1"])
_END = st.sampled_from(["\r\n", "\r\n", "\n", "\r", "\r\r\n"])
_NAME = st.one_of(st.sampled_from(["Host", "host", "HOST", "Content-Length", "content-length",
                                   "Transfer-Encoding", "Connection", "X-A", "X_A", "#", "a'b"]),
                  st.text(st.sampled_from("Xa- \t\x01\x85\xe9:#"), max_size=4))
_VALUE = st.one_of(st.sampled_from(["a", "1", "0", "01", "1, 1", "+1", " 2 ", "\t3\t", "",
                                    "chunked", "gzip, chunked", "close", "keep-alive", "A",
                                    "99999999999999999999", "9999999999999999999"]),
                   st.text(st.sampled_from("a1 \t,\x00\x01\x7f\x85\xa0\xe9\xff\r"), max_size=6))
_FIELD = st.tuples(_NAME, st.sampled_from([":", ": ", ":\t ", ""]), _VALUE, _END)


@st.composite
def _heads(draw) -> bytes:
    line = (draw(_METHOD) + draw(_SEP) + draw(_TARGET) + draw(_SEP) + draw(_VERSION)
            + draw(_END))
    fields = draw(st.lists(_FIELD, max_size=5))
    fold = draw(st.sampled_from(["", "", "", " x\r\n", "\tx\n"]))
    head = line + "".join(n + c + v + e for n, c, v, e in fields) + fold
    return (head + draw(st.sampled_from(["\r\n", "\r\n", "\n", ""])) + "ab").encode("latin-1")


@settings(max_examples=1500, deadline=None)
@given(_heads(), st.sampled_from(_OPTIONS))
def test_fast_path_is_a_subset_of_check_near_the_edges(raw, options):
    _same_outcome(raw, **options)


def test_the_buffer_keeps_lines_under_http_clients_limit():
    # plain_message() does not count line lengths: read_head() never lets one get that long
    assert DEFAULT_BUFSIZE - DEFAULT_MAXREWRITE < _MAXLINE


class _General(SpoeWSGIHandler):
    _spoe_plain_heads = False


class _Fast(SpoeWSGIHandler):
    parsed_once = 0

    def _plain_request(self, raw_requestline, msg):
        type(self).parsed_once += 1
        return super()._plain_request(raw_requestline, msg)


class _Waiting:
    buffer_body = 16384  # SpoeMiddleware's attribute: HAProxy waits for the body

    def __call__(self, environ, start_response):
        return []


_ATTRS = ("requestline", "command", "path", "request_version", "content_length",
          "close_connection", "_spoe_raw_headers")


def _handle(handler_class, raw: bytes, server, sock):
    """What a handler makes of ``raw``: read_request's outcome, what it set, the environ."""
    rfile = io.BytesIO(raw)
    handler = handler_class(sock, ("127.0.0.1", 40000), server, rfile)
    try:
        line = handler.read_requestline()
        ok = handler.read_request(line)
    except Exception as exc:  # the refusal itself is compared
        return ("error", type(exc), str(exc)), None
    headers = handler.headers
    state = (ok, [getattr(handler, a) for a in _ATTRS], type(headers),
             headers._headers, headers.status, list(headers.headers))
    env = handler.get_environ()
    wsgi_input = env.pop("wsgi.input")
    conn = env.pop("spoe_sync.connection")
    env = list(env.items())  # the order too
    return (state, env, conn.local, type(wsgi_input), getattr(wsgi_input, "content_length", 0),
            getattr(wsgi_input, "chunked_input", 0), rfile.read())


@pytest.mark.parametrize("app", [lambda e, s: [], _Waiting()], ids=["plain", "wait-for-body"])
def test_handler_reads_a_plain_head_as_the_general_path_does(app):
    first, second = socket.socketpair()
    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)  # not started
    _Fast.parsed_once = 0
    try:
        for raw in FUZZ + EDGES:
            assert _handle(_Fast, raw, server, first) == _handle(_General, raw, server, first), \
                raw
    finally:
        first.close()
        second.close()
    # not vacuous: most requests took the parse-once path
    assert _Fast.parsed_once > len(FUZZ) // 2


@settings(max_examples=400, deadline=None)
@given(_heads())
def test_handler_reads_any_head_as_the_general_path_does(raw):
    first, second = socket.socketpair()
    server = pywsgi.WSGIServer(("127.0.0.1", 0), _Waiting(), log=None, error_log=None)
    try:
        assert _handle(SpoeWSGIHandler, raw, server, first) == \
            _handle(_General, raw, server, first)
    finally:
        first.close()
        second.close()


def test_a_subclass_hooks_are_kept():
    # _plain_environ() inlines gevent's _headers() and _connection_upgrade_requested(): a
    # subclass that overrides one gets gevent's get_environ(), which calls it
    class Renamed(SpoeWSGIHandler):
        def _headers(self):
            for key, value in super()._headers():
                yield key + "_SEEN", value

    first, second = socket.socketpair()
    server = pywsgi.WSGIServer(("127.0.0.1", 0), lambda e, s: [], log=None, error_log=None)
    try:
        handler = Renamed(first, ("127.0.0.1", 40000), server,
                          io.BytesIO(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        assert handler.read_request(handler.read_requestline())
        assert handler.get_environ()["HTTP_HOST_SEEN"] == "a"
        assert _Fast._spoe_plain_environ and not Renamed._spoe_plain_environ
    finally:
        first.close()
        second.close()
