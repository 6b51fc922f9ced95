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


# HAProxy 2.6's src/payload.c quirks (docs/explanation/haproxy-behaviour.md): the same values
# as HAProxy for any payload, checked against HAProxy by tests/conformance/test_fuzz_tcp_haproxy.py


def test_hello_type_is_the_handshake_type_of_any_record():
    server_hello = b"\x16\x03\x01\x00\x04\x02\x00\x00\x00"
    assert fetch("req.ssl_hello_type", server_hello) == 2
    assert fetch("req.ssl_hello_type", b"\x17\x03\x03\x00\x04\x07\x00\x00\x01!") == 7
    assert fetch("req.ssl_hello_type", b"\x17\x03\x03\x00\x04\x07\x00\x00\x02!") is None
    assert fetch("req.ssl_sni", server_hello) is None


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_a_hello_cut_up_to_4_bytes_short_still_parses(cut):
    # HAProxy compares the handshake length with what follows the record header, handshake
    # header included: 4 bytes of slack
    hello = client_hello(alpn=["h2"])[:-cut]
    assert fetch("req.ssl_sni", hello) == "sni.example"
    assert fetch("req.ssl_ec_ext", hello) is True
    assert fetch("req.ssl_hello_type", hello) is None  # this one counts the header


def test_a_hello_cut_5_bytes_short_does_not():
    hello = client_hello(alpn=["h2"])[:-5]
    assert fetch("req.ssl_sni", hello) is None
    assert fetch("req.ssl_st_ext", hello) is None


def test_ssl_ver_reads_the_client_version_of_any_record():
    # record type 0x16, record version 0xb36f (>= 3.0), length 7: bytes 9-10 are the "client
    # version" whatever the record holds
    data = bytes([0x16, 0xB3, 0x6F, 0, 7, 1, 2, 3, 4, 0xBB, 0x3E, 0, 0])
    assert fetch("req.ssl_ver", data) == 0xBB << 16 | 0x3E
    assert fetch("req.ssl_ver", data[:-2]) is None  # the record (7 bytes) is not all there
    assert fetch("req.ssl_ver", bytes([0x16, 3, 1, 0, 5]) + bytes(8)) is None  # length < 6


def test_ssl_ver_of_an_sslv2_hello():
    # short header, CLIENT-HELLO, version 3.1, 3 bytes of ciphers, no session id, 16 of challenge
    body = b"\x01\x03\x01\x00\x03\x00\x00\x00\x10" + b"\x00\x00\x2f" + bytes(16)
    assert fetch("req.ssl_ver", bytes([0x80, len(body)]) + body) == 3 << 16 | 1
    assert fetch("req.ssl_ver", bytes([0x80, len(body) + 1]) + body) is None


def test_without_elliptic_curves_ec_ext_is_null_and_st_ext_is_0():
    hello = bytearray(client_hello())
    exts = _rename_extension(hello, 10, 0x7777)
    assert exts
    assert fetch("req.ssl_ec_ext", bytes(hello)) is None
    assert fetch("req.ssl_st_ext", bytes(hello)) in (0, 1, 2)


def _rename_extension(hello: bytearray, old: int, new: int) -> bool:
    """Give extension ``old`` the type ``new`` in place (walks the real hello)."""
    p = 5 + 4 + 34
    p += 1 + hello[p]
    p += 2 + int.from_bytes(hello[p:p + 2], "big")
    p += 1 + hello[p]
    end = p + 2 + int.from_bytes(hello[p:p + 2], "big")
    p += 2
    while p + 4 <= end:
        if int.from_bytes(hello[p:p + 2], "big") == old:
            hello[p:p + 2] = new.to_bytes(2, "big")
            return True
        p += 4 + int.from_bytes(hello[p + 2:p + 4], "big")
    return False
