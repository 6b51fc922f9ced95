"""Response heads already checked, for :class:`~spoe_sync.wsgi.SpoeWSGIHandler`.

gevent.pywsgi's ``start_response`` walks the header list twice for every response (types,
CR/LF scans and two latin-1 encodes per header, then the names lowered one by one) and its
``_write_with_headers`` appends the head to a bytearray piece by piece.  An application sends
the same few heads over and over (the same status, names and values: a fixed Content-Type, a
Content-Length from a small set), so :func:`plain_head` keeps what gevent's checks produce for
a head it has met before: the head's bytes, the encoded pairs and the values gevent looks
up.  A head met for the first time, or anything but a ``str`` status and a list of
``(str, str)`` tuples, is left to gevent's own code (``None``): its exact errors, its state.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Head", "plain_head"]

#: (head bytes "HTTP/1.1 <status>\r\n<name>: <value>\r\n"..., status bytes, code, gevent's
#: response_headers (latin-1 pairs), the last Connection, Date and Content-Length values as
#: gevent keeps them)
Head = tuple[bytes, bytes, int, tuple[tuple[bytes, bytes], ...], Any, Any, Any]

#: the heads met: hash((status, *headers)) -> ((status, *headers), head), or _ONCE for a
#: head met once: it is checked at its second coming (one that never comes again, such as one
#: with a request id, costs gevent's own checks and a look-up).  Bounded: emptied when full
_HEADS: dict[int, Any] = {}
_ONCE: Any = object()
_REFUSED: Any = object()  # a head not kept (refused, or too long): gevent's code every time
_MAX = 1024
#: the longest head kept (memory: at most _MAX of them, their strings, bytes and pairs)
_MAX_HEAD = 4096


def plain_head(status: Any, headers: Any) -> Head | None:
    """The head of a response met before, whose status and headers gevent's
    ``start_response`` accepts without an error; None when gevent has to decide (the first
    time, an unusual type, an error to raise).

    The heads are found by equality: a header item equal to a ``(str, str)`` tuple (a named
    tuple, a str subclass) gets that tuple's head, as gevent, which unpacks it, would give.
    """
    if type(status) is not str or type(headers) is not list:
        return None
    key = (status, *headers)
    try:
        hashed = hash(key)  # once: a tuple does not keep its hash
    except TypeError:  # an unhashable item (a list): not the plain kind
        return None
    known = _HEADS.get(hashed)
    if known is None:
        if len(_HEADS) >= _MAX:
            _HEADS.clear()
        _HEADS[hashed] = _ONCE
        return None
    if known is _ONCE:  # its second coming (or a head of the same hash: checked all the same)
        head = _check(status, headers)
        if head is None or len(head[0]) > _MAX_HEAD:
            # not kept: neither is its key (a long head met twice must not stay in memory);
            # the next one of this hash compares unequal and takes gevent's code
            _HEADS[hashed] = None, _REFUSED
            return None
        _HEADS[hashed] = key, head
    elif known[0] == key:
        head = known[1]
    else:  # another head of the same hash, or one not kept: gevent's code
        return None
    return head


def _check(status: str, headers: list[Any]) -> Head | None:
    """gevent's checks and encodings on the whole head at once, or None if it might raise."""
    try:
        # exact types only (an item a 2-tuple of str, immutable), else None breaks the join
        parts: list[Any] = [f"{p[0]}: {p[1]}\r\n"
                            if type(p) is tuple and len(p) == 2 and type(p[0]) is str
                            and type(p[1]) is str else None
                            for p in headers]
        lines = "".join(parts)
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
    connection = date = length = None
    for name, value in headers:  # gevent's own lookup: the last of each wins
        name = name.lower()
        if name == "connection":
            connection = value
        elif name == "date":
            date = value
        elif name == "content-length":
            length = value
    pairs = tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)
    return head, head[9:9 + len(status)], code, pairs, connection, date, length
