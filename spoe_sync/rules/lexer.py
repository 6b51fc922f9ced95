"""Split one sample-expression word into its fetch, arguments and converters.

HAProxy's ``sample_parse_expr()``/``make_arg_list()``: a keyword is made of id characters
(alnum ``. _ - + :``); ``(`` opens an argument list that ``)`` closes; arguments are split on
``,``; single or double quotes group characters (so ``str('a,b')`` is one argument); after the
fetch come ``,converter[(args)]`` items.  The text given here is a config *word*: the config
tokenizer has already removed the quotes that surrounded it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ExpressionError

__all__ = ["Call", "is_idchar", "split_call", "split_expression"]


@dataclass(frozen=True)
class Call:
    """One keyword with its raw argument strings.

    :attr has_parens: ``True`` when written with parentheses (``str()`` vs ``str``).
    :attr position: offset of the keyword in the text.
    """

    name: str
    args: tuple[str, ...]
    has_parens: bool
    position: int


def is_idchar(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "._-+:")


def _read_args(text: str, pos: int, kind: str, kw: str) -> tuple[tuple[str, ...], int]:
    """Parse ``(a,b)`` starting just after ``(``; returns the args and the index after ``)``."""
    args: list[str] = []
    cur: list[str] = []
    quote = ""
    i = pos
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            else:
                cur.append(c)
        elif c in "'\"":
            quote = c
        elif c == ",":
            args.append("".join(cur))
            cur = []
        elif c == ")":
            args.append("".join(cur))
            if args == [""]:
                args = []
            return tuple(args), i + 1
        else:
            cur.append(c)
        i += 1
    if quote:
        raise ExpressionError(f"{kind} '{kw}' : unmatched quote in arguments", text, i)
    raise ExpressionError(f"{kind} '{kw}' : expected ')'", text, pos - 1)


def split_call(text: str, pos: int, kind: str) -> tuple[Call, int]:
    """Read ``name[(args)]`` at ``pos``.  ``kind`` is "fetch method" or "converter"."""
    end = pos
    while end < len(text) and is_idchar(text[end]):
        end += 1
    name = text[pos:end]
    if end < len(text) and text[end] == "(":
        args, after = _read_args(text, end + 1, kind, name)
        return Call(name, args, True, pos), after
    return Call(name, (), False, pos), end


def split_expression(text: str) -> tuple[Call, tuple[Call, ...]]:
    """Split ``fetch[(args)][,conv[(args)]]...`` (one word).

    Only the *shape* is checked here; names and argument types are checked by the caller.
    """
    if not text or not is_idchar(text[0]):
        raise ExpressionError("missing fetch method", text, 0)
    fetch, i = split_call(text, 0, "fetch method")
    convs: list[Call] = []
    last = fetch
    while i < len(text):
        if text[i] != ",":
            what = "converter" if convs else "fetch keyword"
            raise ExpressionError(f"missing comma after {what} '{last.name}'", text, i)
        while i < len(text) and text[i] == ",":
            i += 1
        if i >= len(text):
            break
        if not is_idchar(text[i]):
            raise ExpressionError(f"unknown converter '{text[i:]}'", text, i)
        last, i = split_call(text, i, "converter")
        convs.append(last)
    return fetch, tuple(convs)
