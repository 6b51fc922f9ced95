"""The haproxy.cfg files of tests/config/corpus_rules/: HTTP rule lines using the actions of
configuration.txt §4.2 that agents' configs use (docs/explanation/agents.md §6).

Each file is a whole haproxy.cfg whose frontend ``fe`` loads ``agent.conf``.  Headers
(comment lines at the end): ``# haproxy: <text>`` the HAProxy 2.6 message of an invalid file;
``# spoe_sync: <text>`` spoe_sync's error; ``# line: N`` the line of the error; ``# warns:
<text>`` a warning a valid file gives.  ``spoe_only/`` files are valid for HAProxy and refused
by spoe_sync on purpose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .corpus_util import _header  # the same '# key: value' header lines

CORPUS = os.path.join(os.path.dirname(__file__), "corpus_rules")
KINDS = ("valid", "invalid", "spoe_only")


@dataclass(frozen=True)
class RuleCorpusFile:
    path: str
    kind: str
    haproxy: str | None = None
    spoe_sync: str | None = None
    line: int | None = None
    warns: str | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}/{os.path.basename(self.path)}"


def rule_corpus_files() -> list[RuleCorpusFile]:
    files = []
    for kind in KINDS:
        folder = os.path.join(CORPUS, kind)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".cfg"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                line = _header(text, "line")
                files.append(RuleCorpusFile(path, kind, _header(text, "haproxy"),
                                            _header(text, "spoe_sync"),
                                            int(line) if line else None, _header(text, "warns")))
    return files


def with_agent_conf(path: str, workdir: str) -> str:
    """A copy of a corpus file in ``workdir`` beside agent.conf (HAProxy resolves the SPOE
    file from its working directory); returns the copy's path."""
    import shutil

    shutil.copy(os.path.join(CORPUS, "agent.conf"), os.path.join(workdir, "agent.conf"))
    copy = os.path.join(workdir, os.path.basename(path))
    shutil.copy(path, copy)
    return copy
