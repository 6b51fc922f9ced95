"""One differential run: generate, send to both engines, cluster, minimise, report."""

from __future__ import annotations

from pathlib import Path

from .compare import Diff, Report, diff, minimise, validity_diff
from .engines import engines
from .generator import FuzzRequest, generate
from .known import KNOWN

__all__ = ["run"]


def run(haproxy_bin: str, seed: int, count: int, *, handler: str = "spoe",
        minimise_known: bool = True, workdir: Path | None = None,
        known: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """The report's text and the classes not in ``known`` (default :data:`KNOWN`)."""
    known = KNOWN if known is None else known
    report = Report()
    reproducers: dict[str, tuple[FuzzRequest, Diff | None]] = {}
    with engines(haproxy_bin, handler, workdir) as pair:
        def once(raw: bytes) -> list[Diff]:
            theirs, ours = pair.run(raw)
            return diff(theirs, ours) + validity_diff(raw, theirs)

        for req in generate(seed, count):
            report.add(req, once(req.raw))
        for cls, (req, _) in report.first.items():
            if minimise_known or cls not in known:
                reproducers[cls] = minimise(req, cls, once)
    new = sorted(c for c in report.counts if c not in known)
    return report.text(reproducers, known), new
