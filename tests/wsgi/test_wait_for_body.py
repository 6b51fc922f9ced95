"""``wait-for-body time <time> [at-least <bytes>]`` in SpoeMiddleware's rules (configuration.txt
§4.2; docs/explanation/agents.md §1.3, DataDog's ``http-request wait-for-body time 1s``): the body is
buffered at the rule's place, a later ``send-spoe-group`` sees it as ``req.body``, the app still
reads all of it, and a body that does not come in time is answered 408 as HAProxy 2.6 does."""

from __future__ import annotations

import time
import warnings

import gevent
import pytest
from gevent import socket

from spoe_sync.errors import SpoeConfigWarning
from tests.kit import read_until_eof

from .support import Client, get, parse_echo, serve

GROUP = "send-spoe-group test grp-body"


def post(port: int, body: bytes, *, chunked: bool = False) -> dict[str, str]:
    with Client(port) as c:
        r = c.request("POST", "/upload", {"Content-Type": "application/octet-stream"}, body,
                      chunked=chunked)
    assert r.status == 200, r
    return parse_echo(r.body)


def test_group_after_wait_for_body_sees_the_body_and_no_warning(make_mw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpoeConfigWarning)  # no "buffer_body is not set" warning
        mw = make_mw(http_request=["wait-for-body time 1s", GROUP])
    with serve(mw) as port:
        seen = post(port, b"x" * 5000)
        chunked = post(port, b"y" * 9000, chunked=True)
        empty = get(port, "/")
    assert seen["txn.test.body_len"] == "5000" and seen["body"] == "5000"
    assert chunked["txn.test.body_len"] == "9000" and chunked["body"] == "9000"
    assert parse_echo(empty.body)["txn.test.body_len"] == "0"


@pytest.mark.parametrize(("rule", "size", "low", "high"), [
    # at least 1k, and what else had arrived by then (HAProxy's buffer holds it too)
    pytest.param("wait-for-body time 1s at-least 1k", 20000, 1024, 16384, id="at-least"),
    pytest.param("wait-for-body time 1s at-least 100k", 5000, 5000, 5000,
                 id="at-least-above-body"),
    # cut where HAProxy's full 16 KiB buffer cuts req.body
    pytest.param("wait-for-body time 1s", 50000, 15001, 16383, id="buffer-full"),
])
def test_how_much_is_buffered(make_mw, rule, size, low, high):
    with serve(make_mw(http_request=[rule, GROUP])) as port:
        seen = post(port, b"z" * size)
    assert seen["body"] == str(size)  # the app reads the whole body anyway
    assert low <= int(seen["txn.test.body_len"]) <= high


def test_condition_and_rule_order(make_mw):
    # before wait-for-body the group sees no body; after it, the body
    mw = make_mw(http_request=[GROUP + " if { path /before }",
                               "wait-for-body time 1s if METH_POST",
                               GROUP + " if { path /after }"])
    with serve(mw) as port, Client(port) as c:
        before = parse_echo(c.request("POST", "/before", None, b"abc").body)
        after = parse_echo(c.request("POST", "/after", None, b"abcd").body)
    assert before["txn.test.body_len"] == "0" and before["body"] == "3"
    assert after["txn.test.body_len"] == "4" and after["body"] == "4"


def _partial(port: int, sent: bytes, length: int, close: bool = True) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = b"Connection: close\r\n" if close else b""
    s.sendall(b"POST /slow HTTP/1.1\r\nHost: h\r\n%sContent-Length: %d\r\n\r\n%s"
              % (conn, length, sent))
    return s


def test_body_late_is_answered_408(make_mw):
    with serve(make_mw(http_request=["wait-for-body time 300ms", GROUP])) as port:
        start = time.monotonic()
        with _partial(port, b"abc", 10, close=False) as s:
            data = read_until_eof(s)  # the 408 says "connection: close": the server closes
        elapsed = time.monotonic() - start
        # the server still works afterwards
        assert parse_echo(get(port, "/").body)["txn.test.body_len"] == "0"
    assert data.startswith(b"HTTP/1.1 408 Request Time-out\r\n")
    assert b"Your browser didn't send a complete request in time." in data
    assert 0.25 < elapsed < 2.0


def test_at_least_reached_goes_on_with_what_has_arrived(make_mw):
    with serve(make_mw(http_request=["wait-for-body time 2s at-least 4", GROUP])) as port:
        with _partial(port, b"abcdef", 10) as s:
            start = time.monotonic()
            gevent.sleep(0.2)  # the rules run now (the server runs in this process); the
            # app then waits for the rest
            s.sendall(b"ghij")
            data = read_until_eof(s)
        elapsed = time.monotonic() - start
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    seen = parse_echo(body)
    # at-least 4, and the 2 bytes that came with them (as HAProxy 2.6: its buffer holds what
    # arrived, tests/conformance/test_wait_for_body_haproxy.py); the rest is the app's
    assert seen["txn.test.body_len"] == "6" and seen["body"] == "10"
    assert elapsed < 1.5


def test_http_response_wait_for_body_buffers_the_response(make_mw):
    mw = make_mw(http_response=["wait-for-body time 1s", "set-header x-rb %[res.body_len]"])
    assert mw.buffer_response is not None
    with serve(mw) as port:
        r = get(port, "/")
    assert r.status == 200 and r.header("x-rb") == str(len(r.body))


@pytest.mark.parametrize("tail", [
    pytest.param(b"zz\r\nhello\r\n0\r\n\r\n", id="bad-chunk"),
    pytest.param(b"5\r\nhel", id="client-aborts"),
])
def test_a_broken_body_under_wait_for_body_prints_no_traceback(make_mw, capfd, tail):
    """A malformed chunk or a client gone mid-body ends that request as gevent.pywsgi
    ends it (a 400, or a closed connection): no greenlet traceback on stderr."""

    with serve(make_mw(http_request=["wait-for-body time 1s", GROUP])) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                         b"\r\n" + tail)
            if tail.endswith(b"hel"):
                sock.shutdown(socket.SHUT_WR)  # no more body: the read fails mid-chunk
            data = read_until_eof(sock, timeout=3)
        assert data == b"" or data.startswith(b"HTTP/1.1 400"), data
        assert get(port, "/").status == 200  # the server still serves
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
