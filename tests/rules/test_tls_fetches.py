"""``req.ssl_*`` fetches on a peeked TLS ClientHello (configuration.txt §7.3.5), for the TCP
proxy's ``on-frontend-tcp-request`` messages; hellos come from Python's ssl module."""

from __future__ import annotations

import ssl

import pytest

from spoe_sync.rules import EvalContext, TCPSamples, parse_sample


def client_hello(sni: str | None = "sni.example", alpn: list[str] | None = None) -> bytes:
    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def fetch(text: str, payload: bytes):
    return parse_sample(text).evaluate(EvalContext(TCPSamples(("10.0.0.1", 1), None, payload)))


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("req.ssl_hello_type", 1, id="hello_type"),
    pytest.param("req.ssl_ver", 3 << 16 | 3, id="ver-is-client-version"),
    pytest.param("req.ssl_sni", "sni.example", id="sni"),
    pytest.param("req_ssl_sni", "sni.example", id="sni-alias"),
    pytest.param("req.ssl_alpn", "h2", id="alpn-first"),
    pytest.param("req.ssl_ec_ext", True, id="ec_ext"),
    pytest.param("req.ssl_st_ext", 1, id="st_ext-empty-ticket"),
])
def test_client_hello(text, expected):
    assert fetch(text, client_hello(alpn=["h2", "http/1.1"])) == expected


@pytest.mark.parametrize("payload", [
    pytest.param(b"", id="empty"),
    pytest.param(b"GET / HTTP/1.1\r\n", id="http"),
    pytest.param(client_hello()[:40], id="truncated"),
    pytest.param(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", id="server-hello-type"),
])
def test_not_a_complete_client_hello(payload):
    assert fetch("req.ssl_hello_type", payload) is None
    assert fetch("req.ssl_sni", payload) is None


def test_without_sni_or_alpn():
    hello = client_hello(sni=None)
    assert fetch("req.ssl_hello_type", hello) == 1
    assert fetch("req.ssl_sni", hello) is None
    assert fetch("req.ssl_alpn", hello) is None


def test_acl_on_sni():
    from spoe_sync.rules.acl import parse_acl_expr

    ctx = EvalContext(TCPSamples(("10.0.0.1", 1), None, client_hello()))
    assert parse_acl_expr(["req_ssl_sni", "-i", "SNI.example"]).evaluate(ctx) is True
    assert parse_acl_expr(["req.ssl_sni", "-m", "end", ".example"]).evaluate(ctx) is True
