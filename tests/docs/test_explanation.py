"""The explanation pages' commands (``spoe-sync decode`` on frames HAProxy sent), run from the
repository's root and compared with the pages."""

from __future__ import annotations

import os

import pytest

from .mdrun import REPO, Runner, parse, unmarked_blocks

PAGE = os.path.join(REPO, "docs", "explanation", "frames.md")

pytestmark = pytest.mark.timeout(300)


def test_every_block_is_run() -> None:
    unmarked = unmarked_blocks(PAGE)
    assert not unmarked, [f"frames.md:{b.lineno}" for b in unmarked]


def test_frames_decode_as_shown(tmp_path: object) -> None:
    steps, _ = parse(PAGE)
    assert sum(s.kind == "run" for s in steps) >= 5
    Runner(str(tmp_path), cwd=REPO).run_steps(steps)
