"""HAProxy's configuration line tokenizer (``parse_line()`` of HAProxy 2.6), in Python.

A SPOE file is read by HAProxy's own config reader, so its words follow the same rules:

* blanks (space, tab, CR, ...) separate words; ``#`` outside quotes starts a comment;
* ``'...'`` quotes everything literally; ``"..."`` keeps blanks and ``#`` and expands
  ``$NAME`` / ``${NAME}`` / ``${NAME-default}`` from the environment (unset = empty),
  and ``${NAME[*]}`` into one word per blank-separated item;
  quotes may appear anywhere in a word and are removed (``ua="req.fhdr(User-Agent)"``);
* outside single quotes a backslash escapes ``\\ \\<space> \\# \\' \\"`` (and ``\\$`` inside
  double quotes), ``\\t \\n \\r`` become control characters, ``\\xHH`` a byte; any other
  backslash is kept as is;
* at most 64 words per line.

Errors carry HAProxy's wording and a 1-based column.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["MAX_LINE_ARGS", "LexError", "Line", "split_lines", "tokenize"]

MAX_LINE_ARGS = 64
_BLANKS = " \t\n\r\v\f"
_HEX = "0123456789abcdefABCDEF"


class LexError(ValueError):
    """A line that HAProxy's tokenizer refuses; ``column`` is 1-based."""

    def __init__(self, message: str, column: int | None = None, show_line: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.show_line = show_line

    def describe(self, line: str) -> str:
        """HAProxy's wording: the message, the position, and the line for most errors."""
        where = f" at position {self.column}" if self.column else ""
        if not self.show_line:
            return f"{self.message}{where}."
        return f"{self.message}{where}: {line.strip()}"


@dataclass(frozen=True)
class Line:
    """One logical configuration line.

    :attr lineno: 1-based line number in the file.
    :attr raw: the text of the line, without its end-of-line.
    """

    lineno: int
    raw: str


def split_lines(text: str) -> Iterator[Line]:
    """Yield every physical line with its number (HAProxy has no line continuation)."""
    for number, raw in enumerate(text.split("\n"), start=1):
        yield Line(number, raw)


def _is_env_first(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_env_char(c: str) -> bool:
    return _is_env_first(c) or ("0" <= c <= "9")


def tokenize(line: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Split one configuration line into words, the way HAProxy 2.6 does.

    :raises LexError: unmatched quote, bad ``\\x`` sequence, bad environment variable
        syntax, or more than :data:`MAX_LINE_ARGS` words.
    """
    environ = os.environ if env is None else env
    nul = line.find("\0")
    if nul >= 0:
        raise LexError("Stray NUL character", nul + 1, show_line=False)
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    squote = dquote = False
    quote_col = 0
    i, n = 0, len(line)

    def end_word() -> None:
        nonlocal in_word
        if in_word:
            words.append("".join(cur))
            cur.clear()
            in_word = False

    while i < n:
        c = line[i]
        if not squote and not dquote and c in _BLANKS:
            end_word()
            i += 1
            continue
        if c == "'" and not dquote:
            squote = not squote
            quote_col = i + 1
            in_word = True
            i += 1
            continue
        if c == '"' and not squote:
            dquote = not dquote
            quote_col = i + 1
            in_word = True
            i += 1
            continue
        if c == "#" and not squote and not dquote:
            break
        in_word = True
        if c == "\\" and not squote:
            nxt = line[i + 1] if i + 1 < n else ""
            if nxt in (" ", "\\", "#", "'", '"'):
                cur.append(nxt)
                i += 2
                continue
            if nxt == "$" and dquote:
                cur.append("$")
                i += 2
                continue
            if nxt in ("t", "n", "r"):
                cur.append({"t": "\t", "n": "\n", "r": "\r"}[nxt])
                i += 2
                continue
            if nxt == "x":
                hexa = line[i + 2 : i + 4]
                if len(hexa) != 2 or hexa[0] not in _HEX or hexa[1] not in _HEX:
                    raise LexError("truncated or invalid hexadecimal sequence", i + 1)
                cur.append(chr(int(hexa, 16)))
                i += 4
                continue
            cur.append("\\")
            i += 1
            continue
        if c == "$" and dquote:
            pieces: list[str] = []
            i = _expand_env(line, i, environ, pieces)
            cur.append(pieces[0])
            for piece in pieces[1:]:  # "${NAME[*]}": one word per blank-separated item
                words.append("".join(cur))
                cur[:] = [piece]
            continue
        cur.append(c)
        i += 1

    if squote or dquote:
        raise LexError("unmatched quote", quote_col)
    end_word()
    if len(words) > MAX_LINE_ARGS:
        raise LexError(f"too many words, truncating after word {MAX_LINE_ARGS}, "
                       f"position {len(line)}: <{words[MAX_LINE_ARGS]}>", show_line=False)
    return words


def _expand_env(line: str, i: int, environ: Mapping[str, str], out: list[str]) -> int:
    """Expand the variable whose ``$`` is at ``line[i]``; return the index after it."""
    j = i + 1
    braced = j < len(line) and line[j] == "{"
    if braced:
        j += 1
    start = j
    if j >= len(line) or not _is_env_first(line[j]):
        # HAProxy points at the offending character ('{' when the name is empty)
        raise LexError("forbidden first char in environment variable name", j + 1)
    while j < len(line) and _is_env_char(line[j]):
        j += 1
    name = line[start:j]
    default: str | None = None
    split = False
    if braced:
        if line[j : j + 3] == "[*]":
            split = True
            j += 3
        if j < len(line) and line[j] == "-":
            close = line.find("}", j)
            if close < 0:
                raise LexError("unmatched brace in environment variable name", start)
            default = line[j + 1 : close]
            j = close
        if j >= len(line) or line[j] != "}":
            raise LexError("unmatched brace in environment variable name", start)
        j += 1
    value = environ.get(name)
    if value is None:
        value = default or ""
    if split:
        out.extend(value.split() or [""])
    else:
        out.append(value)
    return j
