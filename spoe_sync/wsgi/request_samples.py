"""The middleware's samples of a request: :class:`MiddlewareSamples`, the
:class:`~spoe_sync.rules.wsgisource.WSGISamples` of a plain environ built with less work.

Under a server that passes no raw request data (gevent's own handler, most servers), the
request behind ``path``, ``url``, ``method``... is rebuilt from the environ: the headers by
scanning every environ key for ``HTTP_*``, the request-target by escaping ``PATH_INFO`` with
:func:`urllib.parse.quote`.  Most requests read the path and never a header, and most paths
need no escaping, so here the scan waits for the first header read and a path made only of
characters ``quote`` leaves alone is the target as it is.  Under
:class:`~spoe_sync.wsgi.SpoeWSGIHandler` (raw headers and URI in the environ) the raw headers
are checked when first read too.  Everything else (a body, a path to escape, an absolute-form
target, whose Host header HAProxy rewrites, a URI from another server's key) takes the general
path, so both give the same request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..rules.sources import DEFAULT_BUFSIZE
from ..rules.wsgisource import (
    BODY_KEY,
    RAW_HEADERS_KEY,
    RAW_URI_KEY,
    WSGISamples,
    _environ_headers,
    _Lazy,
    _str,
    _valid_headers,
    _wire_text,
    _WSGIRequest,
)

__all__ = ["MiddlewareSamples", "new_samples"]

_new = object.__new__

# what quote(path, safe="/;=,:@!$&'()*+-._~") returns unchanged (it also keeps letters, digits
# and "_.-~"); "%" is not in it: PATH_INFO is decoded, a "%" in it must be escaped
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.\-~/;=,:@!$&'()*+]*\Z")
#: environ keys the general path would build the target from
_URI_KEYS = (RAW_URI_KEY, "REQUEST_URI", "RAW_URI")


class MiddlewareSamples(WSGISamples):
    """:class:`WSGISamples` with the fast paths of the module."""

    @_Lazy
    def request(self) -> Any:
        # WSGISamples.request with the fast paths: read once per request (one frame less
        # than a lazy field calling an overridden _request())
        environ = self.environ
        body = self.__dict__.get("_body")
        if body is None and BODY_KEY not in environ:
            raw = environ.get(RAW_HEADERS_KEY)
            target: str | None = None
            # the header pairs are made by make(arg) when first read (_WSGIRequest)
            make: Callable[[Any], list[tuple[Any, Any]]]
            arg: Any
            if raw is None:  # a plain environ
                path = _str(environ, "SCRIPT_NAME") + _str(environ, "PATH_INFO")
                if environ.keys().isdisjoint(_URI_KEYS) and _PLAIN_PATH.match(path):
                    query = _str(environ, "QUERY_STRING")
                    target = (path or "/") + ("?" + query if query else "")
                    make, arg = _environ_headers, environ
            elif isinstance(raw, (list, tuple)):  # SpoeWSGIHandler's raw headers and URI
                uri = environ.get(RAW_URI_KEY)
                if isinstance(uri, str) and uri:
                    target, make, arg = uri, _valid_headers, raw
            if target is not None and target[0] == "/":
                # (an absolute-form target, "http://h:80/a", is normalised with its Host
                # header by the general path: htx_target())
                # _request_info(), _str() and _wire_text()'s ASCII case, written out
                method, version = environ.get("REQUEST_METHOD"), environ.get("SERVER_PROTOCOL")
                req = _new(_WSGIRequest)
                req.__dict__.update(
                    method=method if isinstance(method, str) else "GET",
                    target=target if target.isascii() else _wire_text(target),
                    version=version if isinstance(version, str) else "HTTP/1.1",
                    body=None, _raw=arg, _make=make)
                return req
        return self._request(environ, body)

    def settle(self) -> None:
        """Read the headers of a request already built, now: the app may edit the environ,
        and the response's fetches must see the request as it was before the app ran (as
        when the headers were read with the rest of the request)."""
        request = self.__dict__.get("request")
        if request is not None:
            request.headers  # noqa: B018 - resolves the lazy field



def new_samples(environ: dict[str, Any]) -> MiddlewareSamples:
    """``MiddlewareSamples(environ)``, its ``__init__`` written out (the fields of a request
    with no response, body, unique id or TLS flag given: those are read from ``environ``):
    one per request."""
    samples: Any = _new(MiddlewareSamples)
    # attribute stores, not through __dict__: no dict is made until a lazy field is read
    samples.environ = environ
    samples.bufsize = DEFAULT_BUFSIZE
    samples.response = None
    samples.frontend_id = None
    return samples  # type: ignore[no-any-return]
