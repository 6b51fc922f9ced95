"""TLS helpers of the proxy tests: certificates made at test time with the openssl command (a CA
and a leaf for localhost / 127.0.0.1), a TLS echo upstream, and TLS clients on gevent sockets."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gevent import socket
from gevent import ssl as gssl
from gevent.server import StreamServer


@dataclass(frozen=True)
class Certs:
    ca: str  # the CA certificate (PEM)
    cert: str  # the leaf certificate, signed by the CA
    key: str  # the leaf key
    combined: str  # leaf certificate + key in one file, as HAProxy's crt
    other_ca: str  # a CA that signed nothing here: verification against it fails


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(directory: Path) -> Certs:
    """A CA, a leaf for localhost and 127.0.0.1 signed by it, and an unrelated CA (EC keys: fast).
    Skips the test when openssl is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        # the extensions Python 3.13's VERIFY_X509_STRICT wants on a CA
        _openssl("req", "-x509", *ec, "-subj", f"/CN=spoe-sync test {name}", "-days", "1",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)
    _openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", "leaf.key", "-out", "leaf.csr",
             cwd=directory)
    (directory / "leaf.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "leaf.ext", "-out", "leaf.pem",
             cwd=directory)
    combined = directory / "combined.pem"
    combined.write_text((directory / "leaf.pem").read_text() + (directory / "leaf.key").read_text())
    return Certs(ca=str(directory / "ca.pem"), cert=str(directory / "leaf.pem"),
                 key=str(directory / "leaf.key"), combined=str(combined),
                 other_ca=str(directory / "other-ca.pem"))


def client_context(certs: Certs) -> ssl.SSLContext:
    """A gevent client context trusting the test CA (gevent.ssl.create_default_context gives a
    standard library context, whose sockets would block the hub)."""
    context = gssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certs.ca)
    return context


def tls_connect(address: Any, certs: Certs, *, sni: str | None = "localhost",
                family: int = socket.AF_INET, timeout: float = 10.0) -> Any:
    """A TLS client connection (gevent's ssl on a gevent socket); ``sni=None`` sends no SNI
    (and skips the host name check)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(address)
    context = client_context(certs)
    if sni is None:
        context.check_hostname = False
    return context.wrap_socket(sock, server_hostname=sni, suppress_ragged_eofs=False)


def tls_read_all(sock: Any, limit: int = 64 << 20) -> tuple[bytes, str]:
    """Everything until EOF, and how it ended: ``"close_notify"`` (a clean TLS close),
    ``"ragged"`` (the socket closed without one) or ``"reset"``."""
    chunks: list[bytes] = []
    total = 0
    end = "limit"
    try:
        for _ in range(100_000):  # bounded: the socket timeout ends a stuck read
            data = sock.recv(65536)
            if not data:
                end = "close_notify"
                break
            chunks.append(data)
            total += len(data)
            if total >= limit:
                break
    except ssl.SSLEOFError:
        end = "ragged"
    except ConnectionResetError:
        end = "reset"
    return b"".join(chunks), end


class TLSUpstream:
    """A TLS echo server on 127.0.0.1 (gevent's ssl in a StreamServer); it records the SNI each
    client sent, and counts the handshakes that failed (quietly: the proxy ends some on purpose).
    """

    def __init__(self, certs: Certs) -> None:
        context = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.cert, certs.key)
        context.sni_callback = self._sni
        self.snis: list[str | None] = []
        self.received = 0
        self.failed_handshakes = 0
        self.context = context
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def _sni(self, sock: Any, name: str | None, context: Any) -> None:
        self.snis.append(name)

    def _handle(self, raw: Any, address: Any) -> None:
        raw.settimeout(10)
        try:
            sock = self.context.wrap_socket(raw, server_side=True)
        except OSError:
            self.failed_handshakes += 1
            raw.close()
            return
        try:
            for _ in range(100_000):
                data = sock.recv(65536)
                if not data:
                    break
                self.received += len(data)
                sock.sendall(data)
        except OSError:
            pass
        finally:
            sock.close()

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def __enter__(self) -> TLSUpstream:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(timeout=1)
