"""spoe_sync.wsgi.validity (issue 13 "HTTP validity"): what HAProxy 2.6 refuses before any SPOE
event, and its bytes.  Pure: each row was answered so by HAProxy 2.6.12 (``option
http-buffer-request``); tests/conformance/test_fuzz_haproxy.py compares the module with HAProxy
on every generated request.  (Here rather than in tests/wsgi: the module is pure policy.)"""

from __future__ import annotations

import pytest

from spoe_sync.wsgi.validity import check_raw, error_response

C = b"Connection: close\r\n\r\n"

ROWS = [
    (b"GET /a#b HTTP/1.1\r\n" + C, 400),
    (b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + C, 400),
    (b"GET /\x7f HTTP/1.1\r\n" + C, 400),
    (b"GET /a b HTTP/1.1\r\n" + C, 400),
    (b"GET / http/1.1\r\n" + C, 400),
    (b"GET / HTTP/1\r\n" + C, 400),
    (b"GET / HTTP/11.1\r\n" + C, 400),
    (b"GET / HTTP/1.1 \r\n" + C, 400),
    (b"GET /\r\n\r\n", 400),
    (b"G@T / HTTP/1.1\r\n" + C, 400),
    (b"GET / HTTP/1.1\r\nX A: a\r\n" + C, 400),
    (b"GET / HTTP/1.1\r\nX-A : a\r\n" + C, 400),
    (b"GET / HTTP/1.1\r\n: a\r\n" + C, 400),
    (b"GET / HTTP/1.1\r\nX: a\rb\r\n" + C, 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + C, 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a, b\r\n" + C, 400),
    (b"GET http://a/ HTTP/1.1\r\nHost: b\r\n" + C, 400),
    (b"GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n" + C, 400),
    (b"GET ftp://a/ HTTP/1.1\r\nHost: b\r\n" + C, 400),
    (b"GET x:y HTTP/1.1\r\nHost: b\r\n" + C, 400),
    (b"GET http:/b; HTTP/1.1\r\nHost: 1.2.3.4\r\n" + C, 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n" + C + b"ab", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n" + C + b"a", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: +1\r\n" + C + b"a", 400),
    (b"POST / HTTP/1.1\r\nContent-Length:\r\n" + C, 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n" + C, 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n" + C, 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n" + C, 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n" + C, 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n" + C + b"0\r\n\r\n", 422),
    (b"GET / HTTP/1.0\r\nContent-Length: 1\r\n\r\na", 413),
    (b"HEAD / HTTP/1.0\r\nContent-Length: 1\r\n\r\na", 413),
    (b"DELETE / HTTP/1.0\r\nContent-Length: 1\r\n\r\na", 413),
    (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413),
    (b"GET /" + b"a" * 15400 + b" HTTP/1.1\r\n" + C, 400),
    # accepted
    (b"GET / HTTP/1.1\r\nX: a\x01b\r\n" + C, None),
    (b"GET / HTTP/1.1\r\nX: caf\xe9\r\n" + C, None),
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\n" + C, None),
    (b"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n" + C, None),
    (b"GET  /  HTTP/1.1\r\n" + C, None),
    (b"GET / HTTP/1.2\r\n" + C, None),
    (b'GET /"<>\\^`{|} HTTP/1.1\r\n' + C, None),
    (b"GET / HTTP/1.1\r\nHost: a\r\nhost: A\r\n" + C, None),
    (b"GET http://a:80/ HTTP/1.1\r\nHost: a\r\n" + C, None),
    (b"GET http://a/ HTTP/1.1\r\nHost: a:80\r\n" + C, None),
    (b"GET https://a/ HTTP/1.1\r\nHost: a:443\r\n" + C, None),
    (b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n" + C, None),
    (b"GET http:/b; HTTP/1.1\r\n" + C, None),
    (b"GET //a/b HTTP/1.1\r\nHost: b\r\n" + C, None),
    (b"CONNECT a:443 HTTP/1.1\r\n" + C, None),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n" + C + b"0\r\n\r\n",
     None),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", None),
    (b"POST / HTTP/1.1\r\nContent-Length: 1 , 1\r\n" + C + b"a", None),
    (b"POST / HTTP/1.1\r\nContent-Length: 01\r\n" + C + b"a", None),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n" + C + b"0\r\n\r\n", None),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked,\r\n" + C + b"0\r\n\r\n", None),
    (b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\na", None),
    (b"OPTIONS / HTTP/1.0\r\nContent-Length: 1\r\n\r\na", None),
    (b"GET / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", None),
    (b"GET / HTTP/1.1\r\nContent-Length: 1\r\n" + C + b"a", None),
    (b"GET /" + b"a" * 15200 + b" HTTP/1.1\r\n" + C, None),
]


@pytest.mark.parametrize(("raw", "status"), [pytest.param(r, s, id=repr(r[:48])) for r, s in ROWS])
def test_refused_as_haproxy_refuses(raw, status):
    refusal = check_raw(raw)
    assert (refusal.status if refusal else None) == status, refusal


def test_haproxy_error_pages_byte_for_byte():
    assert error_response(400) == (
        b"HTTP/1.1 400 Bad request\r\nContent-length: 90\r\nCache-Control: no-cache\r\n"
        b"Connection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>400 Bad request"
        b"</h1>\nYour browser sent an invalid request.\n</body></html>\n")
    assert error_response(413) == (
        b"HTTP/1.1 413 Payload Too Large\r\nContent-length: 106\r\nCache-Control: no-cache\r\n"
        b"Content-Type: text/html\r\n\r\n<html><body><h1>413 Payload Too Large</h1>\nThe request"
        b" entity exceeds the maximum allowed.\n</body></html>\n")
    assert error_response(422) == (
        b"HTTP/1.1 422 Unprocessable Content\r\nContent-length: 116\r\nCache-Control: no-cache"
        b"\r\nContent-Type: text/html\r\n\r\n<html><body><h1>422 Unprocessable Content</h1>\nThe"
        b" server cannot process the contained instructions.\n</body></html>\n")
    assert check_raw(b"GET /# HTTP/1.1\r\n\r\n").response == error_response(400)


def test_read_head_reads_the_header_lines_and_refuses_as_haproxy():
    import io

    from spoe_sync.wsgi.validity import Refused, read_head

    rfile = io.BytesIO(b"Host: h\r\nX: 1\r\n\r\nbody")
    assert read_head(rfile, b"GET / HTTP/1.1\r\n") == b"Host: h\r\nX: 1\r\n\r\n"
    assert rfile.read() == b"body"  # the body is left to the server
    with pytest.raises(Refused) as refused:
        read_head(io.BytesIO(b"Host: a\r\nHost: b\r\n\r\n"), b"GET / HTTP/1.1\r\n")
    assert refused.value.refusal.status == 400
    with pytest.raises(Refused) as refused:  # a head past HAProxy's buffer stops there
        read_head(io.BytesIO(b"X: " + b"a" * 20000 + b"\r\n\r\n"), b"GET / HTTP/1.1\r\n")
    assert refused.value.refusal.status == 400
    with pytest.raises(Refused) as refused:
        read_head(io.BytesIO(b"Content-Length: 1\r\n\r\na"), b"GET / HTTP/1.0\r\n")
    assert refused.value.refusal.status == 413


def test_accept_invalid_http_request_lets_through_what_haproxy_then_only_logs():
    for raw in (b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", b"GET /a#b HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\r\nX A: 1\r\n\r\n",
                b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"):
        assert check_raw(raw).status == 400
        assert check_raw(raw, accept_invalid=True) is None
    assert check_raw(b"GET /\x01 HTTP/1.1\r\n\r\n", accept_invalid=True).status == 400
