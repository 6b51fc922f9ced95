"""The tutorial pages, run command by command against real agents on 127.0.0.1.

Each page's commands, files and outputs are taken from the page itself (see :mod:`.mdrun`):
a change to the code that changes an output, or a change to the page that no longer works,
fails here.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .mdrun import REPO, Runner, parse, unmarked_blocks

TUTORIAL = os.path.join(REPO, "docs", "tutorial")
PAGES = ["ip-reputation.md", "waf.md"]
# The addresses the pages use, replaced with free ports when they run.
PAGE_PORTS = ("12345", "12346", "8080")

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("page", PAGES)
def test_every_block_is_run(page: str) -> None:
    """No block of the tutorial escapes the test: each one carries a marker."""
    unmarked = unmarked_blocks(os.path.join(TUTORIAL, page))
    assert not unmarked, [f"{page}:{b.lineno}" for b in unmarked]


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_shown(page: str, tmp_path: object) -> None:
    pytest.importorskip("flask", reason="the tutorial's app is a Flask app (pip install flask)")
    if shutil.which("curl") is None:
        pytest.skip("the tutorial uses curl")
    from tests.kit import free_port

    steps, _ = parse(os.path.join(TUTORIAL, page))
    assert any(s.kind == "run" for s in steps), "a page with nothing to run"
    runner = Runner(str(tmp_path), ports={p: str(free_port()) for p in PAGE_PORTS})
    runner.run_steps(steps)
