"""The README's examples, run as shown from a copy of the repository's layout: the agent, the
WSGI app, the TCP proxy in front of it, the FakeAgent test file and the engine used directly.

The README marks its blocks with HTML comments (``<!-- test: ... -->``, see :mod:`.mdrun`), so
that GitHub shows the page without them.  The commands name files relative to the repository's
root (``spoe_sync/examples/spoe-iprep.conf``), as a reader runs them; they run in a temporary
directory where ``spoe_sync`` is a link to the checkout's package, so that the files the page
writes never land in the checkout.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .mdrun import REPO, Runner, parse, unmarked_blocks

README = os.path.join(REPO, "README.md")
# The addresses the README uses, replaced with free ports when it runs.
PAGE_PORTS = ("12345", "8080", "2222")

pytestmark = pytest.mark.timeout(300)


def test_every_example_is_run() -> None:
    unmarked = unmarked_blocks(README)
    assert not unmarked, [f"README.md:{b.lineno}" for b in unmarked]


def test_readme_runs_as_shown(tmp_path: object) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the README uses curl")
    from tests.kit import free_port

    os.symlink(os.path.join(REPO, "spoe_sync"), os.path.join(str(tmp_path), "spoe_sync"))
    steps, _ = parse(README)
    assert sum(s.kind in ("run", "python") for s in steps) >= 4
    Runner(str(tmp_path), ports={p: str(free_port()) for p in PAGE_PORTS}).run_steps(steps)


def test_links_resolve_inside_the_repository() -> None:
    """Every relative link names a file of the repository; the others are public pages."""
    import re

    with open(README, encoding="utf-8") as f:
        text = f.read()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    bad = [link for link in links if not link.startswith("https://")
           and not os.path.exists(os.path.join(REPO, link.split("#")[0]))]
    assert not bad, bad
    assert "../" not in "".join(links), "a link that leaves the repository"
