"""Reading the corpus files of tests/config/corpus/ and their header comments.

Headers (comment lines anywhere in the file):
``# haproxy: <text>`` the HAProxy 2.6 message an invalid file mirrors (a substring of
``haproxy -c``'s output); ``# spoe_sync: <text>`` the error of a file only spoe_sync
refuses; ``# line: N|none`` the line the error is reported at; ``# engine: NAME`` the
scope to load; ``# env: NAME=VALUE`` environment for ``"$VAR"``; ``# warns: <text>`` a
warning a valid file must produce.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

CORPUS = os.path.join(os.path.dirname(__file__), "corpus")
KINDS = ("valid", "invalid", "spoe_only")


@dataclass(frozen=True)
class CorpusFile:
    path: str
    kind: str
    engine: str | None = None
    haproxy: str | None = None
    spoe_sync: str | None = None
    line: int | None = None
    warns: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind}/{os.path.basename(self.path)}"


def _header(text: str, key: str) -> str | None:
    m = re.search(rf"^# {key}: *(.*?)\r?$", text, re.M)
    return m.group(1) if m else None


def corpus_files() -> list[CorpusFile]:
    files = []
    for kind in KINDS:
        folder = os.path.join(CORPUS, kind)
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".conf"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            line = _header(text, "line")
            env = dict(e.split("=", 1) for e in re.findall(r"^# env: *(\S+)", text, re.M))
            files.append(CorpusFile(path, kind, _header(text, "engine"), _header(text, "haproxy"),
                                    _header(text, "spoe_sync"),
                                    int(line) if line and line.isdigit() else None,
                                    _header(text, "warns"), env))
    return files


def haproxy_cfg_for(corpus: CorpusFile) -> str:
    """A minimal haproxy.cfg that loads the corpus file as ``filter spoe``; backend
    ``spoe_agents`` is ``mode tcp``, backend ``be`` is ``mode http``."""
    engine = f"engine {corpus.engine} " if corpus.engine else ""
    return (
        "global\n    nbthread 1\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n"
        "    timeout server 30s\n"
        "frontend fe\n    bind 127.0.0.1:18999\n"
        f"    filter spoe {engine}config {corpus.path}\n"
        "    default_backend be\n"
        "backend be\n    server s 127.0.0.1:1\n"
        "backend spoe_agents\n    mode tcp\n    server a 127.0.0.1:12345\n"
    )
