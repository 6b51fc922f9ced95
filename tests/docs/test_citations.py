"""Every ``docs/explanation/<page>.md §N`` cited in the code, the tests and the README names a
section that exists on that page (the pages keep their section numbers for this)."""

from __future__ import annotations

import os
import re

from .mdrun import REPO

_CITE = re.compile(r"docs/explanation/([a-z-]+)\.md §(\d+(?:\.\d+)*)")
_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.M)


def _citations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    paths = [os.path.join(REPO, "README.md")]
    for top in ("spoe_sync", "tests", "examples", "benchmarks"):
        for root, _dirs, files in os.walk(os.path.join(REPO, top)):
            paths += [os.path.join(root, f) for f in files if f.endswith((".py", ".md"))]
    for path in paths:
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                found.update(_CITE.findall(f.read()))
    return found


def test_cited_sections_exist() -> None:
    citations = _citations()
    assert citations, "no citation found: the pattern is out of date"
    missing = []
    for page, section in sorted(citations):
        path = os.path.join(REPO, "docs", "explanation", f"{page}.md")
        assert os.path.isfile(path), f"docs/explanation/{page}.md is cited but missing"
        with open(path, encoding="utf-8") as f:
            sections = set(_HEADING.findall(f.read()))
        if section not in sections:
            missing.append(f"{page}.md §{section}")
    assert not missing, missing
