"""TLS from the TCP proxy to its upstream (HAProxy's ``server ... ssl verify required ca-file``):
the certificate and host name are verified (system CAs by default, or a CA file), the SNI is the
upstream's host name, ``verify none`` is explicit; a certificate that does not verify closes
that client connection, is counted in ``upstream_errors`` and logged, with no traceback.  Real
sockets, a TLS echo server, certificates made by openssl."""

from __future__ import annotations

from typing import Any

import pytest

from spoe_sync.errors import ConfigError
from spoe_sync.proxy import TCPProxy, server_context, upstream_context
from tests.kit import read_until_eof, wait_until

from .proxykit import connect, exchange, running
from .tlskit import Certs, TLSUpstream, tls_connect

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("host, sni, expected_sni", [
    pytest.param("localhost", None, "localhost", id="sni-is-the-host-name"),
    pytest.param("127.0.0.1", "localhost", "localhost", id="explicit-sni"),
    pytest.param("127.0.0.1", None, None, id="ip-address-no-sni"),  # verified on the IP SAN
])
def test_verified_upstream_tls(certs: Certs, host: str, sni: str | None,
                               expected_sni: str | None) -> None:
    with TLSUpstream(certs) as up:
        proxy = TCPProxy(("127.0.0.1", 0), f"{host}:{up.port}",
                         upstream_ssl=upstream_context(ca_file=certs.ca), upstream_sni=sni)
        with running(proxy):
            sock = connect(proxy)
            try:
                sock.sendall(b"ping")
                assert sock.recv(10) == b"ping"
            finally:
                sock.close()
    assert up.snis == [expected_sni]
    assert proxy.stats.upstream_errors == 0


def test_upstream_verify_none_accepts_any_certificate(certs: Certs) -> None:
    with TLSUpstream(certs) as up, \
            running(TCPProxy(("127.0.0.1", 0), f"127.0.0.1:{up.port}",
                             upstream_ssl=upstream_context(verify=False))) as proxy:
        sock = connect(proxy)
        try:
            sock.sendall(b"unverified")
            assert sock.recv(20) == b"unverified"
        finally:
            sock.close()


@pytest.mark.parametrize("settings", [
    pytest.param({"upstream_ssl": True}, id="system-cas-do-not-know-the-test-ca"),
    pytest.param({"ca": "other_ca"}, id="another-ca"),
    pytest.param({"ca": "ca", "upstream_sni": "wrong.example"}, id="wrong-host-name"),
])
def test_upstream_certificate_that_does_not_verify(certs: Certs, settings: dict[str, Any],
                                                   capfd: Any,
                                                   log_lines: list[tuple[str, str]]) -> None:
    kwargs = dict(settings)
    if "ca" in kwargs:
        kwargs["upstream_ssl"] = upstream_context(ca_file=getattr(certs, kwargs.pop("ca")))
    with TLSUpstream(certs) as up, \
            running(TCPProxy(("127.0.0.1", 0), f"127.0.0.1:{up.port}", **kwargs)) as proxy:
        sock = connect(proxy)
        try:
            sock.sendall(b"secret")
            assert read_until_eof(sock, timeout=5) == b""  # closed, nothing forwarded
        finally:
            sock.close()
        assert wait_until(lambda: proxy.stats.active == 0)
    assert proxy.stats.upstream_errors == 1 and up.received == 0
    assert wait_until(lambda: up.failed_handshakes == 1)
    warnings = [m for level, m in log_lines if level == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"proxy: cannot connect to upstream 127.0.0.1:{up.port}: "
                                  "TLS error: ")
    assert "CERTIFICATE_VERIFY_FAILED" in warnings[0]
    assert "Traceback" not in capfd.readouterr().err


def test_upstream_that_is_not_tls(certs: Certs) -> None:
    from .proxykit import Upstream

    with Upstream("banner", banner=b"plain text, not TLS\n") as up, \
            running(TCPProxy(("127.0.0.1", 0), up.address,
                             upstream_ssl=upstream_context(ca_file=certs.ca),
                             connect_timeout=1)) as proxy:
        assert exchange(proxy, b"x") == b""
        assert wait_until(lambda: proxy.stats.upstream_errors == 1)


def test_a_unix_upstream_needs_a_name_to_verify() -> None:
    with pytest.raises(ConfigError, match="needs a server name"):
        TCPProxy(("127.0.0.1", 0), "unix@/run/app.sock", upstream_ssl=True)
    # a name to verify, or no verification at all: accepted
    TCPProxy(("127.0.0.1", 0), "unix@/run/app.sock", upstream_ssl=True,
             upstream_sni="app.internal").close()
    TCPProxy(("127.0.0.1", 0), "unix@/run/app.sock",
             upstream_ssl=upstream_context(verify=False)).close()


def test_tls_on_both_sides(certs: Certs) -> None:
    with TLSUpstream(certs) as up, \
            running(TCPProxy(("127.0.0.1", 0), f"localhost:{up.port}",
                             ssl_context=server_context(certs.combined),
                             upstream_ssl=upstream_context(ca_file=certs.ca))) as proxy:
        sock = tls_connect(("127.0.0.1", proxy.server_port), certs)
        try:
            sock.sendall(b"end to end" * 1000)
            got = b""
            for _ in range(100):
                got += sock.recv(65536)
                if len(got) >= 10_000:
                    break
            assert got == b"end to end" * 1000
        finally:
            sock.close()
    assert up.snis == ["localhost"]
