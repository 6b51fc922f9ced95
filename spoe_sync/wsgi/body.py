"""Request and response body buffering of :mod:`spoe_sync.wsgi`: ``option
http-buffer-request`` / ``wait-for-body`` on ``wsgi.input``, ``res.body`` from the app's
iterable, and the iterable handed back to the server.
"""

from __future__ import annotations

import errno
import io
from collections.abc import Iterator
from typing import Any

from gevent import pywsgi

from ..rules.wsgisource import BODY_KEY, LOCAL_ADDR_KEY, socket_local

__all__ = ["BODY_KEY", "Body", "buffer_request_body", "buffer_response", "close_result"]

# gevent.pywsgi's error for a malformed request body (answered 400 by the server)
_BAD_INPUT: Any = getattr(pywsgi, "_InvalidClientInput", ())


class _PrefixedInput(io.RawIOBase):
    """``wsgi.input`` for a body read in part: the buffered bytes, then the rest."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self._prefix = io.BytesIO(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._prefix.read() + (self._rest.read() or b"")
        data = self._prefix.read(size)
        if len(data) < size:
            data += self._rest.read(size - len(data)) or b""
        return data

    def readline(self, size: int | None = -1) -> bytes:
        line = self._prefix.readline(-1 if size is None else size)
        if line.endswith(b"\n") or (size is not None and 0 <= size <= len(line)):
            return line
        more = self._rest.readline() if size is None or size < 0 else \
            self._rest.readline(size - len(line))
        return line + (more or b"")

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def _arrived(inp: Any, room: int) -> int:
    """How many bytes of a Content-Length body under gevent.pywsgi's ``wsgi.input`` can be
    read now without waiting, at most ``room``: what the server's buffer holds, else what one
    read of the socket finds (0 for other inputs, or chunked ones, whose buffer holds chunk
    framing, not body bytes)."""
    if not isinstance(inp, pywsgi.Input) or inp.chunked_input or room <= 0:
        return 0
    left = (inp.content_length or 0) - inp.position
    rfile = inp.rfile
    sock = getattr(getattr(rfile, "raw", None), "_sock", None)
    if left <= 0 or sock is None:
        return 0
    # peek() returns the buffered bytes, or does one read of the socket when there are none:
    # with the timeout at 0 that read finds what has arrived, or nothing, and never waits
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        ready = len(rfile.peek(1))
    except (OSError, ValueError):  # the client went away: the app's read will tell
        return 0
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass
    return min(ready, left, room)


def buffer_request_body(environ: dict[str, Any], limit: int, arrived: int = 0) -> bytes:
    """Read up to ``limit`` bytes of the request body (``option http-buffer-request``), put
    them in ``spoe_sync.body`` for ``req.body`` and give the app an equivalent ``wsgi.input``.

    A body larger than ``limit`` is truncated for ``req.body``, as HAProxy's buffer does;
    the app still reads all of it (the buffered part, then the rest from the client).

    With ``arrived`` (``wait-for-body ... at-least``, ``limit`` being the at-least), once
    ``limit`` bytes are in, what has already arrived of the rest is taken too, up to
    ``arrived`` bytes in all, without waiting: HAProxy's ``req.body`` then holds whatever its
    buffer got (under gevent.pywsgi, for a Content-Length body: :func:`_arrived`).
    """
    length_text = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    try:
        length: int | None = int(length_text) if length_text else (None if chunked else 0)
    except ValueError:
        length = None
    inp = environ.get("wsgi.input")
    if inp is None or length == 0:
        environ[BODY_KEY] = b""
        return b""
    want = limit if length is None else min(length, limit)
    parts: list[bytes] = []
    got = 0
    extra = b""
    try:
        while got < want:
            data = inp.read(want - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        if length is None and got >= want:
            extra = inp.read(1) or b""  # is there more than the buffer holds?
        if arrived and length is not None and got >= want:
            cap = min(length, arrived)
            while got < cap:
                ready = _arrived(inp, cap - got)
                data = inp.read(ready) if ready else b""
                if not data:
                    break
                parts.append(data)
                got += len(data)
    except _BAD_INPUT:
        raise  # a malformed body: the server answers 400, as HAProxy does
    except OSError:
        # The client went away mid-body: HAProxy aborts the stream (CD in its log) and has
        # nobody to answer; EPIPE makes the server close the connection quietly.
        raise OSError(errno.EPIPE, "client aborted while its body was buffered") from None
    body = b"".join(parts)
    if LOCAL_ADDR_KEY not in environ:  # dst reads the socket under the input replaced below
        local = socket_local(environ)
        if local is not None:
            environ[LOCAL_ADDR_KEY] = local
    complete = (length is not None and got >= length) or (length is None and not extra) or (
        length is not None and got < want)
    environ["wsgi.input"] = io.BytesIO(body) if complete else _PrefixedInput(body + extra, inp)
    environ[BODY_KEY] = body
    return body


def buffer_response(head: list[bytes], chunks: Iterator[bytes],
                    limit: int) -> tuple[list[bytes], bytes, Iterator[bytes]]:
    got = sum(len(c) for c in head)
    while got < limit:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        head.append(chunk)
        got += len(chunk)
    return head, b"".join(head)[:limit], chunks


def close_result(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class Body:
    """The app's body: the chunks read ahead, then the rest; closes the app's iterable."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], result: Any) -> None:
        self._head, self._rest, self._result = head, rest, result

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        close_result(self._result)
