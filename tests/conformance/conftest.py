"""The conformance tier: HAProxy 2.6 is the reference engine.

Skipped when ``haproxy`` is not on PATH, unless SPOE_SYNC_REQUIRE_HAPROXY=1 (set
by .ci/run), in which case a missing binary fails the run: a conformance tier
that silently skips proves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .harness import RecordingAgent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    """Path of the ``haproxy`` binary (2.6 is the reference)."""
    path = shutil.which("haproxy") or (os.path.exists("/usr/sbin/haproxy") and "/usr/sbin/haproxy") or None
    if not path:
        if os.environ.get("SPOE_SYNC_REQUIRE_HAPROXY") == "1":
            pytest.fail("SPOE_SYNC_REQUIRE_HAPROXY=1 but haproxy is not installed")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    version = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10).stdout
    if "version 2.6." not in version:
        pytest.skip(f"the reference is HAProxy 2.6, found: {version.splitlines()[0] if version else '?'}")
    return path


@pytest.fixture
def recording_agent():
    """A fresh :class:`RecordingAgent` on 127.0.0.1, closed after the test."""
    agent = RecordingAgent()
    try:
        yield agent
    finally:
        agent.close()
