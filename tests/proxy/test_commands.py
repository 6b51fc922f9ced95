"""``spoe-sync proxy`` and ``examples/tcp_proxy.py`` as subprocesses, end to end with the example
IP-reputation agent (or a FakeAgent giving a low score) and a real upstream: allowed and rejected
connections (tcp-request content reject on an agent variable, SPOE.txt §2.5), graceful stop on
SIGTERM with HAPROXY-DISCONNECT to the agent, and the command's errors and exit codes."""

from __future__ import annotations

import signal
from typing import Any

import gevent
import pytest
from gevent import socket

from spoe_sync.cli import main
from spoe_sync.examples.iprep import CONFIG_PATH
from spoe_sync.examples.iprep import start as start_iprep_agent
from spoe_sync.protocol import SetVar, UInt32, VarScope
from spoe_sync.testing import FakeAgent
from tests.kit import free_port, read_until_eof, wait_until

from .proxykit import ROOT, Process, Upstream, exchange

pytestmark = pytest.mark.timeout(60)

RULE = "content reject if { var(sess.iprep.ip_score) -m int lt 20 }"


def low_score_agent(port: int = 0) -> FakeAgent:
    return FakeAgent({"get-ip-reputation": lambda m: [SetVar(VarScope.SESS, "ip_score",
                                                             UInt32(5))]}, port=port)


def proxy_args(agent: str, upstream: str, *extra: str) -> list[str]:
    return ["-m", "spoe_sync.cli", "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream,
            "--config", CONFIG_PATH, "--engine", "ip-reputation-tcp",
            "--backend", f"iprep-servers={agent}", "--tcp-request", RULE, *extra]


