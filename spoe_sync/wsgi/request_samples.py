"""The middleware's samples of a request: :class:`MiddlewareSamples`, the
:class:`~spoe_sync.rules.wsgisource.WSGISamples` of a plain environ built with less work.

Under a server that passes no raw request data (gevent's own handler, most servers), the
request behind ``path``, ``url``, ``method``... is rebuilt from the environ: the headers by
scanning every environ key for ``HTTP_*``, the request-target by escaping ``PATH_INFO`` with
:func:`urllib.parse.quote`.  Most requests read the path and never a header, and most paths
need no escaping, so here the scan waits for the first header read and a path made only of
characters ``quote`` leaves alone is the target as it is.  Everything else (a raw URI, raw
headers, a body, a path to escape) takes the general path, so both give the same request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..rules.sources import RequestInfo
from ..rules.wsgisource import (
    BODY_KEY,
    RAW_HEADERS_KEY,
    RAW_URI_KEY,
    WSGISamples,
    _environ_headers,
    _request_info,
    _str,
    _wire_text,
)

__all__ = ["MiddlewareSamples"]

# what quote(path, safe="/;=,:@!$&'()*+-._~") returns unchanged (it also keeps letters, digits
# and "_.-~"); "%" is not in it: PATH_INFO is decoded, a "%" in it must be escaped
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.\-~/;=,:@!$&'()*+]*\Z")
#: environ keys that make the general path build the target from them
_RAW_KEYS = (RAW_HEADERS_KEY, RAW_URI_KEY, "REQUEST_URI", "RAW_URI", BODY_KEY)


class _EnvironHeaders:
    """The environ's ``HTTP_*`` headers, scanned when first iterated."""

    __slots__ = ("environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(_environ_headers(self.environ))


class MiddlewareSamples(WSGISamples):
    """:class:`WSGISamples` with the plain-environ fast path (see the module)."""

    def _request(self, environ: Mapping[str, Any], body: bytes | None) -> RequestInfo:
        if body is not None or not environ.keys().isdisjoint(_RAW_KEYS):
            return super()._request(environ, body)
        path = _str(environ, "SCRIPT_NAME") + _str(environ, "PATH_INFO")
        if _PLAIN_PATH.match(path) is None:
            return super()._request(environ, body)
        query = _str(environ, "QUERY_STRING")
        target = (path or "/") + ("?" + query if query else "")
        return _request_info(_str(environ, "REQUEST_METHOD", "GET"), _wire_text(target),
                             _str(environ, "SERVER_PROTOCOL", "HTTP/1.1"),
                             _EnvironHeaders(environ), None)

    def settle(self) -> None:
        """Read the headers of a request already built, now: the app may edit the environ,
        and the response's fetches must see the request as it was before the app ran (as
        when the headers were read with the rest of the request)."""
        request = self.__dict__.get("request")
        if request is not None:
            request.headers  # noqa: B018 - resolves the lazy field
