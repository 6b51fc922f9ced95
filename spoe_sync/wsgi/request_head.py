"""The request headers of :class:`~spoe_sync.wsgi.SpoeWSGIHandler`: gevent's header object,
filled without the e-mail parser when every line is a plain ``name: value``.

gevent.pywsgi parses each request's header block with :func:`http.client.parse_headers`, that
is the standard library's e-mail feed parser: about 10 µs for a single ``Host`` line and 20 µs
for a browser's few headers, the largest fixed cost of a small request.  The object it builds
(gevent's ``OldMessage``, an :class:`email.message.Message`) only holds a list of
``(name, value)`` pairs, so for the lines whose parse is plain (a name of the characters the
e-mail parser takes for one, a colon, a value of printable latin-1 text and tabs, the line
ending) the list is built here, exactly as the parser would build it (value stripped of the
spaces and tabs before it and of the line ending after it, trailing spaces kept).  Any other
block (a folded line, a line without a colon, control characters, more than 100 lines, a line
over 64 KiB, an early end of stream) goes to gevent's own parser, replayed from the first line:
what gevent accepts, refuses or repairs is decided by gevent's code alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from gevent import pywsgi

__all__ = ["environ_headers", "parse_head", "plain_message"]

# http.client's limits: one line, and lines in a header block
_MAXLINE = 65536
_MAXHEADERS = 100
# the e-mail parser's header name (email.feedparser.headerRE: printable, no colon), then the
# value as header_source_parse keeps it; \r, \n and the other controls (line breaks to some
# parsers) are left to the general path
_PLAIN = re.compile(rb"([\x21-\x39\x3b-\x7e]+):[ \t]*([\t\x20-\x7e\xa0-\xff]*)\r?\n")
# gevent's header class (a private name: without it, every block takes the general path)
_MESSAGE: Any = getattr(pywsgi, "OldMessage", None)
_IGNORED = ("CONTENT_TYPE", "CONTENT_LENGTH")


class _Replay:
    """``fp`` with the lines already read put back in front (for gevent's parser)."""

    __slots__ = ("fp", "lines")

    def __init__(self, lines: list[bytes], fp: Any) -> None:
        self.lines, self.fp = lines, fp

    def readline(self, limit: int = -1) -> bytes:
        if self.lines:
            return self.lines.pop(0)  # read with http.client's limit, as it would read it
        return self.fp.readline(limit)  # type: ignore[no-any-return]


if _MESSAGE is not None:
    class _PlainMessage(_MESSAGE):  # type: ignore[misc]
        """A header block parsed here (every line plain: see :func:`environ_headers`)."""

        def get(self, name: str, failobj: Any = None) -> Any:
            # Message.get without the policy's fetch step, which changes only values
            # holding surrogates (never one decoded from latin-1): gevent calls it 7 times
            name = name.lower()
            for key, value in self._headers:
                if key.lower() == name:
                    return value
            return failobj


def parse_head(fp: Any, general: Any) -> Any:
    """The header block read from ``fp``: gevent's header object, as ``general(fp)`` (gevent's
    ``MessageClass``) would make it."""
    if _MESSAGE is None:
        return general(fp)
    lines: list[bytes] = []
    pairs = []
    match = _PLAIN.fullmatch
    while True:
        line = fp.readline(_MAXLINE + 1)
        lines.append(line)
        if len(lines) > _MAXHEADERS:  # http.client counts the blank line too
            return general(_Replay(lines, fp))
        if line in (b"\r\n", b"\n"):
            break
        m = match(line) if len(line) <= _MAXLINE else None
        if m is None:  # not plain, too long, too many, or the end of the stream
            return general(_Replay(lines, fp))
        pairs.append((m[1].decode("latin-1"), m[2].decode("latin-1")))
    msg = _PlainMessage()
    msg._headers = pairs
    return msg


def plain_message(fields: list[tuple[bytes, bytes]]) -> Any:
    """gevent's header object for the fields of a plain head (``validity.plain_fields``: every
    line matched a pattern whose name and value groups are :data:`_PLAIN`'s), as
    :func:`parse_head` makes it from the same lines; None past http.client's line count (its
    line length is beyond HAProxy's buffer), or without gevent's header class."""
    if _MESSAGE is None or len(fields) >= _MAXHEADERS:  # the blank line counts too
        return None
    msg = _PlainMessage()
    msg._headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in fields]
    return msg


def environ_headers(msg: Any) -> Iterator[tuple[str, str]] | None:
    """``HTTP_*`` environ items of a block parsed by :func:`parse_head`, as gevent's
    ``WSGIHandler._headers`` yields them (None for a block of the general path: no folded
    lines to join here, no colon in a name)."""
    if _MESSAGE is None or type(msg) is not _PlainMessage:
        return None
    return _plain_items(msg._headers)


def _plain_items(pairs: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for name, value in pairs:
        if "_" in name:  # gevent drops them (CGI would make them alias dashed names)
            continue
        key = name.replace("-", "_").upper()
        if key not in _IGNORED:
            yield "HTTP_" + key, value.strip()
