"""Where fetches read from: the raw data of one stream.

A :class:`SampleSource` exposes what HAProxy's fetches look at (addresses, the request and response
as received, TCP payload); the fetch functions compute every sample from that, so a WSGI app, a TCP
proxy and a test all get HAProxy's exact semantics.  :class:`StaticSamples` is the exception: it
answers fetch expressions from a dict, for tests and scripts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from ..protocol.values import Value

__all__ = [
    "NOTSET",
    "Address",
    "RequestInfo",
    "ResponseInfo",
    "SampleSource",
    "StaticSamples",
    "TCPSamples",
    "haproxy_body_limit",
    "htx_data_size",
    "normalize_headers",
    "response_info",
    "to_address",
]

#: HAProxy's defaults: ``tune.bufsize`` and ``tune.maxrewrite``.
DEFAULT_BUFSIZE = 16384
DEFAULT_MAXREWRITE = 1024
# Bytes of one HTX buffer HAProxy never gives to the message (fitted on 2.6.12 with two buffer
# sizes, three request shapes: exact to the byte).
_HTX_RESERVED = 45
_HTX_BLOCK = 8  # per-block header
_HTX_START_LINE = 24  # struct htx_sl without its strings

IPAddress = IPv4Address | IPv6Address
Address = tuple[IPAddress, int]
HeaderList = tuple[tuple[bytes, bytes], ...]


class _NotSet:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTSET"


NOTSET = _NotSet()


def _header_bytes(x: str | bytes) -> bytes:
    if isinstance(x, bytes):
        return x
    try:
        return x.encode("latin-1")  # PEP 3333 strings carry bytes as latin-1
    except UnicodeEncodeError:
        return x.encode("utf-8", "surrogateescape")


def normalize_headers(headers: Iterable[tuple[str | bytes, str | bytes]]) -> HeaderList:
    """Headers as ``((name, value), ...)`` bytes, order and case kept."""
    items = headers if isinstance(headers, (list, tuple)) else list(headers)
    try:
        # the usual headers, PEP 3333 text: _header_bytes()'s first case without its calls
        return tuple([(n.encode("latin-1"), v.encode("latin-1"))  # type: ignore[union-attr]
                      for n, v in items])
    except (AttributeError, UnicodeEncodeError):  # bytes, text beyond latin-1, a bad value
        return tuple([(_header_bytes(n), _header_bytes(v)) for n, v in items])


def to_address(addr: object) -> Address | None:
    """``(host, port)`` (host as text or address object) to ``(ip_address, port)``; anything
    else (a UNIX socket path, ``None``, a bad value) is ``None``."""
    if not isinstance(addr, tuple) or len(addr) < 2:
        return None
    host, port = addr[0], addr[1]
    try:
        ip = host if isinstance(host, (IPv4Address, IPv6Address)) else ip_address(
            str(host).split("%", 1)[0])
        return ip, int(port)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class RequestInfo:
    """An HTTP request as received.

    :attr target: the raw request-target (``/a%20b?x=1``), as text.
    :attr version: the protocol token, e.g. ``"HTTP/1.1"``.
    :attr headers: ``(name, value)`` bytes in arrival order and original case.
    :attr body: the buffered body; ``None`` when the integration did not buffer it.
    """

    method: str
    target: str
    version: str = "HTTP/1.1"
    headers: HeaderList = ()
    body: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", normalize_headers(self.headers))


@dataclass(frozen=True)
class ResponseInfo:
    """An HTTP response: status, headers (WSGI ``start_response`` form accepted), body."""

    status: int
    headers: HeaderList = ()
    body: bytes | None = None
    version: str = "HTTP/1.1"
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", normalize_headers(self.headers))
        object.__setattr__(self, "status", int(self.status))


_new = object.__new__


def response_info(status: int, headers: Iterable[tuple[str | bytes, str | bytes]] = (),
                  body: bytes | None = None, version: str = "HTTP/1.1",
                  reason: str = "") -> ResponseInfo:
    """``ResponseInfo(...)`` without the frozen dataclass's ``__init__`` and
    ``__post_init__`` (each field stored through ``object.__setattr__``): the same fields,
    filled in place, for the response of every request that has response events or rules."""
    info: Any = _new(ResponseInfo)
    d = info.__dict__
    d["status"] = int(status)
    d["headers"] = normalize_headers(headers)
    d["body"] = body
    d["version"] = version
    d["reason"] = reason
    return info  # type: ignore[no-any-return]


# What htx->data counts besides the strings: the start line's fixed part and the end of
# headers (fitted on HAProxy 2.6.12: 21 for every request and response shape tried)
_HTX_DATA_FIXED = 21


def htx_data_size(info: RequestInfo | ResponseInfo) -> int:
    """``req.len``/``res.len`` of an HTTP message: HAProxy 2.6 answers ``htx->data``, the
    bytes of its HTX blocks (start line strings, normalised headers, the body it holds, one
    more for the end of a chunked request), not the bytes received."""
    from .hdrs import htx_headers

    headers = htx_headers(info.headers)
    if isinstance(info, RequestInfo):
        line = (len(info.method.encode("utf-8", "surrogateescape"))
                + len(info.target.encode("utf-8", "surrogateescape")) + len(info.version))
        chunked = any(n == b"transfer-encoding" for n, _ in headers)
    else:
        line = len(info.version) + 3 + len(info.reason.encode("utf-8", "surrogateescape"))
        chunked = False
    return (_HTX_DATA_FIXED + line + sum(len(n) + len(v) for n, v in headers)
            + len(info.body or b"") + chunked)


def haproxy_body_limit(request: RequestInfo, bufsize: int = DEFAULT_BUFSIZE,
                       maxrewrite: int = DEFAULT_MAXREWRITE) -> int:
    """How many body bytes HAProxy 2.6 holds for ``req.body`` when the request is buffered
    (``option http-buffer-request``): what is left of one HTX buffer after the start line and
    the headers.  A longer body is truncated there, which also keeps the NOTIFY small.
    """
    from .hdrs import htx_headers

    headers = htx_headers(request.headers)
    used = (_HTX_START_LINE + len(request.method.encode("utf-8", "surrogateescape"))
            + len(request.target.encode("utf-8", "surrogateescape")) + len(request.version)
            + sum(len(n) + len(v) for n, v in headers) + _HTX_BLOCK * (len(headers) + 3))
    return max(0, bufsize - maxrewrite - _HTX_RESERVED - used)


@dataclass
class SampleSource:
    """The data of one stream that fetches read.  Every field may be missing (``None``), which
    makes the fetches that need it fail (NULL), as in HAProxy.

    :attr client: ``(ip, port)`` of the client (``src``, ``src_port``).
    :attr local: ``(ip, port)`` the client connected to (``dst``, ``dst_port``).
    :attr ssl: the client connection uses TLS (``ssl_fc``).
    :attr req_payload: bytes at the start of the request channel (``req.payload``, ``req.len``).
    :attr res_payload: same for the response channel (``res.payload``, ``res.len``).
    :attr unique_id: the stream's unique id (``unique-id``; NULL when there is none, as in
        HAProxy without ``unique-id-format``).
    :attr frontend_id: the numeric id reported by ``fe_id``.
    :attr frontend_name: the name reported by ``fe_name``.
    :attr sni: the server name the client sent in its TLS ClientHello, on a connection whose
        TLS was terminated here (``ssl_fc_sni``; ``None`` without TLS or without SNI).
    :attr sni_known: whoever terminated TLS told :attr:`sni` (the proxy does; a WSGI server
        does not: ``ssl_fc_has_sni`` is then absent rather than a guess).
    """

    client: Address | None = None
    local: tuple[IPAddress | None, int | None] | None = None
    ssl: bool = False
    request: RequestInfo | None = None
    response: ResponseInfo | None = None
    req_payload: bytes | None = None
    res_payload: bytes | None = None
    unique_id: str | None = None
    frontend_id: int | None = None
    frontend_name: str | None = None
    sni: str | None = None
    sni_known: bool = False

    # Whether this class answers fetches itself (overrides :meth:`lookup`), set for every
    # subclass: a fetch on samples that do not (WSGI, TCP) skips a call that can only answer
    # NOTSET.  Not annotated: a class attribute, no dataclass field.
    _own_lookup = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_lookup = cls.lookup is not SampleSource.lookup

    def lookup(self, keys: tuple[str, ...]) -> Value | _NotSet:
        """A precomputed value for a fetch written as any of ``keys``, or :data:`NOTSET` to let
        the fetch compute it from the fields above."""
        return NOTSET


class TCPSamples(SampleSource):
    """Samples of a TCP connection (the proxy's client side).

    :param client_addr: the peer address as returned by ``accept()``.
    :param local_addr: the local address (``sock.getsockname()``).
    :param payload: the bytes peeked from the client so far (``req.payload``, ``req.len``).
    :param ssl: the client connection is TLS (``ssl_fc``).
    """

    def __init__(self, client_addr: object, local_addr: object = None, payload: bytes = b"",
                 ssl: bool = False, *, res_payload: bytes | None = None,
                 unique_id: str | None = None, frontend_id: int | None = None) -> None:
        super().__init__(client=to_address(client_addr), local=to_address(local_addr),
                         ssl=bool(ssl), req_payload=bytes(payload), res_payload=res_payload,
                         unique_id=unique_id, frontend_id=frontend_id)


@dataclass
class StaticSamples(SampleSource):
    """Samples from a dict keyed by fetch expressions as written in a config.

    ``StaticSamples({"src": IPv4Address("10.0.0.1"), "req.hdr(host)": "a.example"})``.  Keys are
    the fetch part (converters still run on the value); a missing key means the fetch failed.
    Literal fetches (``str()``, ``int()``...) and ``var()`` never consult the mapping.
    """

    mapping: Mapping[str, Value] = field(default_factory=dict)

    def __init__(self, mapping: Mapping[str, Value] | None = None, **fields: object) -> None:
        super().__init__(**fields)  # type: ignore[arg-type]
        self.mapping = dict(mapping or {})
        for key, value in self.mapping.items():
            if value is not None and not isinstance(
                    value, (bool, int, str, bytes, IPv4Address, IPv6Address)):
                raise TypeError(f"StaticSamples[{key!r}]: {type(value).__name__} has no SPOP "
                                "type (use None, bool, int, str, bytes or an IP address)")

    def lookup(self, keys: tuple[str, ...]) -> Value | _NotSet:
        for key in keys:
            if key in self.mapping:
                return self.mapping[key]
        return None
