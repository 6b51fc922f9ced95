"""HTTP fetches (configuration.txt §7.3.6), computed from the request/response as received."""

from __future__ import annotations

from typing import Any

from ...protocol.values import Value
from ..casts import int_of_text, strl2ic, to_text
from ..h1 import H1Request, parse_request_head, value_end
from ..hdrs import encode_hdrs_bin, hdrs_text, htx_headers
from . import fetch
from .params import find_param, find_params, param_list

_MAX_HDR_HISTORY = 10  # HAProxy's MAX_HDR_HISTORY: -occ beyond this fails


def _split_commas(value: bytes) -> list[bytes]:
    """``http_find_hdr_value_end()``: commas split values, except inside quoted strings."""
    out: list[bytes] = []
    start, end = 0, len(value)
    while True:
        stop = value_end(value, start)
        out.append(value[start:stop].strip(b" \t"))
        if stop >= end:
            return out
        start = stop + 1


def _values(headers: Any, name: str | None, full: bool) -> list[bytes]:
    if headers is None:
        return []
    want = None if name is None else name.encode("latin-1", "replace").lower()
    out: list[bytes] = []
    for n, v in htx_headers(headers):
        if want is None or n == want:
            out.extend([v] if full else _split_commas(v))
    return out


def _occurrence(values: list[bytes], occ: int) -> str | None:
    if occ == 0:
        occ = -1  # no explicit occurrence: the last one
    if occ > 0:
        return to_text(values[occ - 1]) if occ <= len(values) else None
    if -occ > _MAX_HDR_HISTORY or -occ > len(values):
        return None
    return to_text(values[occ])


def _hdr_args(args: tuple[Any, ...]) -> tuple[str | None, int]:
    name = args[0] if args and args[0] != "" else None
    occ = args[1] if len(args) > 1 else 0
    return name, occ


def _req_headers(ctx: Any) -> Any:
    req = ctx.samples.request
    return None if req is None else req.headers


def _res_headers(ctx: Any) -> Any:
    res = ctx.samples.response
    return None if res is None else res.headers


def _register_header_fetches(prefix: str, getter: Any) -> None:
    def hdr(ctx: Any, args: tuple[Any, ...]) -> str | None:
        name, occ = _hdr_args(args)
        if name is None:
            return None  # HAProxy 2.6 fails without a name (observed)
        return _occurrence(_values(getter(ctx), name, False), occ)

    def hdr_many(ctx: Any, args: tuple[Any, ...]) -> list[Value]:
        name, occ = _hdr_args(args)
        if occ or name is None:
            return [hdr(ctx, args)]
        return [to_text(v) for v in _values(getter(ctx), name, False)]

    def fhdr(ctx: Any, args: tuple[Any, ...]) -> Value:
        name, occ = _hdr_args(args)
        if name is None:
            return None
        return _occurrence(_values(getter(ctx), name, True), occ)

    def fhdr_many(ctx: Any, args: tuple[Any, ...]) -> list[Value]:
        name, occ = _hdr_args(args)
        if occ or name is None:
            return [fhdr(ctx, args)]
        return [to_text(v) for v in _values(getter(ctx), name, True)]

    def hdr_cnt(ctx: Any, args: tuple[Any, ...]) -> Value:
        headers = getter(ctx)
        return None if headers is None else len(_values(headers, _hdr_args(args)[0], False))

    def fhdr_cnt(ctx: Any, args: tuple[Any, ...]) -> Value:
        headers = getter(ctx)
        return None if headers is None else len(_values(headers, _hdr_args(args)[0], True))

    def hdr_val(ctx: Any, args: tuple[Any, ...]) -> Value:
        # smp_fetch_hdr_val(): strl2ic(), not the string-to-integer cast
        v = hdr(ctx, args)
        return None if v is None else strl2ic(v.encode("utf-8", "surrogateescape"))

    def hdr_val_many(ctx: Any, args: tuple[Any, ...]) -> list[Value]:
        # an ACL reads every value (as hdr() iterates), each with strl2ic()
        return [None if v is None else strl2ic(str(v).encode("utf-8", "surrogateescape"))
                for v in hdr_many(ctx, args)]

    def hdrs(ctx: Any, args: tuple[Any, ...]) -> Value:
        headers = getter(ctx)
        return None if headers is None else to_text(hdrs_text(htx_headers(headers)))

    def hdrs_bin(ctx: Any, args: tuple[Any, ...]) -> Value:
        headers = getter(ctx)
        return None if headers is None else encode_hdrs_bin(htx_headers(headers))

    def hdr_names(ctx: Any, args: tuple[Any, ...]) -> Value:
        headers = getter(ctx)
        if headers is None:
            return None
        delim = (args[0][:1] if args and args[0] else ",").encode()
        return to_text(delim.join(n for n, _ in htx_headers(headers)))

    fetch(f"{prefix}.hdr", "str?", "int?", out="str", many=hdr_many)(hdr)
    fetch(f"{prefix}.fhdr", "str?", "int?", out="str", many=fhdr_many)(fhdr)
    fetch(f"{prefix}.hdr_cnt", "str?", out="sint")(hdr_cnt)
    fetch(f"{prefix}.fhdr_cnt", "str?", out="sint")(fhdr_cnt)
    fetch(f"{prefix}.hdr_val", "str?", "int?", out="sint", many=hdr_val_many)(hdr_val)
    fetch(f"{prefix}.hdrs", out="str")(hdrs)
    fetch(f"{prefix}.hdrs_bin", out="bin")(hdrs_bin)
    fetch(f"{prefix}.hdr_names", "str?", out="str")(hdr_names)


