"""``spoe-sync proxy`` with HAProxy ``bind`` options: ``--listen unix@/path`` and ``--tls-cert``
(``bind unix@... ssl crt``) end to end as a subprocess with the example agent's SPOE file and a
low-score FakeAgent, the socket file removed on SIGTERM, the counters printed; and the errors of
the TLS options (exit status 1 with a clear message, never a traceback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gevent import socket

from spoe_sync.cli import main
from tests.kit import read_until_eof

from .proxykit import Process, Upstream
from .test_commands import low_score_agent, proxy_args
from .tlskit import Certs, tls_connect, tls_read_all

pytestmark = pytest.mark.timeout(60)


def test_tls_on_a_unix_listener_from_the_command_line(certs: Certs, tmp_path: Path) -> None:
    path = str(tmp_path / "proxy.sock")
    with low_score_agent() as agent, Upstream() as up:
        args = proxy_args(agent.address, up.address, "--tls-cert", certs.combined,
                          "--tls-handshake-timeout", "500ms")
        args[args.index("--listen") + 1] = f"unix@{path}"
        proc = Process(*args)
        try:
            proc.wait_for(r"listening on unix@\S+ \(TLS\)")
            assert os.path.exists(path)
            # the agent scores every client 5: rejected after the handshake, cleanly
            sock = tls_connect(path, certs, family=socket.AF_UNIX)
            try:
                sock.sendall(b"hello")
                assert tls_read_all(sock) == (b"", "close_notify")
            finally:
                sock.close()
            # a client that never starts the handshake is dropped after 500ms
            idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            idle.connect(path)
            try:
                assert read_until_eof(idle, timeout=5) == b""
            finally:
                idle.close()
        finally:
            code = proc.stop()
        assert code == 0, proc.output
        assert not os.path.exists(path)
        assert ("stopped; 2 connections, 1 rejected, 0 aborted, 0 upstream errors, "
                "1 TLS handshake errors") in proc.output
        assert "Traceback" not in proc.output
        assert up.connections == 0
        assert agent.frames >= 1  # the rejected client's score came from the agent


@pytest.mark.parametrize("extra, message", [
    pytest.param(["--tls-cert", "/nonexistent/site.pem"],
                 "cannot load the certificate '/nonexistent/site.pem': No such file",
                 id="missing-cert"),
    pytest.param(["--tls-key", "key.pem"], "--tls-key needs --tls-cert", id="key-alone"),
    pytest.param(["--upstream-ca", "ca.pem"], "need --upstream-tls", id="ca-without-tls"),
    pytest.param(["--upstream-tls", "--upstream-ca", "/nonexistent/ca.pem"],
                 "cannot load the CA file '/nonexistent/ca.pem'", id="missing-ca"),
    pytest.param(["--upstream-tls", "--upstream-ca", "a.pem", "--upstream-no-verify"],
                 "exclude each other", id="ca-and-no-verify"),
    pytest.param(["--upstream-sni", "example.com"], "--upstream-sni needs --upstream-tls",
                 id="sni-without-tls"),
])
def test_tls_option_errors_exit_1(extra: list[str], message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(proxy_args("127.0.0.1:1", "127.0.0.1:2", *extra)[2:]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_certificate_without_its_key_exits_1(certs: Certs,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(proxy_args("127.0.0.1:1", "127.0.0.1:2", "--tls-cert", certs.cert)[2:]) == 1
    err = capsys.readouterr().err
    assert f"cannot load the certificate '{certs.cert}'" in err and "Traceback" not in err


def test_a_listen_path_that_is_not_a_socket_exits_1(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "taken"
    path.write_text("not a socket")
    assert main(["proxy", "--listen", f"unix@{path}", "--upstream", "127.0.0.1:1"]) == 1
    assert "cannot listen on unix@" in capsys.readouterr().err
    assert path.read_text() == "not a socket"


def test_an_upstream_that_fails_its_certificate_check_is_reported_without_v(
        certs: Certs) -> None:
    """The command turns the library's warnings on: an operator sees why the upstream
    connections fail, not only a count when the proxy stops."""
    from .tlskit import TLSUpstream

    up = TLSUpstream(certs)  # signed by the test CA, which the system CAs do not know
    up.server.start()
    try:
        proc = Process("-m", "spoe_sync.cli", "proxy", "--listen", "127.0.0.1:0", "--upstream",
                       f"127.0.0.1:{up.server.server_port}", "--upstream-tls")
        try:
            port = int(proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            try:
                sock.sendall(b"hello")
                assert read_until_eof(sock, timeout=5) == b""
            finally:
                sock.close()
            proc.wait_for(r"WARNING proxy: cannot connect to upstream .*CERTIFICATE_VERIFY_FAILED")
        finally:
            code = proc.stop()
        assert code == 0, proc.output
        assert "1 upstream errors" in proc.output
        assert "Traceback" not in proc.output
    finally:
        up.server.stop(timeout=1)
