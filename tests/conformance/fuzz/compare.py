"""Comparing what the two engines did with one request, clustering the differences into
classes, and minimising one reproducer per class.

A class is named by where the difference is and its shape, so that one cause found on many
requests is one class: ``arg target.urlp_semi str/NULL`` (message ``target``, argument
``urlp_semi``: HAProxy sent a string, spoe_sync NULL), ``arg ... str!=`` (both strings,
different), ``msg acl_ip haproxy-only`` (an ACL-guarded message only HAProxy sent), ``status
400/200``.  What cannot be equal is masked before comparing (:data:`known.MASKED`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spoe_sync.protocol import data_type_of
from spoe_sync.wsgi.validity import check_raw

from .engines import Observation
from .generator import FuzzRequest
from .known import MASKED

__all__ = ["Diff", "Report", "diff", "minimise", "validity_diff"]


@dataclass(frozen=True)
class Diff:
    """One difference: its class name, HAProxy's value and ours."""

    cls: str
    theirs: Any
    ours: Any


def _type(value: Any) -> str:
    return data_type_of(value).name


def _masked(message: str, arg: str, value: Any) -> Any:
    return "<masked>" if (message, arg) in MASKED else value


def _args(message: tuple[str, tuple[tuple[str, Any], ...]]) -> dict[str, Any]:
    name, args = message
    return {n: _masked(name, n, v) for n, v in args}


def diff(theirs: Observation, ours: Observation) -> list[Diff]:
    """The differences between two observations of one request (empty: the same)."""
    if theirs.status != ours.status:
        # an error answer from one engine: the messages differ because of it, one class
        return [Diff(f"status {theirs.status}/{ours.status}", theirs.status, ours.status)]
    out: list[Diff] = []
    t_msgs = [m[0] for m in theirs.messages]
    o_msgs = [m[0] for m in ours.messages]
    for name in dict.fromkeys(t_msgs + o_msgs):
        if name not in o_msgs:
            out.append(Diff(f"msg {name} haproxy-only", True, False))
            continue
        if name not in t_msgs:
            out.append(Diff(f"msg {name} spoe_sync-only", False, True))
            continue
        t_args = _args(theirs.messages[t_msgs.index(name)])
        o_args = _args(ours.messages[o_msgs.index(name)])
        for arg in dict.fromkeys([*t_args, *o_args]):
            tv, ov = t_args.get(arg, "<absent>"), o_args.get(arg, "<absent>")
            if tv == ov and _type(tv) == _type(ov):
                continue
            tt, ot = _type(tv), _type(ov)
            shape = f"{tt}!=" if tt == ot else f"{tt}/{ot}"
            out.append(Diff(f"arg {name}.{arg} {shape}", tv, ov))
    if [n for n in t_msgs if n in o_msgs] != [n for n in o_msgs if n in t_msgs]:
        out.append(Diff("msg order", tuple(t_msgs), tuple(o_msgs)))
    return out


def validity_diff(raw: bytes, theirs: Observation) -> list[Diff]:
    """spoe_sync.wsgi.validity's verdict on ``raw`` against HAProxy's answer (the fuzz
    config waits for the body, ``option http-buffer-request``: the same verdicts without it,
    tests/conformance/test_fuzz_validity_haproxy.py)."""
    refusal = check_raw(raw)
    ours = refusal.status if refusal is not None else 0
    refused = theirs.status if theirs.status in (400, 413, 422) else 0
    if ours == refused:
        return []
    why = refusal.why if refusal is not None else "accepted"
    return [Diff(f"validity {refused or theirs.status}/{ours or 'accepted'}", theirs.status, why)]


def _variants(req: FuzzRequest) -> list[FuzzRequest]:
    """Smaller requests than ``req``, one change each (the minimiser keeps those that still
    show the class)."""
    out = []
    framing = ("content-length", "transfer-encoding", "connection")
    for i, (name, _) in enumerate(req.headers):
        if name.lower() not in framing:
            out.append(FuzzRequest(req.method, req.target, req.version,
                                   req.headers[:i] + req.headers[i + 1:], req.body, req.chunked))
    if req.body:
        headers = [(n, str(len(req.body) // 2)) if n.lower() == "content-length" else (n, v)
                   for n, v in req.headers]
        out.append(FuzzRequest(req.method, req.target, req.version, headers,
                               req.body[:len(req.body) // 2], req.chunked))
    if "?" in req.target:
        path, _, query = req.target.partition("?")
        for sep in ("&", ";"):
            parts = query.split(sep)
            if len(parts) > 1:
                for i in range(len(parts)):
                    out.append(FuzzRequest(req.method, path + "?" + sep.join(
                        parts[:i] + parts[i + 1:]), req.version, req.headers, req.body,
                        req.chunked))
    segments = req.target.split("/")
    for i in range(1, len(segments) - 1):
        out.append(FuzzRequest(req.method, "/".join(segments[:i] + segments[i + 1:]),
                               req.version, req.headers, req.body, req.chunked))
    for i, (name, value) in enumerate(req.headers):
        if len(value) > 8:
            shorter = [*req.headers[:i], (name, value[:len(value) // 2]), *req.headers[i + 1:]]
            out.append(FuzzRequest(req.method, req.target, req.version, shorter, req.body,
                                   req.chunked))
    return out


def minimise(req: FuzzRequest, cls: str, run: Callable[[bytes], list[Diff]],
             budget: int = 60) -> tuple[FuzzRequest, Diff | None]:
    """The smallest request found (greedily, within ``budget`` runs) that still shows ``cls``,
    with that class's difference on it."""
    found = next((d for d in run(req.raw) if d.cls == cls), None)
    improved = True
    while improved and budget > 0:
        improved = False
        for candidate in _variants(req):
            budget -= 1
            if budget < 0:
                break
            hit = next((d for d in run(candidate.raw) if d.cls == cls), None)
            if hit is not None:
                req, found, improved = candidate, hit, True
                break
    return req, found


@dataclass
class Report:
    """Classes seen over a run: how many requests showed each, and the first one that did."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, tuple[FuzzRequest, Diff]] = field(default_factory=dict)

    def add(self, req: FuzzRequest, diffs: list[Diff]) -> None:
        self.total += 1
        for d in {d.cls: d for d in diffs}.values():
            self.counts[d.cls] = self.counts.get(d.cls, 0) + 1
            self.first.setdefault(d.cls, (req, d))

    def text(self, reproducers: dict[str, tuple[FuzzRequest, Diff | None]],
             known: dict[str, str]) -> str:
        lines = [f"{self.total} requests, {len(self.counts)} mismatch classes "
                 f"({sum(1 for c in self.counts if c not in known)} not known)"]
        for cls, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            tag = "known" if cls in known else "NEW"
            per_k = 1000 * n / max(self.total, 1)
            lines.append(f"\n[{tag}] {cls}: {n} requests ({per_k:.0f} per 1,000)")
            if cls in known:
                lines.append(f"    why: {known[cls]}")
            req, d = reproducers.get(cls, self.first[cls])
            if d is not None:
                lines.append(f"    haproxy:   {d.theirs!r}"[:400])
                lines.append(f"    spoe_sync: {d.ours!r}"[:400])
            lines.append(f"    reproducer: {req.raw!r}"[:1200])
        return "\n".join(lines)