_register_header_fetches("req", _req_headers)
_register_header_fetches("res", _res_headers)


# --------------------------------------------------------------------------- cookies


def _cookie_value_end(s: bytes, i: int) -> int:
    quoted = i < len(s) and s[i] == 0x22
    if quoted:
        i += 1
    while i < len(s):
        c = s[i]
        if quoted:
            if c == 0x22:
                quoted = False
        elif c in b";,":
            break
        i += 1
    return i


def _extract_cookie(line: bytes, start: int, name: bytes, is_list: bool
                    ) -> tuple[bytes, int] | None:
    """``http_extract_cookie_value()``: the next cookie named ``name`` (any with ``b""``) from
    ``start``, and where to go on from.  Its quirks are HAProxy's: the scan stops when fewer
    than ``len(name) + 2`` bytes are left (so ``a=`` ending a line is never found), a part
    without ``=`` or starting with ``$`` is skipped, and a Set-Cookie line (not a list) gives
    up after its first ``name=value`` when that is not the one."""
    end, nlen = len(line), len(name)
    att_beg = start
    while att_beg + nlen + 1 < end:
        while att_beg < end and line[att_beg] in b" \t":
            att_beg += 1
        equal = att_end = att_beg
        while equal < end:
            c = line[equal]
            if c == 0x3D or c == 0x3B or (is_list and c == 0x2C):
                break
            equal += 1
            if c not in (0x20, 0x09):
                att_end = equal
        if equal < end and line[equal] == 0x3D:
            val_beg = equal + 1
            while val_beg < end and line[val_beg] in b" \t":
                val_beg += 1
            nxt = val_end = _cookie_value_end(line, val_beg)
            while val_end > val_beg and line[val_end - 1] in b" \t":
                val_end -= 1
        else:
            val_beg = val_end = nxt = equal
        if line[att_beg:att_beg + 1] == b"$" or equal == nxt:
            att_beg = nxt + 1
            continue
        if not nlen or line[att_beg:att_end] == name:
            return line[val_beg:val_end], nxt + 1
        if not is_list:
            break
        att_beg = nxt + 1
    return None


def _cookie_values(headers: Any, header: bytes, name: str | None, request: bool) -> list[bytes]:
    """Every cookie ``name`` (any with no name) in order, as ``smp_fetch_cookie()`` and
    ``smp_fetch_cookie_cnt()`` walk them: header values split at commas
    (``http_find_header(.., 0)``), a value shorter than the name plus one skipped."""
    if headers is None:
        return []
    want = (name or "").encode("utf-8", "surrogateescape")
    out: list[bytes] = []
    for n, line in htx_headers(headers):
        if n != header:
            continue
        for value in _split_commas(line):
            if len(value) < len(want) + 1:
                continue
            pos = 0
            while (found := _extract_cookie(value, pos, want, request)) is not None:
                out.append(found[0])
                pos = found[1]
    return out