def test_spoe_sync_proxy_with_the_example_agent() -> None:
    server = start_iprep_agent("127.0.0.1", 0)
    try:
        with Upstream() as up:
            proc = Process(*proxy_args(server.address, up.address, "--inspect-delay", "100ms"))
            try:
                port = int(proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
                assert exchange(port, b"through the proxy") == b"through the proxy"
                # SIGTERM with a connection in flight: no new connections, the open one is
                # served to its end, then the process exits
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"in flight")
                assert wait_until(lambda: up.received == len(b"through the proxy") + 9)
                proc.proc.send_signal(signal.SIGTERM)
                gevent.sleep(0.3)
                assert proc.proc.poll() is None
                with pytest.raises(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                sock.shutdown(socket.SHUT_WR)
                assert read_until_eof(sock) == b"in flight"
                sock.close()
            finally:
                code = proc.stop()
            assert code == 0, proc.output
            assert "stopped; 2 connections, 0 rejected, 0 aborted" in proc.output
            assert "engine ip-reputation-tcp: 2 processed, 0 errors" in proc.output
    finally:
        server.stop()


def test_spoe_sync_proxy_rejects_on_a_low_score_and_disconnects_on_stop() -> None:
    with low_score_agent() as agent, Upstream() as up:
        proc = Process(*proxy_args(agent.address, up.address))
        try:
            port = int(proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            assert exchange(port, b"refused") == b""
        finally:
            code = proc.stop()
        assert code == 0, proc.output
        assert "1 connections, 1 rejected" in proc.output
        assert up.connections == 0
        assert wait_until(lambda: len(agent.disconnects) == 1)
        assert agent.disconnects[0].status_code == 0


def test_spoe_sync_proxy_says_when_its_agent_is_unreachable_and_when_it_answers_again() -> None:
    """Issue 12: an agent that cannot be reached is never silent.  Without -v, the console
    shows the library's warning when the agent server becomes unreachable (the connection
    goes on: the event fails open) and when it answers again, once each."""
    agent_port = free_port()  # nobody listens there yet
    with Upstream() as up:
        proc = Process(*proxy_args(f"127.0.0.1:{agent_port}", up.address))
        try:
            port = int(proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            assert exchange(port, b"fails open") == b"fails open"
            proc.wait_for(r"is unreachable")
            with low_score_agent(agent_port):
                # the server backs off (1 s at most): connect until the agent's verdict applies
                assert wait_until(lambda: exchange(port, b"refused") == b"", timeout=30,
                                  interval=0.2)
                proc.wait_for(r"answers again")
        finally:
            code = proc.stop()
    assert code == 0, proc.output
    down = [line for line in proc.lines if "unreachable" in line]
    back = [line for line in proc.lines if "answers again" in line]
    assert len(down) == 1 and len(back) == 1, proc.output
    assert f"127.0.0.1:{agent_port}" in down[0] and "'iprep-agent'" in down[0]
    assert "WARNING" in down[0] and "WARNING" in back[0]


def test_second_signal_ends_the_drain() -> None:
    # no --config: a plain forwarder; a connection stays open through the first SIGTERM
    with Upstream() as up:
        proc = Process("-m", "spoe_sync.cli", "proxy", "--listen", "127.0.0.1:0",
                       "--upstream", up.address, "--drain", "60s")
        try:
            port = int(proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            proc.proc.send_signal(signal.SIGTERM)
            gevent.sleep(0.3)
            assert proc.proc.poll() is None  # draining, for up to 60 s
            proc.proc.send_signal(signal.SIGTERM)
            assert read_until_eof(sock, timeout=5) == b""  # the open connection was ended
            sock.close()
            assert proc.proc.wait(timeout=10) == 0
        finally:
            proc.stop()
        assert "SPOE engines: none" in proc.output
        assert "stopped; 1 connections" in proc.output


@pytest.mark.parametrize("extra, message", [
    pytest.param(["--tcp-request", "content deny"], "expects 'send-spoe-group'", id="bad-rule"),
    pytest.param(["--engine", "no-such-scope"], "give one --engine per --config",
                 id="engine-count"),
    pytest.param(["--acl", "x"], "expects an ACL name and a criterion", id="bad-acl"),
])
def test_spoe_sync_proxy_errors_exit_1(extra: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # in-process (the same main() as the console script): fast, and no listener is opened
    assert main(proxy_args("127.0.0.1:1", "127.0.0.1:2", *extra)[2:]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    pytest.param(["proxy", "--listen", "127.0.0.1:0"], id="no-upstream"),
    pytest.param(["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1",
                  "--inspect-delay", "soon"], id="bad-time"),
    pytest.param(proxy_args("127.0.0.1:1", "127.0.0.1:2", "--backend", "nobackend")[2:],
                 id="bad-backend"),
])
def test_spoe_sync_proxy_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_spoe_sync_proxy_cannot_listen_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with Upstream() as busy:  # its port is taken
        argv = ["proxy", "--listen", busy.address, "--upstream", "127.0.0.1:1"]
        assert main(argv) == 1
    assert "cannot listen on" in capsys.readouterr().err


def test_examples_tcp_proxy_smoke() -> None:
    server = start_iprep_agent("127.0.0.1", 0)
    try:
        with Upstream() as up, low_score_agent() as low:
            good = Process(str(ROOT / "examples" / "tcp_proxy.py"), "127.0.0.1:0", up.address,
                           server.address)
            bad = Process(str(ROOT / "examples" / "tcp_proxy.py"), "127.0.0.1:0", up.address,
                          low.address)
            procs: list[Any] = [good, bad]
            try:
                ports = [int(p.wait_for(r"forwarder 127\.0\.0\.1:(\d+)").group(1)) for p in procs]
                assert exchange(ports[0], b"example") == b"example"
                assert exchange(ports[1], b"example") == b""
                good.wait_for(r"accepted: ip_score=100")
                bad.wait_for(r"rejected: ip_score=5")
            finally:
                codes = [p.stop() for p in procs]
            assert codes == [0, 0], good.output + bad.output
            assert up.connections == 1
            assert wait_until(lambda: len(low.disconnects) == 1)
    finally:
        server.stop()
