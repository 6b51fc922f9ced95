"""Samples of a WSGI request (PEP 3333 environ), with the raw data a server can add.

A plain environ loses what HAProxy's fetches see: header order, duplicates and spelling, the raw
request-target, the local address.  A server that has them passes them in these environ keys
(:func:`handler_environ` fills them from a gevent.pywsgi ``WSGIHandler``; see
``spoe_sync.samples.SpoeWSGIHandler``):

``spoe_sync.raw_headers``  ``[(name, value), ...]`` in arrival order, original case
``spoe_sync.raw_uri``      the request-target exactly as received
``spoe_sync.local_addr``   ``(ip, port)`` of the accepting socket (``dst``, ``dst_port``)
``spoe_sync.body``         the buffered request body (bytes) for ``req.body``
``spoe_sync.unique_id``    the stream's unique id (``unique-id``)

Without them: headers come from ``HTTP_*``/``CONTENT_TYPE``/``CONTENT_LENGTH`` (order of the
environ, duplicates already joined by the server), the target is rebuilt from ``PATH_INFO`` and
``QUERY_STRING`` (so ``query`` cannot tell "no ?" from "? and nothing"), and ``dst`` is known
only when ``SERVER_NAME`` is an IP address.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from ipaddress import ip_address
from typing import Any
from urllib.parse import quote

from .hdrs import htx_target
from .sources import (
    DEFAULT_BUFSIZE,
    RequestInfo,
    ResponseInfo,
    SampleSource,
    haproxy_body_limit,
    normalize_headers,
    to_address,
)

__all__ = ["RAW_HEADERS_KEY", "RAW_URI_KEY", "WSGISamples", "handler_environ", "socket_local"]

RAW_HEADERS_KEY = "spoe_sync.raw_headers"
RAW_URI_KEY = "spoe_sync.raw_uri"
LOCAL_ADDR_KEY = "spoe_sync.local_addr"
BODY_KEY = "spoe_sync.body"
UNIQUE_ID_KEY = "spoe_sync.unique_id"


def handler_environ(handler: Any) -> dict[str, Any]:
    """The ``spoe_sync.*`` environ keys from a gevent.pywsgi ``WSGIHandler`` (duck-typed: reads
    ``handler.headers._headers``, ``handler.path`` and ``handler.socket.getsockname()``)."""
    out: dict[str, Any] = {}
    raw = getattr(getattr(handler, "headers", None), "_headers", None)
    if isinstance(raw, list):
        out[RAW_HEADERS_KEY] = [(str(n), str(v)) for n, v in raw]
    path = getattr(handler, "path", None)
    if isinstance(path, str):
        out[RAW_URI_KEY] = path
    sock = getattr(handler, "socket", None)
    try:
        local = sock.getsockname() if sock is not None else None
    except OSError:
        local = None
    if isinstance(local, tuple):
        out[LOCAL_ADDR_KEY] = local[:2]
    return out


def _str(environ: Mapping[str, Any], key: str, default: str = "") -> str:
    """An environ value that is text, else ``default`` (a broken server must not break us)."""
    value = environ.get(key)
    return value if isinstance(value, str) else default


def _environ_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in environ.items():
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            out.append((key[5:].replace("_", "-").lower(), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            out.append((key.replace("_", "-").lower(), value))
    return out


def _valid_headers(raw: list[Any] | tuple[Any, ...]) -> list[tuple[Any, Any]]:
    return [(h[0], h[1]) for h in raw if isinstance(h, (tuple, list)) and len(h) == 2
            and isinstance(h[0], (str, bytes)) and isinstance(h[1], (str, bytes))]


def _target(environ: Mapping[str, Any]) -> str:
    for key in (RAW_URI_KEY, "REQUEST_URI", "RAW_URI"):
        value = environ.get(key)
        if isinstance(value, str) and value:
            return value
    path = _str(environ, "SCRIPT_NAME") + _str(environ, "PATH_INFO")
    raw = quote(path.encode("latin-1", "replace"), safe="/;=,:@!$&'()*+-._~") or "/"
    query = _str(environ, "QUERY_STRING")
    return raw + ("?" + query if query else "")


def _wire_text(target: str) -> str:
    """A PEP 3333 string (bytes as latin-1) as the text whose UTF-8 encoding with
    ``surrogateescape`` (how a STRING goes on the wire) gives those bytes back: HAProxy's
    ``path`` of ``GET /\xc3\xa9`` is those two bytes, not their UTF-8 encoding again."""
    if target.isascii():
        return target
    try:
        return target.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # not a PEP 3333 string: already text
        return target


def _local(environ: Mapping[str, Any]) -> tuple[Any, int | None] | None:
    addr = to_address(environ.get(LOCAL_ADDR_KEY))
    if addr is None:
        addr = socket_local(environ)
    if addr is not None:
        return addr
    port: int | None
    try:
        port = int(_str(environ, "SERVER_PORT"))
    except ValueError:
        port = None
    host: Any = _str(environ, "SERVER_ADDR") or _str(environ, "SERVER_NAME")
    try:
        host = ip_address(str(host))
    except ValueError:
        host = None
    return None if host is None and port is None else (host, port)


def socket_local(environ: Mapping[str, Any]) -> Any:
    """``dst`` from the client socket when the server does not tell it: gunicorn's
    ``gunicorn.socket``, or the socket under gevent.pywsgi's ``wsgi.input`` (its ``rfile`` is
    the connection's file object).  SERVER_NAME is a host name, not the address connected to."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        rfile = getattr(environ.get("wsgi.input"), "rfile", None)
        sock = getattr(getattr(rfile, "raw", None), "_sock", None)
    getsockname = getattr(sock, "getsockname", None)
    if getsockname is None:
        return None
    try:
        local = getsockname()
    except (OSError, ValueError):  # closed meanwhile
        return None
    return to_address(local[:2]) if isinstance(local, tuple) else None


