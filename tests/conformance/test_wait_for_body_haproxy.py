"""``http-request wait-for-body time <time> [at-least <bytes>]`` (configuration.txt §4.2)
against HAProxy 2.6: for the same client behaviour (a whole body, a body cut short and held,
part of a body then the rest), the same ``req.body`` reaches the rules after the wait, and a
body that does not come in time gets the same 408 response."""

from __future__ import annotations

import socket

import gevent
import pytest
from gevent import socket as gsocket
from gevent.pywsgi import WSGIServer

from spoe_sync.wsgi import SpoeMiddleware, SpoeWSGIHandler
from tests.kit import free_port

from .cfgkit import haproxy_cfg
from .harness import run_haproxy

pytestmark = pytest.mark.timeout(60)

RULES = ["wait-for-body time 300ms at-least 4 if { path /least }",
         "wait-for-body time 300ms if !{ path /least }",
         'return status 200 content-type text/plain lf-string "[%[req.body]]"']

# (case, bytes sent at once, content-length, pause, bytes sent after the pause)
CASES = [
    ("/whole", b"0123456789", 10, 0.0, b""),
    ("/late", b"abc", 10, 0.6, b""),
    ("/least", b"abcdef", 10, 0.1, b"ghij"),
]


def _run(sock, path: str, first: bytes, length: int, pause: float, rest: bytes) -> bytes:
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\nConnection: close\r\n"
                 b"\r\n%s" % (path.encode(), length, first))
    if pause:
        gevent.sleep(pause)  # our server runs in this process: let it read meanwhile
        if rest:
            try:
                sock.sendall(rest)
            except OSError:
                pass
    data = b""
    for _ in range(1000):
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _status_and_body(raw: bytes) -> tuple[bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], body


@pytest.fixture(scope="module")
def both(haproxy_bin, tmp_path_factory):
    port = free_port()
    cfg = haproxy_cfg(port, *(f"http-request {r}" for r in RULES), "default_backend be",
                      tail="backend be\n    server s 127.0.0.1:1\n")
    theirs = {}
    with run_haproxy(haproxy_bin, cfg, tmp_path_factory.mktemp("wfb"), ready_port=port):
        for case in CASES:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                theirs[case[0]] = _status_and_body(_run(s, *case))
    mw = SpoeMiddleware(lambda env, sr: [], http_request=RULES)
    server = WSGIServer(("127.0.0.1", 0), mw, handler_class=SpoeWSGIHandler, log=None,
                        error_log=None)
    server.start()
    ours = {}
    try:
        for case in CASES:
            with gsocket.create_connection(("127.0.0.1", server.server_port), timeout=5) as s:
                ours[case[0]] = _status_and_body(_run(s, *case))
    finally:
        server.stop(timeout=1)
    return theirs, ours


# /least: HAProxy's req.body holds what has arrived once at-least is reached ("abcdef", not
# the 4 bytes asked for)
@pytest.mark.parametrize("case", [pytest.param(c[0], id=c[0].strip("/")) for c in CASES])
def test_same_outcome_as_haproxy(both, case):
    theirs, ours = both
    assert ours[case] == theirs[case]


def test_the_cases_differ(both):
    theirs, _ = both
    assert theirs["/whole"] == (b"HTTP/1.1 200 OK", b"[0123456789]")
    assert theirs["/late"][0] == b"HTTP/1.1 408 Request Time-out"
