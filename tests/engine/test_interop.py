"""The pool against SPOA libraries nobody here wrote (PyPI's ``spoe-forge`` and
``haproxyspoa``), in sync, pipelining and async configurations (SPOE.txt §3.2).

Opt-in: set ``SPOE_SYNC_INTEROP_PYTHON`` to an interpreter that has those
packages (they need Python 3.12 and asyncio, so they do not live in our
environment), e.g. ``python3.12 -m venv /tmp/spoa && /tmp/spoa/bin/pip install
spoe-forge haproxyspoa``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .poolkit import burst, make_pool, statuses

pytestmark = pytest.mark.timeout(30)

PYTHON = os.environ.get("SPOE_SYNC_INTEROP_PYTHON")

AGENTS = {
    "spoe-forge": '''
import sys
from spoe_forge import SpoeForge, SetVarAction, ActionScope
agent = SpoeForge(name="forge")
@agent.message("check-client-ip")
def check(ctx):
    return [SetVarAction(scope=ActionScope.TRANSACTION, name="ip", value=str(ctx.get_arg("ip")))]
agent.run("127.0.0.1", int(sys.argv[1]))
''',
    "haproxyspoa": '''
import sys
from haproxyspoa.spoa_server import SpoaServer
from haproxyspoa.payloads.ack import AckPayload, ActionVarScope
agent = SpoaServer()
@agent.handler("check-client-ip")
async def check(ip=None, **kw):
    return AckPayload().set_var(ActionVarScope.TRANSACTION, "ip", str(ip))
agent.run(host="127.0.0.1", port=int(sys.argv[1]))
''',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not PYTHON, reason="SPOE_SYNC_INTEROP_PYTHON is not set")
@pytest.mark.parametrize("library", sorted(AGENTS))
@pytest.mark.parametrize("mode", ["sync", "pipelining", "async"])
def test_third_party_agent(library: str, mode: str, tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENTS[library])
    port = free_port()
    proc = subprocess.Popen([str(PYTHON), str(script), str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        pool = make_pool(f"127.0.0.1:{port}", pipelining=mode != "sync", async_=mode == "async")
        outcomes = burst(pool, 200, timeout=5.0)
        assert statuses(outcomes) == {0: 200}
        assert all(o.ack is not None and o.ack.actions[0].value == "192.0.2.1" for o in outcomes)
        pool.close(2)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
