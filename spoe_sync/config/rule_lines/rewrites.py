"""The rule actions that rewrite or hold the request (configuration.txt §4.2): the request
line (``set-path``, ``set-query``, ``set-uri``, ``set-method``...), ``set-src``,
``replace-header``/``replace-value``, ``capture``, ``wait-for-body``, and the actions that mean
nothing in a WSGI app.  Re-exported by :mod:`spoe_sync.config.rule_lines.actions`; run by
:mod:`spoe_sync.wsgi.rewrite`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...rules import SampleExpr
from ...rules.logformat import LogFormat

__all__ = ["Capture", "NoEffect", "ReplaceHeader", "SetSrc", "SetStartLine", "WaitForBody",
           "expand_backrefs"]


@dataclass(frozen=True)
class SetStartLine:
    """``set-method|set-path|set-pathq|set-query|set-uri <fmt>``: rewrite a part of the
    request line (:attr:`part` is ``method``, ``path``, ``pathq``, ``query`` or ``uri``).

    Later fetches see the new request; one difference: after ``set-method``, HAProxy 2.6's
    ``method`` fetch still returns the original method (it reads a cached value), spoe_sync's
    returns the new one, which is what the server receives."""
    part: str
    value: LogFormat

    def target(self, old: str, new: str) -> str:
        """The request-target after the rewrite of ``old`` with ``new`` (not for ``method``),
        as http_replace_req_{path,query,uri}() do: scheme and authority stay for
        ``set-path``/``set-pathq``, a ``?`` is never removed by ``set-query``."""
        qmark = old.find("?")
        before, query = (old, "") if qmark < 0 else (old[:qmark], old[qmark:])
        if self.part == "uri":
            return new
        if self.part == "query":
            return old if not new and qmark < 0 else f"{before}?{new}"
        prefix = ""
        scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", before)
        if scheme is not None:
            slash = before.find("/", scheme.end())
            prefix = before if slash < 0 else before[:slash]
        return prefix + new + ("" if self.part == "pathq" else query)


@dataclass(frozen=True)
class SetSrc:
    """``set-src <expr>``: the client address ``src`` reports from now on (the port stays,
    as HAProxy 2.6 keeps it when both addresses have one); a failed sample or one that is
    not an address changes nothing."""
    expr: SampleExpr


def expand_backrefs(template: str, match: re.Match[str]) -> str:
    """HAProxy's ``exp_replace()``: ``\\0``..``\\9`` are the groups of ``match`` (an unmatched or
    missing group is empty), ``\\xHH`` a character, ``\\c`` the character ``c``."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        c = template[i + 1]
        if c.isdigit():
            num = int(c)
            if num <= (match.re.groups or 0) and match.group(num) is not None:
                out.append(match.group(num))
            i += 2
        elif c == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", template[i + 2:i + 4]):
            out.append(chr(int(template[i + 2:i + 4], 16)))
            i += 4
        else:
            out.append(c)
            i += 2
    return "".join(out)


@dataclass(frozen=True)
class ReplaceHeader:
    """``replace-header <name> <regex> <fmt>`` (the whole value of each ``name`` header) or,
    with :attr:`each`, ``replace-value`` (each comma-separated value).  The regex is searched
    case-sensitively (Python ``re`` stands in for HAProxy's PCRE); a matching value is replaced
    whole by the rendered ``<fmt>`` in which ``\\1``..``\\9`` are the match's groups."""
    name: str
    regex: re.Pattern[str]
    value: LogFormat
    each: bool = False

    def replace(self, header_value: str, template: str) -> str:
        """``header_value`` after the rule, ``template`` being the rendered ``<fmt>``."""
        if not self.each:
            m = self.regex.search(header_value)
            return header_value if m is None else expand_backrefs(template, m)
        out, changed = [], False
        for item in _list_items(header_value):
            m = self.regex.search(item.strip(" \t"))
            if m is None:
                out.append(item)
            else:  # HAProxy replaces the value with the spaces around it
                out.append(expand_backrefs(template, m))
                changed = True
        return ",".join(out) if changed else header_value


def _list_items(value: str) -> list[str]:
    """The comma-separated items of a header value, commas in double quotes kept."""
    items, start, quoted, i = [], 0, False, 0
    while i < len(value):
        c = value[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and quoted:
            i += 1
        elif c == "," and not quoted:
            items.append(value[start:i])
            start = i + 1
        i += 1
    items.append(value[start:])
    return items


@dataclass(frozen=True)
class Capture:
    """``capture <sample> len <length>`` (a new slot, numbered in rule order) or ``capture
    <sample> id <slot>`` (a slot declared by an earlier ``len`` capture): the sample as a
    string of at most :attr:`length` bytes, for ``capture.req.hdr(<slot>)``."""
    expr: SampleExpr
    length: int
    slot: int = 0
    by_id: bool = False


@dataclass(frozen=True)
class WaitForBody:
    """``wait-for-body time <time> [at-least <bytes>]``: hold the request until its body is
    complete, ``at-least`` bytes came or the buffer is full; 408 when ``time`` runs out."""
    time_ms: int
    at_least: int = 0


@dataclass(frozen=True)
class NoEffect:
    """An action HAProxy accepts that means nothing in a WSGI app (``set-log-level``,
    ``set-nice``, ``set-tos``, ``set-mark``, ``set-priority-class``, ``set-priority-offset``,
    ``strict-mode``): parsed with HAProxy's checks, then skipped (a warning says so)."""
    keyword: str
    args: tuple[str, ...] = ()
