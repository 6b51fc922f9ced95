"""Derived HTTP fetches: ``base*``, ``url32*``, ``url_ip``/``url_port``, ``req.body_param``,
``req.hdr_ip`` (configuration.txt §7.3.6).  Hash values are HAProxy's (sdbm then Bob Jenkins'
``full_hash``), checked against HAProxy 2.6."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from ...protocol.values import Value
from ..casts import cast, header_ip, to_bytes, to_text
from . import fetch
from .http import _base, _occurrence, _path_start, _target, _values
from .params import find_param

_M32 = 0xFFFFFFFF


def _sdbm(data: bytes, h: int = 0) -> int:
    for c in data:
        h = (c + (h << 6) + (h << 16) - h) & _M32
    return h


def full_hash(a: int) -> int:
    """HAProxy's ``full_hash()`` (Bob Jenkins' avalanche, then a large prime)."""
    a = ((a + 0x7ED55D16) + (a << 12)) & _M32
    a = ((a ^ 0xC761C23C) ^ (a >> 19)) & _M32
    a = ((a + 0x165667B1) + (a << 5)) & _M32
    a = ((a + 0xD3A2646C) ^ (a << 9)) & _M32
    a = ((a + 0xFD7046C5) + (a << 3)) & _M32
    a = ((a ^ 0xB55A4F09) ^ (a >> 16)) & _M32
    return (a * 3221225473) & _M32


def _host_and_path(ctx: Any, with_query: bool) -> tuple[bytes, bytes] | None:
    req = ctx.samples.request
    if req is None:
        return None
    host = _values(req.headers, "host", True)
    uri = req.target
    start = _path_start(uri)
    path = "" if start is None else uri[start:]
    if not with_query:
        path = path.split("?", 1)[0]
    return (host[0] if host else b""), to_bytes(path)


@fetch("baseq", out="str")
def _baseq(ctx: Any, args: tuple[Any, ...]) -> Value:
    # smp_fetch_baseq(): ``base``, then the query string of the path if there is one
    base = _base(ctx, ())
    if base is None:
        return None
    uri = str(ctx.samples.request.target)
    start = _path_start(uri)
    if start is None or "?" not in uri[start:]:
        return base
    return base + "?" + uri[start:].split("?", 1)[1]


def _hash32(ctx: Any, with_query: bool) -> int | None:
    parts = _host_and_path(ctx, with_query)
    if parts is None:
        return None
    return full_hash(_sdbm(parts[1], _sdbm(parts[0])))


def _with_src(ctx: Any, h: int | None) -> Value:
    client = ctx.samples.client
    if h is None or client is None:
        return None
    packed: bytes = client[0].packed
    return h.to_bytes(4, "big") + packed


@fetch("base32", out="sint")
def _base32(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _hash32(ctx, False)


@fetch("url32", out="sint")
def _url32(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _hash32(ctx, True)


@fetch("base32+src", out="bin")
def _base32_src(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _with_src(ctx, _hash32(ctx, False))


@fetch("url32+src", out="bin")
def _url32_src(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _with_src(ctx, _hash32(ctx, True))


def _url_authority(ctx: Any) -> tuple[IPv4Address | IPv6Address, int | None] | None:
    """``url2sa()``: the host of an absolute URI, when it is an IP literal."""
    uri = _target(ctx)
    if uri is None or "://" not in uri:
        return None
    authority = uri.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    host, port = authority, None
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif ":" in authority:
        host, port = authority.rsplit(":", 1)
    try:
        return ip_address(host), (int(port) if port else None)
    except ValueError:
        return None


@fetch("url_ip", out="ipv4")
def _url_ip(ctx: Any, args: tuple[Any, ...]) -> Value:
    found = _url_authority(ctx)
    return None if found is None else found[0]


@fetch("url_port", out="sint")
def _url_port(ctx: Any, args: tuple[Any, ...]) -> Value:
    found = _url_authority(ctx)
    return None if found is None or found[1] is None else found[1]


@fetch("req.body_param", "str?", out="str")
def _body_param(ctx: Any, args: tuple[Any, ...]) -> Value:
    req = ctx.samples.request
    if req is None or not req.body:
        return None
    # smp_fetch_body_param(): the whole body is the list, '&' (and ';') separate
    value = find_param(req.body, to_bytes(args[0]) if args and args[0] else b"", b"&")
    return None if value is None else cast(value, "str")


def _hdr_ips(ctx: Any, args: tuple[Any, ...]) -> list[Value]:
    # an ACL tests every comma-separated value of every occurrence (SMP_OPT_ITERATE)
    req = ctx.samples.request
    if req is None or not args or not args[0]:
        return []
    from .http import _split_commas

    return [header_ip(to_text(v)) for raw in _values(req.headers, args[0], True)
            for v in _split_commas(raw)]


@fetch("req.hdr_ip", "str?", "int?", out="addr", many=_hdr_ips)
def _hdr_ip(ctx: Any, args: tuple[Any, ...]) -> Value:
    req = ctx.samples.request
    if req is None or not args or not args[0]:
        return None
    from .http import _split_commas

    values = [v for raw in _values(req.headers, args[0], True) for v in _split_commas(raw)]
    text = _occurrence(values, args[1] if len(args) > 1 else 0)
    return None if text is None else header_ip(text)
