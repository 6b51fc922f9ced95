"""HAProxy's parameter lists (``url_param``/``urlp``/``urlp_val``, ``req.body_param``):
``http_find_param_list()``, ``find_url_param_pos()`` and ``find_next_url_param()`` of
http_fetch.c / http.c, on text or bytes alike.

The list starts after the first ``delim`` of the whole request-target (``?`` by default, so
``url_param(x,;)`` reads what follows the first ``;``); parameters end at ``&``, ``;`` or
``delim`` (so ``/?c=a?b`` gives ``c`` = ``a``, and ``??a=1`` has a parameter ``a``); a value runs
from the ``=`` to the next delimiter.  The first match wins.  An empty name matches the first
``=`` of the list, whatever precedes it.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["find_param", "find_params", "param_list"]

S = TypeVar("S", str, bytes)


def param_list(text: S, delim: S) -> S | None:
    """``http_find_param_list()``: what follows the first ``delim``, ``None`` without one."""
    at = text.find(delim)
    return None if at < 0 else text[at + 1:]


def _is_delim(c: S, delim: S) -> bool:
    return c in (delim, "&", ";") if isinstance(c, str) else c in (delim, b"&", b";")


def _value(params: S, start: int, delim: S) -> tuple[S, int]:
    end = start
    while end < len(params) and not _is_delim(params[end:end + 1], delim):
        end += 1
    return params[start:end], end


def find_param(params: S, name: S, delim: S) -> S | None:
    """``find_next_url_param()`` from the list's start: the first value of ``name``."""
    found = _next(params, name, delim)
    return None if found is None else found[0]


def find_params(params: S, name: S, delim: S) -> list[S]:
    """Every value of ``name``, in order: what an ACL iterates over (``SMP_OPT_ITERATE``:
    each call goes on after the previous value)."""
    out: list[S] = []
    while (found := _next(params, name, delim)) is not None:
        out.append(found[0])
        params = params[found[1]:]
    return out


def _next(params: S, name: S, delim: S) -> tuple[S, int] | None:
    if not name:
        eq = params.find("=" if isinstance(params, str) else b"=")
        return None if eq < 0 else _value(params, eq + 1, delim)
    n, pos, last = len(name), 0, len(params)
    while pos < last:
        equal = pos + n
        if equal >= last:
            return None
        if params[equal:equal + 1] in ("=", b"="):
            if params[pos:equal] == name:
                return _value(params, equal + 1, delim)
            pos = equal + 1
        while pos < last and not _is_delim(params[pos:pos + 1], delim):
            pos += 1
        if pos >= last:
            return None
        pos += 1
    return None
