"""Request edits of :mod:`spoe_sync.wsgi`'s rules on a PEP 3333 environ: the request line
(``set-method``, ``set-path``, ``set-pathq``, ``set-query``, ``set-uri``), the client address
(``set-src``), header values (``replace-header``, ``replace-value``), capture slots
(``capture``) and body buffering (``wait-for-body``).

The request line is rewritten as HAProxy rewrites it, then the environ is rebuilt the way
gevent.pywsgi builds it from a request line: ``PATH_INFO`` is the path percent-decoded as
latin-1, ``QUERY_STRING`` what follows the first ``?``; ``spoe_sync.raw_uri`` and, when the
server set them, ``REQUEST_URI``/``RAW_URI`` get the new request-target.
"""

from __future__ import annotations

import re
import socket as _socket
from typing import Any
from urllib.parse import unquote

import gevent

from ..config.rule_lines.actions import Capture, ReplaceHeader, SetStartLine
from ..rules.casts import cast, to_bytes, to_text
from ..rules.fetches.capture import CAPTURES_KEY
from ..rules.wsgisource import BODY_KEY, RAW_HEADERS_KEY, RAW_URI_KEY
from .body import buffer_request_body
from .handler import client_socket
from .headers import environ_key, set_request_header

__all__ = ["CAPTURES_KEY", "capture", "replace_request_headers", "rewrite_request_line",
           "set_client_address", "wait_for_body"]

#: what gevent.pywsgi would refuse in a request line's method or target (it splits on spaces)
_BAD_WORD = re.compile(r"[\x00-\x20\x7f]")
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
#: tune.bufsize: wait-for-body stops waiting when this much body is buffered (buffer full)
BUFSIZE = 16384


def rewrite_request_line(environ: dict[str, Any], action: SetStartLine, new: str,
                         target: str) -> bool:
    """Apply ``action`` (its rendered value ``new``) to the request whose request-target is
    ``target``.

    :returns: ``False`` when the new request line is one gevent.pywsgi would refuse (an empty
        or blank-containing method or target): the caller answers 400, as the server would
        have; the environ is then left as it was.
    """
    part = action.part
    if part == "method":
        if not new or _BAD_WORD.search(new):
            return False
        environ["REQUEST_METHOD"] = new
        return True
    uri = action.target(target, new)
    if not uri or _BAD_WORD.search(uri):
        return False
    path, _, query = uri.partition("?")
    script = environ.get("SCRIPT_NAME") or ""
    decoded = unquote(path, encoding="latin-1")
    if script and decoded.startswith(script):
        decoded = decoded[len(script):]
    else:
        environ["SCRIPT_NAME"] = ""  # a mount point the new path is not under
    environ["PATH_INFO"] = decoded
    environ["QUERY_STRING"] = query
    environ[RAW_URI_KEY] = uri
    for key in ("REQUEST_URI", "RAW_URI"):
        if key in environ:
            environ[key] = uri
    authority = _AUTHORITY.match(uri) if part == "uri" else None
    if authority is not None and authority.group(1) != environ.get("HTTP_HOST"):
        # http_replace_req_uri(): a new authority becomes the Host header
        set_request_header(environ, "host", authority.group(1))
    return True


def set_client_address(environ: dict[str, Any], value: Any) -> bool:
    """``set-src``: ``REMOTE_ADDR`` becomes the sample's address (``REMOTE_PORT`` stays, as in
    HAProxy 2.6); a sample that is not an address changes nothing."""
    addr = cast(value, "addr")
    if addr is None:
        return False
    environ["REMOTE_ADDR"] = cast(addr, "str")  # inet_ntop form, as HAProxy writes it
    return True


def replace_request_headers(environ: dict[str, Any], action: ReplaceHeader, template: str) -> bool:
    """``replace-header``/``replace-value`` on the request headers (the raw header list when
    the server gave one, and the ``HTTP_*`` keys rebuilt from it as gevent joins them)."""
    name = action.name.lower()
    key = environ_key(name)
    raw = environ.get(RAW_HEADERS_KEY)
    if isinstance(raw, list):
        changed = False
        out = []
        for n, v in raw:
            if isinstance(n, str) and isinstance(v, str) and n.lower() == name:
                new = action.replace(v, template)
                changed |= new != v
                v = new
            out.append((n, v))
        if changed:
            environ[RAW_HEADERS_KEY] = out
            values = [v for n, v in out if isinstance(n, str) and n.lower() == name]
            environ[key] = ("; " if name == "cookie" else ",").join(values)
        return changed
    value = environ.get(key)
    if not isinstance(value, str):
        return False
    new = action.replace(value, template)
    environ[key] = new
    return new != value


def capture(environ: dict[str, Any], action: Capture, value: Any) -> None:
    """Store a sample in the request's capture slot (a string cut at ``len`` bytes, as
    HAProxy's capture buffers are); a failed sample leaves the slot alone."""
    text = cast(value, "str")
    if text is None or action.slot < 0:
        return
    data = to_bytes(str(text)).split(b"\0", 1)[0][:action.length]
    slots = environ.get(CAPTURES_KEY)
    if not isinstance(slots, list):
        slots = environ[CAPTURES_KEY] = []
    if len(slots) <= action.slot:
        slots.extend([None] * (action.slot + 1 - len(slots)))
    slots[action.slot] = to_text(data)


def wait_for_body(environ: dict[str, Any], at_least: int, time_ms: int) -> bool:
    """``wait-for-body``: buffer the body until it is complete, ``at_least`` bytes came (0: no
    minimum; then what has arrived besides is taken too, as HAProxy's buffer holds it) or
    :data:`BUFSIZE` bytes are held (HAProxy's buffer is full), for at most
    ``time_ms`` (0: no limit but the server's socket timeout).  Returns ``False`` when the time
    ran out first (HAProxy answers 408, then closes: the client socket is shut for reading
    where the server exposes it).  The app still reads the whole body."""
    want = min(at_least, BUFSIZE) if at_least else BUFSIZE
    held = environ.get(BODY_KEY)
    # an earlier buffering may hold more: never shrink what req.body already shows
    limit = max(want, len(held)) if isinstance(held, bytes) else want
    # Read in this greenlet: a client's abort or a malformed chunk then reaches the server
    # (which answers or closes quietly) instead of the hub's traceback printer.
    timeout = gevent.Timeout(time_ms / 1000) if time_ms else None
    if timeout is not None:
        timeout.start()
    try:
        buffer_request_body(environ, limit, BUFSIZE if at_least else 0)
    except gevent.Timeout as exc:
        if exc is not timeout:
            raise
        # HAProxy closes after its 408; the server would otherwise wait for the rest of the
        # body to discard it before closing (gevent.pywsgi does)
        sock = client_socket(environ)
        if sock is not None:
            try:
                sock.shutdown(_socket.SHUT_RD)
            except OSError:
                pass
        return False
    finally:
        if timeout is not None:
            timeout.close()
    return True