def _register_cookie_fetches(prefix: str, getter: Any, header: bytes, request: bool) -> None:
    def cook(ctx: Any, args: tuple[Any, ...]) -> str | None:
        name = args[0] if args else ""
        vals = _cookie_values(getter(ctx), header, name, request)
        if not vals:
            return None
        # no name: the first cookie (observed with HAProxy 2.6); else the last occurrence
        return to_text(vals[0] if not name else vals[-1])

    def cook_many(ctx: Any, args: tuple[Any, ...]) -> list[Value]:
        return [to_text(v) for v in
                _cookie_values(getter(ctx), header, args[0] if args else None, request)]

    def cook_cnt(ctx: Any, args: tuple[Any, ...]) -> Value:
        headers = getter(ctx)
        if headers is None:
            return None
        return len(_cookie_values(headers, header, args[0] if args else None, request))

    def cook_val(ctx: Any, args: tuple[Any, ...]) -> Value:
        # smp_fetch_cookie_val(): strl2ic(), not the string-to-integer cast
        v = cook(ctx, args)
        return None if v is None else strl2ic(v.encode("utf-8", "surrogateescape"))

    fetch(f"{prefix}.cook", "str?", out="str", many=cook_many)(cook)
    fetch(f"{prefix}.cook_cnt", "str?", out="sint")(cook_cnt)
    fetch(f"{prefix}.cook_val", "str?", out="sint")(cook_val)


_register_cookie_fetches("req", _req_headers, b"cookie", True)
_register_cookie_fetches("res", _res_headers, b"set-cookie", False)


# --------------------------------------------------------------------------- start lines


def _path_start(uri: str) -> int | None:
    """``http_get_path()``: index of the path in a request-target, ``None`` if it has none."""
    if not uri or uri[0] == "*":
        return None
    i = 0
    if uri[0].isascii() and uri[0].isalpha():
        i = 1
        while i < len(uri) and uri[i].isascii() and (uri[i].isalnum() or uri[i] in "+-."):
            i += 1
        if uri[i:i + 3] != "://":
            return None
        i += 3
    slash = uri.find("/", i)
    return None if slash < 0 else slash


def _target(ctx: Any) -> str | None:
    req = ctx.samples.request
    return None if req is None else str(req.target)


@fetch("method", out="meth")
def _method(ctx: Any, args: tuple[Any, ...]) -> Value:
    req = ctx.samples.request
    return None if req is None else req.method


