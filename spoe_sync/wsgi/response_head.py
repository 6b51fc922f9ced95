"""The common response head in one pass, for :class:`~spoe_sync.wsgi.SpoeWSGIHandler`.

gevent.pywsgi's ``start_response`` walks the header list twice per response (types, CR/LF
scans and two latin-1 encodes per header, then the names lowered one by one) and its
``_write_with_headers`` appends the head to a bytearray piece by piece.  :func:`plain_head`
does the same checks on the whole head at once, for the common case only: a ``str`` status
and a list of ``(str, str)`` tuples.  Whatever it cannot prove plain (another type, a CR or
LF, a non-latin-1 character, a status without a numeric code) it refuses with ``None``, and
the handler takes gevent's own code, which raises gevent's exact error.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Head", "encode_pairs", "plain_head"]

#: the heads already checked, by (status, *headers): an app sends the same few heads over
#: and over.  Only heads of exact str in exact tuples are stored; bounded (emptied when full)
_HEADS: dict[tuple[Any, ...], Head] = {}
_HEADS_MAX = 512

#: (head bytes "HTTP/1.1 <status>\r\n<name>: <value>\r\n"..., status bytes, code, the
#: headers as given (a tuple of (str, str) tuples), the last Connection, Date and
#: Content-Length values as gevent keeps them)
Head = tuple[bytes, bytes, int, tuple[tuple[str, str], ...], Any, Any, Any]


def plain_head(status: Any, headers: Any) -> Head | None:
    """The head of a response whose status and headers gevent's ``start_response`` accepts
    without an error, or None when it might raise (or when the input is not the plain kind:
    then gevent decides)."""
    if type(status) is not str or type(headers) is not list:
        return None
    key = (status, *headers)
    try:
        return _HEADS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable item (a list): not the plain kind
        return None
    head = _check(status, headers)
    if head is not None:
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        _HEADS[key] = head
    return head


def _check(status: str, headers: list[Any]) -> Head | None:
    try:
        # exactly gevent's checks, on exact types only: an item is a 2-tuple of str (an
        # immutable snapshot of it is kept for response_headers), else None breaks the join
        lines = "".join([f"{p[0]}: {p[1]}\r\n"
                         if type(p) is tuple and len(p) == 2 and type(p[0]) is str
                         and type(p[1]) is str else None
                         for p in headers])
    except TypeError:
        return None
    text = f"HTTP/1.1 {status}\r\n{lines}"
    # one CR and one LF per line are ours: any more is in the status, a name or a value
    crlf = len(headers) + 1
    if text.count("\n") != crlf or text.count("\r") != crlf:
        return None
    try:
        head = text.encode("latin-1")
        code = int(status.split(" ", 1)[0])
    except (UnicodeEncodeError, ValueError):
        return None
    snapshot = tuple(headers)
    connection = date = length = None
    low = lines.lower()
    if "connection" in low or "date" in low or "content-length" in low:
        # gevent's own loop (the last of each wins); most heads name none of them
        for name, value in snapshot:
            name = name.lower()
            if name == "connection":
                connection = value
            elif name == "date":
                date = value
            elif name == "content-length":
                length = value
    return head, head[9:9 + len(status)], code, snapshot, connection, date, length


def encode_pairs(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    """gevent's ``response_headers`` of a head :func:`plain_head` accepted: the pairs in
    latin-1 (cannot fail: the whole head was encoded)."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
