"""The runnable examples of ``examples/`` (issue 7: "examples/ holds an example IP-reputation
agent, its SPOE config (SPOE.txt §2.5), a WSGI app and the TCP proxy"), as subprocesses on
127.0.0.1: the WSGI app behind SpoeMiddleware allows a loopback client and denies a listed
address (X-Forwarded-For, trusted on request) after asking the example agent, under
gevent.pywsgi and ``gunicorn -k gevent``; the SPOE config shown in examples/ is the packaged
one; a bad address is the usage error (exit 2) of the command line's own parser, not a
traceback.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoe_sync.examples.iprep import CONFIG_PATH
from tests.test_cli_agent import ENV, ROOT, start, wait_for_line

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(ROOT, "examples")


def _get(port: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def agent_address() -> Iterator[str]:
    """The example agent (examples/iprep_agent.py) on a free port."""
    for _, address in start(sys.executable, str(EXAMPLES / "iprep_agent.py"),
                            "--listen", "127.0.0.1:0"):
        yield address


def test_examples_show_the_packaged_spoe_config() -> None:
    assert (EXAMPLES / "spoe-iprep.conf").read_bytes() == Path(CONFIG_PATH).read_bytes()


def test_wsgi_app_allows_and_denies_through_the_example_agent(agent_address: str) -> None:
    script = str(EXAMPLES / "wsgi_app.py")
    for _, url in start(sys.executable, script, "--listen", "127.0.0.1:0",
                        "--agent", agent_address, "--trust-xff"):
        port = int(url.rsplit(":", 1)[1])
        status, body = _get(port)
        assert (status, body) == (200, b"hello 127.0.0.1, ip_score=100\n")  # loopback: trusted
        status, _ = _get(port, {"X-Forwarded-For": "192.0.2.7"})
        assert status == 403  # TEST-NET-1 is listed with score 5: the deny rule matches
        status, body = _get(port, {"X-Forwarded-For": "10.1.2.3, 203.0.113.9"})
        assert status == 200 and body.startswith(b"hello 203.0.113.9, ip_score=")


def test_wsgi_app_without_trust_ignores_x_forwarded_for(agent_address: str) -> None:
    for _, url in start(sys.executable, str(EXAMPLES / "wsgi_app.py"), "--listen",
                        "127.0.0.1:0", "--agent", agent_address):
        status, body = _get(int(url.rsplit(":", 1)[1]), {"X-Forwarded-For": "192.0.2.7"})
        assert (status, body) == (200, b"hello 127.0.0.1, ip_score=100\n")


def _wait_http(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gunicorn exited with {proc.returncode}"
        try:
            _get(port)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not answer in time")


def test_wsgi_app_under_gunicorn_gevent(agent_address: str) -> None:
    # the docstring's command: gunicorn -k gevent examples.wsgi_app:application
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    env = dict(ENV, SPOE_AGENT=agent_address, SPOE_TRUST_XFF="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--bind",
         f"fd://{sock.fileno()}", "--graceful-timeout", "2", "--log-level", "warning",
         "examples.wsgi_app:application"],
        cwd=ROOT, env=env, pass_fds=(sock.fileno(),), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        _wait_http(port, proc)
        assert _get(port)[0] == 200
        assert _get(port, {"X-Forwarded-For": "198.51.100.1"})[0] == 403
    finally:
        sock.close()
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)


def _usage_error(*argv: str) -> str:
    """What a command says about its bad argument (exit status 2, no traceback): the end of
    argparse's "error: argument NAME: ..." line."""
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=30,
                          env=ENV, cwd=ROOT, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    match = re.search(r"error: argument (?:--[\w-]+|[A-Z_:]+?): (.*)$", done.stderr.strip())
    assert match, done.stderr
    return match.group(1)


#: each example's way to say "listen on ADDRESS"
LISTEN = {
    "agent": lambda address: (str(EXAMPLES / "iprep_agent.py"), "--listen", address),
    "wsgi-app": lambda address: (str(EXAMPLES / "wsgi_app.py"), "--listen", address),
    "tcp-proxy": lambda address: (str(EXAMPLES / "tcp_proxy.py"), address, "127.0.0.1:1"),
}


@pytest.mark.parametrize("example", sorted(LISTEN))
@pytest.mark.parametrize("listen", [pytest.param("foo", id="no-port"),
                                    pytest.param("127.0.0.1:http", id="port-not-a-number"),
                                    pytest.param("127.0.0.1:70000", id="port-too-big")])
def test_bad_listen_is_the_usage_error_of_spoe_sync_agent(example: str, listen: str) -> None:
    """One HOST:PORT parser: an example refuses an address to listen on as the command line
    does, with its words."""
    expected = _usage_error("-m", "spoe_sync", "agent", "--listen", listen)
    assert listen in expected
    assert _usage_error(*LISTEN[example](listen)) == expected


@pytest.mark.parametrize("example", [
    pytest.param((str(EXAMPLES / "wsgi_app.py"), "--agent", ":12345"), id="wsgi-app-agent"),
    pytest.param((str(EXAMPLES / "tcp_proxy.py"), "127.0.0.1:0", ":80"), id="tcp-proxy-dest"),
    pytest.param((str(EXAMPLES / "tcp_proxy.py"), "127.0.0.1:0", "127.0.0.1:80", ":12345"),
                 id="tcp-proxy-agent"),
])
def test_a_server_address_without_host_is_refused_as_by_spoe_sync_probe(
        example: tuple[str, ...]) -> None:
    """``:PORT`` is every address to listen on, never a server to connect to (the examples
    once read it as 127.0.0.1, and ``spoe-sync probe`` refused it)."""
    address = example[-1]
    expected = _usage_error("-m", "spoe_sync", "probe", address)
    assert "every address" in expected
    assert _usage_error(*example) == expected


def test_listen_on_a_foreign_address_is_a_clear_error() -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this host: bind() fails
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "iprep_agent.py"), "--listen",
                             "192.0.2.1:9"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=ENV, cwd=ROOT)
    try:
        wait_for_line(proc, r"iprep_agent: cannot listen on 192\.0\.2\.1:9")
        assert proc.wait(timeout=10) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