@fetch("url", out="str")
def _url(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _target(ctx)


@fetch("path", out="str")
def _path(ctx: Any, args: tuple[Any, ...]) -> str | None:
    req = ctx.samples.request  # _target(), written out: a common message argument
    if req is None:
        return None
    uri = str(req.target)
    if uri[:1] == "/":  # origin form (nearly every request): _path_start() is 0
        return uri.partition("?")[0]
    start = _path_start(uri)
    if uri is None or start is None:
        return None
    return uri[start:].split("?", 1)[0]


@fetch("pathq", out="str")
def _pathq(ctx: Any, args: tuple[Any, ...]) -> Value:
    uri = _target(ctx)
    start = None if uri is None else _path_start(uri)
    return None if uri is None or start is None else uri[start:]


@fetch("query", out="str")
def _query(ctx: Any, args: tuple[Any, ...]) -> str | None:
    uri = _target(ctx)
    if uri is None or "?" not in uri:
        return None  # no '?': nothing; '?' last: the empty string (coraza relies on both)
    return uri.split("?", 1)[1]


@fetch("base", out="str")
def _base(ctx: Any, args: tuple[Any, ...]) -> str | None:
    # smp_fetch_base(): no (or an empty) Host gives the path; else the Host, then the path if
    # there is one, so a path-less target (``OPTIONS *``, ``http://h``) gives the Host alone
    req = ctx.samples.request
    if req is None:
        return None
    host = _occurrence(_values(req.headers, "host", True), -1)
    path = _path(ctx, ())
    if not host:
        return path
    return host + (path or "")


def _url_params(ctx: Any, args: tuple[Any, ...]) -> list[Value]:
    uri = _target(ctx)
    delim = args[1][:1] if len(args) > 1 and args[1] else "?"
    params = None if uri is None else param_list(uri, delim)
    return [] if params is None else list(find_params(params, args[0] if args else "", delim))


@fetch("url_param", "str?", "str?", out="str", many=_url_params)
def _url_param(ctx: Any, args: tuple[Any, ...]) -> Value:
    # smp_fetch_url_param(): the list starts at the first delimiter of the whole target; an
    # ACL tests every occurrence, a sample is the first one
    uri = _target(ctx)
    delim = args[1][:1] if len(args) > 1 and args[1] else "?"
    params = None if uri is None else param_list(uri, delim)
    return None if params is None else find_param(params, args[0] if args else "", delim)


@fetch("urlp_val", "str?", "str?", out="sint")
def _urlp_val(ctx: Any, args: tuple[Any, ...]) -> Value:
    # smp_fetch_url_param_val(): the parameter read as HAProxy's strl2ic() reads it
    value = _url_param(ctx, args)
    return None if value is None else strl2ic(str(value).encode("utf-8", "surrogateescape"))


def _version(token: str | None) -> Value:
    """``smp_fetch_rqver``: what follows the '/' of the protocol token."""
    if not token or "/" not in token:
        return None
    rest = token.split("/", 1)[1]
    return rest or None


@fetch("req.ver", out="str")
def _req_ver(ctx: Any, args: tuple[Any, ...]) -> Value:
    req = ctx.samples.request
    return None if req is None else _version(req.version)


@fetch("res.ver", out="str")
def _res_ver(ctx: Any, args: tuple[Any, ...]) -> Value:
    res = ctx.samples.response
    return None if res is None else _version(res.version)


@fetch("status", out="sint")
def _status(ctx: Any, args: tuple[Any, ...]) -> Value:
    res = ctx.samples.response
    return None if res is None else res.status


@fetch("req.proto_http", out="bool")
def _proto_http(ctx: Any, args: tuple[Any, ...]) -> Value:
    if ctx.samples.request is not None:
        return True
    # a TCP stream: HAProxy parses the buffer as an HTTP/1 request head (smp_prefetch_htx()
    # in raw mode); NULL, not false, while it is not one, and an HTTP/0.9 request only counts
    # as a GET with a target
    head = parse_request_head(ctx.samples.req_payload or b"")
    if not isinstance(head, H1Request):
        return None
    return True if head.version or (head.method == b"GET" and head.target) else None


# --------------------------------------------------------------------------- bodies


def _body(info: Any) -> bytes | None:
    if info is None:
        return None
    return info.body if info.body is not None else b""


def _body_size(info: Any) -> Value:
    if info is None:
        return None
    body = len(info.body or b"")
    raw = [v for n, v in info.headers if n.lower() == b"content-length"]
    n = strl2ic(raw[0].strip(b" \t")) if raw else None
    if any(name.lower() == b"transfer-encoding" for name, _ in info.headers):
        # chunked: the data held, plus the dropped Content-Length that HAProxy 2.6 still
        # counts as known to come (htx->extra: chunked "b" with Content-Length: 5 is 6)
        return body + (n if n is not None and n > 0 else 0)
    cl = _values(info.headers, "content-length", True)
    if cl:
        length = int_of_text(cl[-1])
        if length is not None and length >= 0:
            return length
    return body


@fetch("req.body", out="bin")
def _req_body(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _body(ctx.samples.request)


def _response(ctx: Any) -> Any:
    """The response for its body fetches: a response to HEAD has none, whatever the
    server sent (HAProxy's HTX drops it, ``res.body_size`` included)."""
    res = ctx.samples.response
    req = ctx.samples.request
    if res is not None and req is not None and req.method == "HEAD" and res.body:
        return _NO_BODY
    return res


class _NoBody:
    headers = ()
    body = b""


_NO_BODY = _NoBody()


@fetch("res.body", out="bin")
def _res_body(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _body(_response(ctx))


@fetch("req.body_len", out="sint")
def _req_body_len(ctx: Any, args: tuple[Any, ...]) -> Value:
    body = _body(ctx.samples.request)
    return None if body is None else len(body)


@fetch("res.body_len", out="sint")
def _res_body_len(ctx: Any, args: tuple[Any, ...]) -> Value:
    body = _body(_response(ctx))
    return None if body is None else len(body)


@fetch("req.body_size", out="sint")
def _req_body_size(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _body_size(ctx.samples.request)


@fetch("res.body_size", out="sint")
def _res_body_size(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _body_size(_response(ctx))