def _answer_expect(headers: Any) -> Any:
    """The headers after HAProxy waited for the body (``http-buffer-request``,
    ``wait-for-body``): an HTTP/1.1 request with a body announced (Content-Length or
    chunked) and ``Expect: 100-continue`` got its 100 Continue from HAProxy, which removed the
    Expect header (``http_wait_for_request_body()``): the agent never sees it."""
    names = [_lower(h[0]) for h in headers]
    if "expect" not in names:
        return headers
    if "transfer-encoding" not in names:
        # with no body left to wait for (Content-Length: 0 or none), HAProxy keeps Expect
        lengths = [_text(h[1]).strip(" \t") for h in headers if _lower(h[0]) == "content-length"]
        if not lengths or lengths[0].strip("0") in ("", ","):
            return headers
    at = names.index("expect")
    first = _text(headers[at][1]).split(",", 1)[0]
    if first.strip(" \t").lower() != "100-continue":
        return headers
    return [h for i, h in enumerate(headers) if i != at]


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _lower(name: Any) -> str:
    return _text(name).lower()


class _Lazy:
    """A field computed from the environ on its first read, then an ordinary attribute
    (most requests read few samples: building them all costs more than the fetches)."""

    __slots__ = ("fn", "name")

    def __init__(self, fn: Any) -> None:
        self.fn, self.name = fn, fn.__name__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


class _WSGIRequest(RequestInfo):
    """A :class:`RequestInfo` whose headers are converted to bytes when first read: from
    ``_raw``, or from ``_make(_raw)`` when that is given (the middleware's fast paths defer
    reading the header pairs themselves: most requests never read a header)."""

    @_Lazy
    def headers(self) -> Any:
        d = self.__dict__
        raw = d.pop("_raw")
        make = d.pop("_make", None)
        return normalize_headers(raw if make is None else make(raw))


def _request_info(method: str, target: str, version: str, raw: Any,
                  body: bytes | None) -> RequestInfo:
    req = _WSGIRequest.__new__(_WSGIRequest)  # no __post_init__: headers stay raw until read
    req.__dict__.update(method=method, target=target, version=version, body=body, _raw=raw)
    return req


_new = object.__new__

# REMOTE_ADDR/REMOTE_PORT -> (ip_address, port): the same few clients come back on every
# request, and ip_address() costs more than the rest of a request's samples.
_CLIENTS: dict[tuple[str, Any], Any] = {}


