"""The how-to guides' SPOE files, rule lines and Python examples, loaded and run as shown."""

from __future__ import annotations

import os
import shutil

import pytest

from .mdrun import REPO, Runner, parse, unmarked_blocks

HOWTO = os.path.join(REPO, "docs", "howto")
# Pages whose every block is run; the other guides' blocks are shown, not run (configuration
# of other programs, shell sessions needing servers this machine may not have).
RUN_PAGES = ["agents.md", "testing.md", "metrics.md", "logging.md", "haproxy-cfg.md",
             "gunicorn.md", "tcp-proxy.md"]
# The agent address the pages use, replaced with a free port when they run.
PAGE_PORTS = ("12345", "8080", "8000", "2222")

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("page", RUN_PAGES)
def test_every_block_is_run(page: str) -> None:
    unmarked = unmarked_blocks(os.path.join(HOWTO, page))
    assert not unmarked, [f"{page}:{b.lineno}" for b in unmarked]


@pytest.mark.parametrize("page", RUN_PAGES)
def test_page_runs_as_shown(page: str, tmp_path: object) -> None:
    from tests.kit import free_port

    needs = {"gunicorn.md": ("gunicorn", "curl"), "tcp-proxy.md": ("curl",)}.get(page, ())
    if any(shutil.which(tool) is None for tool in needs):
        pytest.skip(f"the page runs {' and '.join(needs)}")
    steps, _ = parse(os.path.join(HOWTO, page))
    assert steps
    Runner(str(tmp_path), ports={p: str(free_port()) for p in PAGE_PORTS}).run_steps(steps)
