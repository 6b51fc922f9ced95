"""HAProxy's regular expressions (PCRE2 in Debian's HAProxy 2.6) on Python's ``re``.

The two dialects agree on everything configs usually write, but not on a few PCRE
constructs, and Python would read some of those silently as something else (``[[:digit:]]``
is the set ``[:digit`` followed by ``]`` to Python).  :func:`compile_pcre` translates what has
an exact Python equivalent (POSIX classes inside brackets, ``(?<name>...)`` groups and
``\\k<name>`` references, ``\\Q...\\E`` quoting, ``\\z``, ``\\Z``, ``\\h``, ``\\v``, the
literal ``{,n}`` of PCRE2 10.42), matches in ASCII mode as PCRE on bytes does, and refuses,
with a clear error, what would otherwise match differently (a pattern Python flags with a
``FutureWarning``, inline flags after the start, unknown or misplaced POSIX classes).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

__all__ = ["compile_pcre", "translate_pcre"]

_POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "word": "\\w",
    "punct": "!-/:-@\\[-`{-~", "cntrl": "\\x00-\\x1f\\x7f", "print": "\\x20-\\x7e",
    "graph": "\\x21-\\x7e", "ascii": "\\x00-\\x7f",
}
_POSIX_RE = re.compile(r"\[([:.=])(\^?)([A-Za-z]*)\1\]")
# PCRE escapes Python reads differently (or not at all), outside and inside a class.
_ESCAPES = {"z": "\\Z", "Z": "(?=\\n?\\Z)", "h": "[ \\t\\xa0]", "v": "[\\n\\x0b\\f\\r\\x85]"}
_CLASS_ESCAPES = {"h": " \\t\\xa0", "v": "\\n\\x0b\\f\\r\\x85"}
_BACKREF_RE = re.compile(r"\\k(?:<(\w+)>|\{(\w+)\}|'(\w+)')")


def translate_pcre(pattern: str) -> str:
    """The Python ``re`` text for a PCRE pattern.

    :raises re.error: a PCRE construct with no exact Python equivalent.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if not in_class and pattern.startswith("\\Q", i):
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end
                out.append(re.escape(pattern[i + 2:end]))
                i = end + 2
                continue
            letter = pattern[i + 1:i + 2]
            backref = None if in_class else _BACKREF_RE.match(pattern, i)
            if backref is not None:
                out.append(f"(?P={backref.group(1) or backref.group(2) or backref.group(3)})")
                i = backref.end()
                continue
            table = _CLASS_ESCAPES if in_class else _ESCAPES
            out.append(table.get(letter, pattern[i:i + 2]))
            i += 2
            continue
        if not in_class and c == "[" and _POSIX_RE.match(pattern, i) is not None:
            raise re.error("POSIX named classes are supported only within a class", pattern, i)
        if in_class:
            if c == "[":
                m = _POSIX_RE.match(pattern, i)
                if m is not None:
                    if m.group(1) != ":":
                        raise re.error(f"POSIX collating elements are not supported "
                                       f"('{m.group(0)}')", pattern, i)
                    if m.group(3) not in _POSIX:
                        raise re.error(f"unknown POSIX class name '{m.group(3)}'", pattern, i)
                    if m.group(2):
                        raise re.error(f"negated POSIX class '{m.group(0)}' is not supported",
                                       pattern, i)
                    out.append(_POSIX[m.group(3)])
                    i = m.end()
                    continue
                out.append("\\[")  # a literal '[' in a class, as PCRE reads it
            elif c in "&~|":
                out.append("\\" + c)  # '&&', '~~', '||' are set operations to come in re
            else:
                if c == "]":
                    in_class = False
                out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # ']' first in a class is a literal
                out.append("\\]")
                i += 1
            continue
        if c == "{" and pattern.startswith("{,", i):
            out.append("\\{")  # PCRE2 10.42 (Debian 12's) reads '{,n}' literally
            i += 1
            continue
        if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
            out.append("(?P<")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def compile_pcre(pattern: str | bytes, flags: int = 0) -> re.Pattern[Any]:
    """``re.compile`` of a PCRE pattern (see the module docstring).

    :raises re.error: an invalid pattern, or one Python would not match as PCRE does.
    """
    text = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
    translated = translate_pcre(text)
    source: str | bytes = (translated.encode("latin-1") if isinstance(pattern, bytes)
                           else translated)
    if not isinstance(pattern, bytes):
        # HAProxy's PCRE runs on bytes without Unicode properties: \w, \d and case folding
        # know ASCII only (bytes patterns already do)
        flags |= re.ASCII
    with warnings.catch_warnings():
        # FutureWarning: a construct re will read differently (nested sets); Python 3.10
        # only warns (DeprecationWarning) where later versions refuse (late inline flags)
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return re.compile(source, flags)
        except (FutureWarning, DeprecationWarning) as exc:
            raise re.error(f"not read by Python's re as PCRE reads it ({exc})", text) from None
