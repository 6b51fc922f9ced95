"""``res.ver`` is the server's HTTP version: HAProxy speaks HTTP/1.1 to its servers whatever the
client spoke, so an HTTP/1.0 request still has a 1.1 response (observed with HAProxy 2.6, the
fuzz tier: tests/conformance/test_fuzz_haproxy.py)."""

from __future__ import annotations

import pytest
from gevent import socket

from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware
from tests.kit import read_until_eof

from .support import serve

pytestmark = pytest.mark.timeout(60)

CONF = """[v]
spoe-agent v_agent
    messages on-res
    timeout hello 1s
    timeout idle 30s
    timeout processing 5s
    use-backend agents

spoe-message on-res
    args ver=res.ver resp=resp_ver
    event on-http-response
"""


def _app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_res_ver_is_1_1_whatever_the_client_spoke(version):
    with FakeAgent() as agent:
        mw = SpoeMiddleware(_app, CONF, "v", {"agents": [agent.address]})
        try:
            with serve(mw) as port, socket.create_connection(("127.0.0.1", port),
                                                             timeout=5) as sock:
                sock.sendall(f"GET / {version}\r\nConnection: close\r\n\r\n".encode())
                assert read_until_eof(sock, timeout=10).endswith(b"ok")
        finally:
            mw.close(timeout=1)
    args = [dict(m.args) for n in agent.notifies for m in n.messages if m.name == "on-res"]
    assert args == [{"ver": "1.1", "resp": "1.1"}]
