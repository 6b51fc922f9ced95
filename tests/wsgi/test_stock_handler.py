"""Under gevent's stock WSGIHandler the middleware recovers what the server does expose (issue
13, "Fidelity outside SpoeWSGIHandler"): ``dst`` from the socket under ``wsgi.input``, also when
the body was buffered (``buffer_body``) before the first event read it."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from gevent import socket
from gevent.pywsgi import WSGIHandler

from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware
from tests.kit import read_until_eof

from .support import serve

pytestmark = pytest.mark.timeout(60)

CONF = """[s]
spoe-agent s_agent
    messages addr
    timeout hello 1s
    timeout idle 30s
    timeout processing 5s
    use-backend agents

spoe-message addr
    args dst=dst dport=dst_port
    event on-frontend-http-request
"""


def _app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


@pytest.mark.parametrize("raw", [
    pytest.param(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", id="no-body"),
    pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
                 id="buffered-body"),
])
def test_dst_under_the_stock_handler(raw):
    with FakeAgent() as agent:
        mw = SpoeMiddleware(_app, CONF, "s", {"agents": [agent.address]}, buffer_body=16384)
        try:
            with serve(mw, WSGIHandler) as port, socket.create_connection(
                    ("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(raw)
                assert read_until_eof(sock, timeout=10).endswith(b"ok")
        finally:
            mw.close(timeout=1)
    args = [dict(m.args) for n in agent.notifies for m in n.messages]
    assert args == [{"dst": IPv4Address("127.0.0.1"), "dport": port}]
