"""``spoe-sync agent`` and ``spoe-sync probe`` as subprocesses (SPOE.txt §3.2.3
"Successful HELLO healthcheck"): the example agent answers a probe with its
version, capabilities and max-frame-size, ``--no-async``/``--no-pipelining``
change what it announces, SIGTERM stops it with exit status 0, and a probe of
a closed port fails with exit status 1 and the reason.  Also the runnable
probe of an agent written without spoe_sync (the conformance harness's), the
``examples/iprep_agent.py`` script (stopped by SIGINT), usage errors (exit 2),
and the SPOE file being package data.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoe_sync.cli import main
from spoe_sync.examples.iprep import CONFIG_PATH
from tests.conformance.harness import RecordingAgent, agent_hello
from tests.kit import closed_address

ROOT = str(Path(__file__).resolve().parent.parent)
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def spoe_sync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spoe_sync.cli", *args], capture_output=True,
                          text=True, timeout=60, env=ENV, cwd=ROOT, check=False)


def wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 15.0) -> re.Match[str]:
    """The first line of the process's stderr+stdout matching ``pattern``."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the process closes its output
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def start(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV, cwd=ROOT)
    try:
        address = wait_for_line(proc, r"listening on (\S+)").group(1)
        yield proc, address
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def agent_proc(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], str]]:
    extra = getattr(request, "param", ())
    yield from start(sys.executable, "-m", "spoe_sync.cli", "agent", "--listen", "127.0.0.1:0",
                     *extra)


@pytest.mark.parametrize(("agent_proc", "capabilities"), [
    pytest.param((), "pipelining,async", id="default"),
    pytest.param(("--no-async", "--no-pipelining"), "(none)", id="neither"),
], indirect=["agent_proc"])
def test_probe_a_running_agent_then_sigterm(agent_proc: tuple[subprocess.Popen[str], str],
                                            capabilities: str) -> None:
    proc, address = agent_proc
    done = spoe_sync("probe", address)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.match(rf"{re.escape(address)}: healthy \(SPOA server is ok\) in \d+ ms", done.stdout)
    assert re.search(r"version\s+2\.0\n", done.stdout)
    assert re.search(r"max-frame-size\s+16380\n", done.stdout)
    assert re.search(rf"capabilities\s+{re.escape(capabilities)}\n", done.stdout)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_sighup_stops_the_agent_gracefully(agent_proc: tuple[subprocess.Popen[str], str]) -> None:
    # its default action would kill the agent at once (exit 129) when its terminal closes
    proc, address = agent_proc
    assert spoe_sync("probe", address).returncode == 0
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=10) == 0


def test_probe_a_closed_port() -> None:
    done = spoe_sync("probe", closed_address(), "--timeout", "2")
    assert done.returncode == 1
    assert "NOT healthy (Layer4 connection problem" in done.stdout
    assert "refused" in done.stdout.lower()


@pytest.mark.parametrize(("hello", "code", "expected"), [
    pytest.param(agent_hello("2.0", 1024, "pipelining"), 0, r"max-frame-size\s+1024\n", id="ok"),
    pytest.param(agent_hello("1.0"), 1, r"NOT healthy \(Layer7 invalid response: unsupported "
                 r"version\).*\n\s+status\s+8 \(unsupported version\)\n", id="bad-version"),
    pytest.param(agent_hello("2.0", 100), 1, r"max-frame-size too big or too small", id="bad-size"),
])
def test_probe_any_agent(hello: bytes, code: int, expected: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    """The harness's agent shares no code with spoe_sync (and runs in threads,
    so the probe can run in this process)."""
    with RecordingAgent(hello=hello) as other:
        assert main(["probe", other.address]) == code
    out = capsys.readouterr().out
    assert re.search(expected, out), out


@pytest.mark.parametrize("argv", [
    pytest.param(["probe"], id="probe-without-address"),
    pytest.param(["probe", "127.0.0.1:1", "--timeout", "soon"], id="probe-bad-timeout"),
    pytest.param(["agent", "--listen", "nowhere"], id="agent-bad-listen"),
    pytest.param(["agent", "--listen", "127.0.0.1:99999"], id="agent-bad-port"),
])
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: spoe-sync" in capsys.readouterr().err


def test_example_script_serves_the_packaged_agent_until_sigint() -> None:
    script = os.path.join(ROOT, "examples", "iprep_agent.py")
    for proc, address in start(sys.executable, script, "--listen", "127.0.0.1:0", "--no-async"):
        done = spoe_sync("probe", address)
        assert done.returncode == 0 and re.search(r"capabilities\s+pipelining\n", done.stdout)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_packaged_config_is_installed_with_the_package() -> None:
    assert os.path.isfile(CONFIG_PATH)
    setup = Path(ROOT, "setup.cfg").read_text()
    assert re.search(r"spoe_sync\.examples\s*=\s*spoe-iprep\.conf", setup)