def _port(value: Any) -> int | None:
    """``REMOTE_PORT`` as a number: PEP 3333 does not define it, servers set it as text
    (gevent), as an int (Werkzeug's dev server) or not at all (Werkzeug's test client)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 65535 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        port = int(value)
        return port if port <= 65535 else None
    return None


def _client(host: str, port: Any) -> Any:
    """``(ip, port)`` for ``src``/``src_port``: the address comes from ``REMOTE_ADDR`` alone
    (a deny rule on ``src`` must not go silently off because the port is missing); the port is
    ``None`` (``src_port`` absent) when it cannot be read."""
    key = (host, port if isinstance(port, (str, int)) else None)
    addr = _CLIENTS.get(key, _CLIENTS)
    if addr is _CLIENTS:
        if len(_CLIENTS) >= 4096:
            _CLIENTS.clear()
        ip = to_address((host, 0))
        addr = _CLIENTS[key] = None if ip is None else (ip[0], _port(port))
    return addr


class WSGISamples(SampleSource):
    """Samples of one WSGI request.

    The addresses, the request and the unique id are read from ``environ`` when a fetch first
    needs them (the environ is the request's: rules editing headers build new samples).

    :param environ: the PEP 3333 environ (plus the optional ``spoe_sync.*`` keys above).
    :param response: the response, for ``status``, ``res.*`` (response events).
    :param body: the buffered request body for ``req.body``; by default the
        ``spoe_sync.body`` environ key.  ``wsgi.input`` is never read here.
    :param unique_id: the value of ``unique-id`` (NULL when not given).
    :param bufsize: HAProxy's ``tune.bufsize``: ``req.body`` is cut where HAProxy 2.6 cuts it
        (:func:`~spoe_sync.rules.sources.haproxy_body_limit`); ``None`` keeps the whole body.
    """

    environ: Mapping[str, Any]
    bufsize: int | None

    def __init__(self, environ: Mapping[str, Any], *, response: ResponseInfo | None = None,
                 body: bytes | None = None, unique_id: str | None = None,
                 ssl: bool | None = None, frontend_id: int | None = None,
                 bufsize: int | None = DEFAULT_BUFSIZE) -> None:
        d = self.__dict__
        d["environ"] = environ
        d["bufsize"] = bufsize
        d["response"] = response
        d["frontend_id"] = frontend_id
        if body is not None:
            d["_body"] = body
        if unique_id is not None:
            d["unique_id"] = unique_id
        if ssl is not None:
            d["ssl"] = bool(ssl)

    @_Lazy
    def client(self) -> Any:
        env = self.environ
        host, port = env.get("REMOTE_ADDR"), env.get("REMOTE_PORT")
        if type(host) is str and type(port) is str:  # _client()'s cache hit, written out
            addr = _CLIENTS.get((host, port), _CLIENTS)
            if addr is not _CLIENTS:
                return addr
        return _client(_str(env, "REMOTE_ADDR"), port)

    @_Lazy
    def local(self) -> Any:
        return _local(self.environ)

    @_Lazy
    def ssl(self) -> Any:
        env = self.environ
        return env.get("wsgi.url_scheme") == "https" or env.get("HTTPS") in ("on", "1")

    @_Lazy
    def unique_id(self) -> Any:
        uid = self.environ.get(UNIQUE_ID_KEY)
        return uid if isinstance(uid, str) else None

    @_Lazy
    def request(self) -> Any:
        return self._request(self.environ, self.__dict__.get("_body"))

    def _request(self, environ: Mapping[str, Any], body: bytes | None) -> RequestInfo:
        raw = environ.get(RAW_HEADERS_KEY)
        headers: Any = _valid_headers(raw) if isinstance(raw, (list, tuple)) else \
            _environ_headers(environ)
        if body is None:
            env_body = environ.get(BODY_KEY)
            body = bytes(env_body) if isinstance(env_body, (bytes, bytearray)) else None
        version = _str(environ, "SERVER_PROTOCOL", "HTTP/1.1")
        if body is not None and version == "HTTP/1.1":
            headers = _answer_expect(headers)
        target, headers = htx_target(_wire_text(_target(environ)), headers)
        request = _request_info(_str(environ, "REQUEST_METHOD", "GET"), target, version,
                                headers, body)
        if body is not None and self.bufsize is not None:
            limit = haproxy_body_limit(request, self.bufsize)
            if len(body) > limit:
                request = _request_info(request.method, request.target, request.version,
                                        request.headers, body[:limit])
        return request

    def next_request(self, environ: Mapping[str, Any], *, body: bytes | None = None,
                     unique_id: str | None = None) -> WSGISamples:
        """Samples of the next request on the same client connection (keep-alive): the
        connection's addresses and TLS flag are kept, the request part is rebuilt from
        ``environ`` with the same rules (raw headers, raw URI, body cut at ``bufsize``)."""
        self.client, self.local, self.ssl  # noqa: B018 - read from the first environ
        clone = copy.copy(self)
        d = clone.__dict__
        d["environ"] = environ
        d["response"] = None
        for key in ("request", "unique_id", "_body"):
            d.pop(key, None)
        if body is not None:
            d["_body"] = body
        if unique_id is not None:
            d["unique_id"] = unique_id
        return clone

    def with_response(self, response: ResponseInfo) -> WSGISamples:
        """A copy that also sees ``response`` (for ``on-http-response`` and ``http-response``)."""
        # copy.copy(self), written out (the instance dict is all there is): once per response
        clone = _new(type(self))
        d = clone.__dict__
        d.update(self.__dict__)
        d["response"] = response
        return clone
