"""The ``spoe-sync`` command as a user meets it, run as ``python -m spoe_sync`` in a subprocess:
usage errors exit 2 with argparse's ``usage: ... error: ...`` (no command, a malformed address,
a bad backend, a timeout that is not positive), one address parser for every command
(HAProxy's forms, ``:PORT`` meaning every address only where one listens), an agent on a port
in use is one line and exit 1, probe statuses come with their meaning, decode speaks SPOP, and
check says one thing about a binary file and always closes with its counts."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spoe_sync.cli import listen_address, server_address, tcp_listen_address
from tests.conformance.harness import RecordingAgent, agent_disconnect, agent_hello

ROOT = str(Path(__file__).resolve().parent.parent)
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

pytestmark = pytest.mark.timeout(120)


def spoe_sync(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spoe_sync", *args], capture_output=True,
                          text=True, timeout=60, env=ENV, cwd=ROOT, check=False, input=stdin)


def assert_usage_error(done: subprocess.CompletedProcess[str], command: str, what: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith(f"usage: spoe-sync {command}".rstrip()), done.stderr
    assert f"error: {what}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not done.stdout


def test_python_m_spoe_sync_is_the_command() -> None:
    done = spoe_sync("--version")
    assert done.returncode == 0 and done.stdout.startswith("spoe-sync "), done


def test_no_command_prints_the_usage_and_exits_2() -> None:
    done = spoe_sync()
    assert done.returncode == 2, done
    assert done.stderr.startswith("usage: spoe-sync") and "COMMAND" in done.stderr
    assert "probe" in done.stderr and "proxy" in done.stderr  # the commands are listed
    assert done.stderr.rstrip().endswith("error: give a COMMAND")


@pytest.mark.parametrize(("args", "what"), [
    pytest.param(["--listen", "nowhere", "--upstream", "127.0.0.1:1"],
                 "argument --listen: invalid address 'nowhere'", id="listen"),
    pytest.param(["--listen", "127.0.0.1:99999", "--upstream", "127.0.0.1:1"],
                 "argument --listen: invalid address '127.0.0.1:99999'", id="listen-port"),
    pytest.param(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1"],
                 "argument --upstream: missing port in '127.0.0.1'", id="upstream"),
    pytest.param(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--backend", "agents"],
                 "argument --backend: invalid backend 'agents' (expected NAME=ADDR[,ADDR])",
                 id="backend-no-equals"),
    pytest.param(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--backend",
                  "agents=127.0.0.1:1,nowhere"],
                 "argument --backend: invalid backend 'agents=127.0.0.1:1,nowhere': missing "
                 "port in 'nowhere'", id="backend-address"),
    pytest.param(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--maxconn", "0"],
                 "argument --maxconn: invalid value '0'", id="maxconn"),
])
def test_proxy_malformed_arguments_are_usage_errors(args: list[str], what: str) -> None:
    assert_usage_error(spoe_sync("proxy", *args), "proxy", what)


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "soon"])
def test_probe_timeout_must_be_positive(timeout: str) -> None:
    assert_usage_error(spoe_sync("probe", "127.0.0.1:1", "--timeout", timeout), "probe",
                       "argument --timeout: ")


def test_an_address_means_the_same_to_every_command() -> None:
    # ":PORT" is every IPv4 address, as in HAProxy's bind: fine to listen on, not to connect to
    done = spoe_sync("probe", ":30001")
    assert_usage_error(done, "probe", "argument ADDR: missing host in ':30001'")
    assert "only an address to listen on" in done.stderr
    assert tcp_listen_address(":30001") == ("0.0.0.0", 30001)
    assert tcp_listen_address("*:30001") == ("0.0.0.0", 30001)
    done = spoe_sync("proxy", "--listen", "127.0.0.1:0", "--upstream", ":30001")
    assert_usage_error(done, "proxy", "argument --upstream: missing host in ':30001'")
    # the same verdict from every parser for what both kinds accept or refuse
    for good in ("127.0.0.1:12345", "[::1]:12345", "ipv4@127.0.0.1:1", "localhost:80",
                 "unix@/run/spoa.sock", "/run/spoa.sock", "abns@spoa"):
        assert server_address(good) == good and listen_address(good) == good
    for bad in ("nowhere", "127.0.0.1:99999", "127.0.0.1:x", "[::1:80", "ftp@host:1", "unix@"):
        for parse in (server_address, listen_address):
            with pytest.raises(argparse.ArgumentTypeError):
                parse(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="TCP address"):
        tcp_listen_address("unix@/run/spoa.sock")  # the example agent listens on TCP only


def test_agent_on_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = spoe_sync("agent", "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"spoe-sync agent: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "stopped" not in done.stderr  # it never started


def test_probe_says_what_a_status_means() -> None:
    # an agent answering the HELLO with an AGENT-DISCONNECT "frame is too big" (status 3)
    with RecordingAgent(hello=agent_disconnect(3, "too big")) as agent:
        done = spoe_sync("probe", agent.address)
    assert done.returncode == 1, done
    assert "status          3 (frame is too big)" in done.stdout, done.stdout
    with RecordingAgent(hello=agent_hello("1.0")) as agent:
        done = spoe_sync("probe", agent.address)
    assert "status          8 (unsupported version)" in done.stdout, done.stdout


def test_decode_speaks_spop() -> None:
    done = spoe_sync("decode", "0000000501000000")  # FLAGS cut after 3 of its 4 bytes
    assert done.returncode == 1
    assert "FLAGS at offset 0x0005: cut short, 4 bytes needed, 3 bytes left" in done.stdout
    assert "stream read less than specified amount" not in done.stdout
    done = spoe_sync("decode", agent_hello().hex())
    assert "max-frame-size=16380" in done.stdout and "UInt32" not in done.stdout, done.stdout


def test_check_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "haproxy"
    path.write_bytes(bytes(range(256)) * 256)
    done = spoe_sync("check", str(path), "--engine", "x")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and "not a configuration file" in lines[0], lines
    assert lines[1] == "checked 1 file: 1 error, 0 warnings"


def test_proxy_help_says_what_sighup_does() -> None:
    done = spoe_sync("proxy", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "SIGTERM, SIGINT and SIGHUP stop gracefully" in text
    assert "SIGHUP does not reload the configuration" in text
    assert "--maxconn N" in text
