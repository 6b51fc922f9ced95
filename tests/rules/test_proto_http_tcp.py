"""``req.proto_http`` on a TCP stream: HAProxy 2.6 parses the buffer as an HTTP/1 request head
(``smp_prefetch_htx()`` in raw mode, ``h1_headers_to_hdr_list()``); true when it is one, NULL
(not false) when it is not or not yet (docs/explanation/haproxy-behaviour.md).  The cases come
from the TCP fuzz tier against HAProxy (tests/conformance/test_fuzz_tcp_haproxy.py)."""

from __future__ import annotations

import pytest

from spoe_sync.rules import EvalContext, TCPSamples, parse_sample
from spoe_sync.rules.h1 import INCOMPLETE, INVALID, H1Request, parse_request_head


def proto_http(payload: bytes):
    return parse_sample("req.proto_http").evaluate(
        EvalContext(TCPSamples(("10.0.0.1", 1), None, payload)))


@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"BREW /pot HTTP/2.0\r\n\r\n",
    b"\r\n\nget /a HTTP/1.0\n\n",  # empty lines before, LF-only lines, any token method
    b"GET /x\r\n",  # HTTP/0.9: the line is the request
    b"GET /x\n",
    b"POST / HTTP/1.1\r\nX:\r\n folded\r\nContent-Length: 3, 3\r\n\r\n",
    b"GET http://a.example/ HTTP/1.1\r\nHost: A.example\r\nHost: a.EXAMPLE\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: \x00\x80\xff\r\n\r\n",
    b"HEAD https://h:443/ HTTP/1.1\r\nHost: h\r\n\r\n",  # a default port aside
    b"GET http://h/ HTTP/1.1\r\nHost: H:80\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"CONNECT h:8443 HTTP/1.1\r\n\r\n",
])
def test_a_request_head(payload):
    assert proto_http(payload) is True


@pytest.mark.parametrize("payload", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", id="no-blank-line-yet"),
    pytest.param(b"GET / HTTP/1.1", id="no-line-end"),
    pytest.param(b"GET /x", id="0.9-no-line-end"),
    pytest.param(b"POST /x\r\n", id="0.9-not-get"),
    pytest.param(b"GET\r\n", id="0.9-no-target"),
    pytest.param(b"GET /\x80 HTTP/1.1\r\n\r\n", id="8-bit-target"),
    pytest.param(b"GET / http/1.1\r\n\r\n", id="lowercase-version"),
    pytest.param(b"GET / HTTP/1.1 \r\n\r\n", id="blank-after-version"),
    pytest.param(b"GET / HTTP/1.1\r\nX A: 1\r\n\r\n", id="header-name-not-token"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two-hosts"),
    pytest.param(b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", id="authority-not-host"),
    pytest.param(b"GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n", id="not-default-port"),
    pytest.param(b"GET https://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n", id="other-default"),
    pytest.param(b"GET a.example HTTP/1.1\r\nHost: b\r\n\r\n", id="no-scheme-not-host"),
    pytest.param(b"CONNECT h HTTP/1.1\r\n\r\n", id="connect-no-port"),
    pytest.param(b"CONNECT h:443 HTTP/1.1\r\nHost: g\r\n\r\n", id="connect-not-host"),
    pytest.param(b"GET /a#b HTTP/1.1\r\n\r\n", id="fragment"),
    pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                 id="two-lengths"),
    pytest.param(b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", id="length-not-digits"),
    pytest.param(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                 id="coding-after-chunked"),
    pytest.param(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", id="not-chunked"),
    pytest.param(b"\x16\x03\x01\x00\x05hello", id="tls"),
    pytest.param(b"", id="empty"),
])
def test_not_a_request_head_is_null(payload):
    assert proto_http(payload) is None


def test_the_parser_tells_incomplete_from_invalid():
    assert parse_request_head(b"GET / HTTP/1.1\r\nA: b") == INCOMPLETE
    assert parse_request_head(b"GET / HTTP/1.1\r\nA: b\r\r") == INVALID
    head = parse_request_head(b"GET /p?q HTTP/1.1\r\nA:  x\r\n\ty \r\nContent-Length: 0\r\n"
                              b"content-length: 0\r\n\r\nbody")
    assert head == H1Request(b"GET", b"/p?q", b"HTTP/1.1",
                             ((b"A", b"x  \ty"), (b"Content-Length", b"0")))


def test_too_many_headers_is_not_a_request():
    head = b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 98 + b"\r\n"
    assert isinstance(parse_request_head(head), H1Request)
    assert parse_request_head(head.replace(b"\r\n\r\n", b"\r\nX: 1\r\n\r\n")) == INVALID


def test_an_http_request_in_http_mode_is_true():
    from spoe_sync.rules.sources import RequestInfo

    samples = TCPSamples(("10.0.0.1", 1))
    samples.request = RequestInfo("GET", "/", "HTTP/1.1", [])
    assert parse_sample("req.proto_http").evaluate(EvalContext(samples)) is True
