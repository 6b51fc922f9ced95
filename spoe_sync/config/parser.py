"""Reading a SPOE file the way HAProxy 2.6's ``readcfgfile()`` does for ``filter spoe``.

Every line of the file is tokenized (so a quoting error anywhere is an error), ``[name]``
lines switch the scope, the three SPOE section keywords switch the section, and only
lines of the selected scope are given to the section parsers (``engine=None`` selects
the lines outside any scope). Errors accumulate like ``haproxy -c``; the few that
HAProxy flags ``ERR_ABORT`` (bad section headers, junk after a scope) stop the reading.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from .drafts import Abort, Problems, ReaderState, ScopeDraft
from .lexer import MAX_LINE_ARGS, LexError, split_lines, tokenize
from .message import parse_group_line, parse_message_line
from .spoe_agent import KWM_DEF, KWM_NO, KWM_STD, parse_agent_line
from .syntax import invalid_char

__all__ = ["read_scope"]

_SECTIONS: dict[str, Callable[[list[str], int, int, ReaderState], None]] = {
    "spoe-agent": parse_agent_line,
    "spoe-message": parse_message_line,
    "spoe-group": parse_group_line,
}
# readcfgfile() accepts "no"/"default" only before these keywords
_NEGATABLE = ("option", "log", "busy-polling", "set-dumpable", "strict-limits",
              "insecure-fork-wanted", "numa-cpu-mapping")
_PAD = MAX_LINE_ARGS + 4


def read_scope(text: str, problems: Problems, engine: str | None, *,
               base_dir: str | None = None, env: Mapping[str, str] | None = None,
               require_final_lf: bool = False, bufsize: int = 16384) -> ScopeDraft:
    """Read ``text`` and return the sections of the selected scope.

    Problems (errors, warnings) are added to ``problems``; the caller decides.
    ``require_final_lf`` refuses a last line without LF, as HAProxy does for files (it
    takes it for a truncated file).
    """
    st = ReaderState(problems, ScopeDraft(), base_dir, bufsize)
    section: str | None = None
    cfg_scope: str | None = None
    conditions = _CondStack()
    try:
        for line in split_lines(text):
            lineno = line.lineno
            stripped = line.raw.lstrip(" \t\r\v\f")
            if stripped.startswith("["):
                # like readcfgfile(), before tokenizing and even inside a false .if
                cfg_scope = _parse_scope(stripped, lineno, st, cfg_scope)
                continue
            try:
                words = tokenize(line.raw, env)
            except LexError as exc:
                problems.error(exc.describe(line.raw), lineno)
                continue
            if not words:
                continue
            if words[0].startswith("."):
                conditions.handle(words, lineno, st, env)
                continue
            if not conditions.active:
                continue
            args, kwm = _shift_kwm(words)
            if kwm != KWM_STD and args[0] not in _NEGATABLE:
                problems.error("negation/default currently supported only for options, log, "
                               "busy-polling, set-dumpable, strict-limits, insecure-fork-wanted "
                               "and numa-cpu-mapping.", lineno)
            if not args[0]:
                continue  # a lone "no"/"default"
            if args[0] in _SECTIONS:
                section = args[0]
            if section is None:
                problems.error(f"unknown keyword '{args[0]}' out of section.", lineno)
                continue
            if cfg_scope != engine:
                continue
            _SECTIONS[section](args, kwm, lineno, st)
        conditions.finish(st, text.count("\n") + (0 if text.endswith("\n") else 1))
        last = text.rsplit("\n", 1)[-1]
        if require_final_lf and last:
            problems.error("Missing LF on last line, file might have been truncated at "
                           f"position {len(last) + 1}.", text.count("\n") + 1)
    except Abort:
        pass
    return st.scope


def _shift_kwm(words: list[str]) -> tuple[list[str], int]:
    """Drop a leading ``no``/``default`` like readcfgfile(), quirks included: after
    ``default`` the last word stays duplicated in the slot that frees up."""
    args = words + [""] * (_PAD - len(words))
    if args[0] == "no":
        n = len(words)
        return args[1:n] + [""] * (_PAD - n + 1), KWM_NO
    if args[0] == "default":
        n = len(words)
        return args[1:n] + [args[n - 1]] + [""] * (_PAD - n), KWM_DEF
    return args, KWM_STD


def _parse_scope(line: str, lineno: int, st: ReaderState, current: str | None) -> str | None:
    """HAProxy's ``cfg_parse_scope()``: ``[name]`` alone on its line."""
    end = line.find("]")
    if end <= 1:
        st.error("empty scope name is forbidden.", lineno)
        return current
    name = line[1:end]
    bad = invalid_char(name)
    if bad is not None:
        st.abort(f"character '{bad}' is not permitted in a scope name.", lineno)
    rest = line[end + 1 :].lstrip(" \t\n\r\v\f")
    if rest and rest[0] != "#":
        st.abort(f"character '{rest[0]}' is not permitted after scope declaration.", lineno)
    if name not in st.problems.scopes_seen:
        st.problems.scopes_seen.append(name)
    return name


