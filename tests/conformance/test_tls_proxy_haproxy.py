"""TLS termination in the TCP proxy against HAProxy 2.6's ``bind ... ssl crt``: the same TLS
client (with and without SNI) through each, and the message arguments the agent receives for
the fetches of a deciphered connection (``ssl_fc``, ``ssl_fc_sni``, ``ssl_fc_has_sni``, the
decrypted ``req.payload``/``req.len``) are the same, type and value.  Certificates are made by
openssl at test time (tests/proxy/tlskit.py)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import gevent
import pytest

from spoe_sync.protocol import decode_frame
from spoe_sync.proxy import TCPProxy, server_context
from tests.kit import free_port, make_engine

from ..proxy.tlskit import make_certs
from . import cfgkit
from .harness import NOTIFY, RecordingAgent, run_haproxy
from .test_rules_args_haproxy import _typed, spoe_conf

pytestmark = pytest.mark.timeout(60)

ARGS = [("ssl", "ssl_fc"), ("sni", "ssl_fc_sni"), ("has_sni", "ssl_fc_has_sni"),
        ("head", "req.payload(0,5)"), ("len", "req.len")]
PAYLOAD = b"hello over tls"
RULES = ["send-spoe-group conf grp if { req.len gt 0 }", "reject"]


def _tls_exchange(port: int, sni: str | None) -> None:
    """A blocking TLS client (run in the hub's thread pool: the agent and our proxy live in
    this process): handshake, send the payload, wait for the connection to end."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=sni) as sock:
            sock.sendall(PAYLOAD)
            try:
                for _ in range(100):  # bounded by the socket timeout: the rule rejects
                    if not sock.recv(4096):
                        break
            except OSError:
                pass


def _args(agent: RecordingAgent) -> list[Any]:
    frame = decode_frame(agent.wait_for(NOTIFY, 1)[0].data)
    return _typed(list(frame.messages[0].args))


@pytest.mark.parametrize("sni", [pytest.param("localhost", id="sni"),
                                 pytest.param(None, id="no-sni")])
def test_tls_fetches_match_haproxy(sni: str | None, haproxy_bin: str, tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    conf = spoe_conf(ARGS).replace("    event on-frontend-http-request\n", "")
    port = free_port()
    with RecordingAgent() as agent:
        cfg = cfgkit.haproxy_cfg(
            port, "tcp-request inspect-delay 3s", "filter spoe engine conf config spoe.conf",
            *(f"tcp-request content {rule}" for rule in RULES),
            mode="tcp", name="ft", agent_port=agent.port)
        cfg = cfg.replace(f"bind 127.0.0.1:{port}", f"bind 127.0.0.1:{port} ssl crt {certs.combined}")
        with run_haproxy(haproxy_bin, cfg, tmp_path / "haproxy", files={"spoe.conf": conf},
                         ready_port=port):
            gevent.get_hub().threadpool.apply(_tls_exchange, (port, sni))
            theirs = _args(agent)

    with RecordingAgent() as agent:
        engine = make_engine(conf, "conf", agent.address)
        proxy = TCPProxy(("127.0.0.1", 0), "127.0.0.1:9", engines=[engine],
                         tcp_request=[f"content {rule}" for rule in RULES], inspect_delay=3.0,
                         ssl_context=server_context(certs.combined))
        proxy.start()
        try:
            gevent.get_hub().threadpool.apply(_tls_exchange, (proxy.server_port, sni))
            ours = _args(agent)
        finally:
            proxy.stop()
    assert ours == theirs
    assert dict((n, v) for n, _, v in ours)["sni"] == sni