class _CondStack:
    """``.if``/``.elif``/``.else``/``.endif`` blocks and ``.diag``/``.notice``/``.warning``/
    ``.alert`` messages of HAProxy's config reader, with single-term conditions."""

    def __init__(self) -> None:
        self._stack: list[tuple[bool, bool, int]] = []  # (active, taken, lineno)

    @property
    def active(self) -> bool:
        return all(a for a, _, _ in self._stack)

    def handle(self, words: list[str], lineno: int, st: ReaderState,
               env: Mapping[str, str] | None) -> None:
        kw = words[0]
        outer = all(a for a, _, _ in self._stack[:-1]) if kw in (".elif", ".else", ".endif") \
            else self.active
        if kw in (".else", ".endif") and len(words) > 1:
            # fatal in HAProxy: the reading stops here
            st.error(f"Unexpected argument '{words[1]}' for '{kw}'.", lineno)
            if self._stack:
                st.error("non-terminated '.if' block.", lineno)
            raise Abort(kw)
        if kw == ".if":
            value = outer and _eval_cond(words[1:], lineno, st, env)
            self._stack.append((value, value, lineno))
        elif kw in (".elif", ".else"):
            if not self._stack:
                st.error(f"lone '{kw}' with no matching '.if'.", lineno)
                return
            _, taken, start = self._stack.pop()
            value = (not taken and outer
                     and (kw == ".else" or _eval_cond(words[1:], lineno, st, env)))
            self._stack.append((value, taken or value, start))
        elif kw == ".endif":
            if not self._stack:
                st.error("lone '.endif' with no matching '.if'.", lineno)
                return
            self._stack.pop()
        elif not self.active:
            return
        elif kw == ".alert":
            st.error(f"'{' '.join(words[1:])}'.", lineno)
        elif kw in (".diag", ".notice", ".warning"):
            if kw == ".warning":
                st.problems.warn(f"'{' '.join(words[1:])}'.", lineno)
        else:
            st.error(f"unknown directive '{kw}'", lineno)

    def finish(self, st: ReaderState, last_lineno: int) -> None:
        if self._stack:
            st.error("non-terminated '.if' block.", last_lineno)


def _eval_cond(words: list[str], lineno: int, st: ReaderState,
               env: Mapping[str, str] | None) -> bool:
    """A ``.if`` expression: terms joined by ``&&``/``||`` (``&&`` binds tighter), each an
    optional ``!`` and a number or one of ``defined() feature() streq() strneq()
    version_atleast() version_before()``."""
    environ = os.environ if env is None else env
    text = " ".join(words).strip()
    result = False
    for alternative in text.split("||"):
        value = True
        for term in alternative.split("&&"):
            term = term.strip()
            term_value = _eval_term(term, environ)
            if term_value is None:
                st.error(f"unparsable conditional expression '{term}' in '.if' at position 1",
                         lineno)
                return False
            value = value and term_value
        result = result or value
    return result


def _eval_term(term: str, environ: Mapping[str, str]) -> bool | None:
    negate = term.startswith("!")
    term = term.lstrip("!").strip()
    value: bool | None
    if term.isdigit():
        value = int(term) != 0
    elif term == "":
        value = False
    elif not term.endswith(")") or "(" not in term:
        return None
    else:
        name, _, arg = term[:-1].partition("(")
        if name == "defined":
            value = arg in environ  # HAProxy does not trim: "defined( X )" is false
        elif name in ("streq", "strneq"):
            left, _, right = arg.partition(",")
            value = (left == right) == (name == "streq")
        elif name == "feature":
            value = False
        elif name in ("version_atleast", "version_before"):
            value = _eval_version(name, arg.strip())
        else:
            return None
    return value != negate


def _eval_version(name: str, arg: str) -> bool:
    mine = (2, 6, 12)
    want = tuple(int(p) for p in arg.split("-")[0].split(".") if p.isdigit())
    return mine >= want if name == "version_atleast" else mine < want
