"""HAProxy 2.6's HTTP/1 request-head parser (``h1_headers_to_hdr_list()`` in ``src/h1.c``), as
far as whether a raw buffer holds a valid request: what ``req.proto_http`` answers on a TCP
stream (``smp_prefetch_htx()`` in raw mode), see docs/explanation/haproxy-behaviour.md.

Pure, byte for byte: leading empty lines are skipped; the method is a token; the target is bytes
33-126 (8-bit bytes refused, as without ``accept-invalid-http-request``); the version is made of
``HTTP/.`` and digits, or missing (HTTP/0.9: the request ends with its line); header names are
tokens (even empty), values anything but CR and LF, folded lines allowed; Content-Length values
all equal digits, Transfer-Encoding ending with ``chunked`` when there is one, one Host (or
identical ones) equal to an absolute target's authority (default ports aside), a CONNECT
target with a port; at most ``tune.http.maxhdr`` headers.  As Debian's 2.6.12 (with the
authority checks of 2.6.7 and the fix for CVE-2023-40225: ``#`` in the target is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["INCOMPLETE", "INVALID", "H1Request", "parse_request_head", "value_end"]

INCOMPLETE: Literal["incomplete"] = "incomplete"
INVALID: Literal["invalid"] = "invalid"

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_VER = frozenset(b"HTP/.0123456789ABCDEFGIJKLMNOQRSUVWXYZ")
_SPHT = frozenset(b" \t")
_CRLF = frozenset(b"\r\n")
_LWS = frozenset(b" \t\r\n")
MAX_HDR = 101  # tune.http.maxhdr: the list also holds :method, :path and an end marker


@dataclass(frozen=True)
class H1Request:
    method: bytes
    target: bytes
    version: bytes  # b"" for HTTP/0.9
    headers: tuple[tuple[bytes, bytes], ...]


class _Incomplete(Exception):
    pass


class _Invalid(Exception):
    pass


def parse_request_head(buf: bytes, max_hdr: int = MAX_HDR
                       ) -> H1Request | Literal["incomplete", "invalid"]:
    """The request head at the start of ``buf``, or why there is none (yet)."""
    try:
        return _Parser(buf, max_hdr).run()
    except _Incomplete:
        return INCOMPLETE
    except _Invalid:
        return INVALID


class _Parser:
    def __init__(self, buf: bytes, max_hdr: int) -> None:
        self.buf, self.end, self.p, self.max_hdr = buf, len(buf), 0, max_hdr

    def at(self) -> int:
        if self.p >= self.end:
            raise _Incomplete
        return self.buf[self.p]

    def eat(self) -> None:
        # EAT_AND_JUMP_OR_RETURN: running out of data after a byte is "wait for more"
        self.p += 1
        if self.p >= self.end:
            raise _Incomplete

    def expect_lf(self) -> None:
        if self.at() != 0x0A:
            raise _Invalid

    def run(self) -> H1Request:
        while self.at() not in _TOKEN:  # empty lines before the request
            c = self.at()
            if c not in _CRLF:
                raise _Invalid
            self.eat()
            if c == 0x0D:
                self.expect_lf()
                self.eat()
        method, target, version = self.request_line()
        if not version:  # HTTP/0.9: no headers; the line's LF ends it all
            self.expect_lf()
            return H1Request(method, target, b"", ())
        self.expect_lf()
        self.eat()
        return self.headers(method, target, version)

    def request_line(self) -> tuple[bytes, bytes, bytes]:
        buf, m0 = self.buf, self.p
        while self.at() in _TOKEN:
            self.eat()
        method = buf[m0:self.p]
        target = version = b""
        if self.at() in _SPHT:
            while self.at() in _SPHT:
                self.eat()
            if self.at() not in _CRLF:
                u0 = self.p
                while 33 <= self.at() <= 126 and self.at() != 0x23:  # '#' refused (2.6.12)
                    self.eat()
                target = buf[u0:self.p]
                if self.at() in _SPHT:
                    while self.at() in _SPHT:
                        self.eat()
                    if self.at() not in _CRLF:
                        v0 = self.p
                        while self.at() in _VER:
                            self.eat()
                        version = buf[v0:self.p]
                if self.at() not in _CRLF:  # 8-bit, control byte, DEL or a bad version
                    raise _Invalid
        elif self.at() not in _CRLF:
            raise _Invalid
        if self.at() == 0x0D:
            self.eat()
        return method, target, version

    def headers(self, method: bytes, target: bytes, version: bytes) -> H1Request:
        buf = self.buf
        out: list[tuple[bytes, bytes]] = []
        framing = _Framing()
        host: bytes | None = None
        count = 2  # :method and :path
        while self.at() not in _CRLF:
            n0 = self.p
            while self.at() in _TOKEN:
                self.eat()
            if self.at() != 0x3A:  # ':'
                raise _Invalid
            name = buf[n0:self.p]
            self.eat()
            value = self.value()
            lname = name.lower()
            if lname == b"transfer-encoding":
                framing.transfer_encoding(value)
            elif lname == b"content-length":
                if not framing.content_length(value):
                    continue  # a repeated equal value is dropped
            elif lname == b"connection" and not value:
                continue
            elif lname == b"host":
                if host is None:
                    host = value
                elif value.lower() != host.lower():
                    raise _Invalid
                else:
                    continue  # the same Host again is dropped
            if count >= self.max_hdr:
                raise _Invalid  # the header list is full (-2): no request either
            count += 1
            out.append((name, value))
        if self.at() == 0x0D:
            self.eat()
        self.expect_lf()
        if count >= self.max_hdr:
            raise _Invalid  # no room for the end marker
        _check_authority(method, target, host)
        if framing.xfer_enc and not framing.chunked:
            raise _Invalid  # a request's Transfer-Encoding must end with chunked
        return H1Request(method, target, version, tuple(out))

    def value(self) -> bytes:
        """A header value after its colon, blanks trimmed, a folded line's CR LF turned into
        as many spaces (HAProxy rewrites them in place); leaves the cursor on the next line."""
        buf = self.buf
        while self.at() in _SPHT:
            self.eat()
        out = bytearray()
        while True:
            v0 = self.p
            while self.at() not in _CRLF:
                self.eat()
            out += buf[v0:self.p]
            eol = self.p
            if self.at() == 0x0D:
                self.eat()
            self.expect_lf()
            self.eat()
            if self.at() not in _SPHT:  # not a folded continuation
                break
            out += b" " * (self.p - eol)  # the line break; the indent stays as it is
        return bytes(out).strip(bytes(_LWS))


class _Framing:
    """``h1_parse_cont_len_header()`` and ``h1_parse_xfer_enc_header()``."""

    def __init__(self) -> None:
        self.length: int | None = None
        self.xfer_enc = self.chunked = self.te_chunked = False

    def content_length(self, value: bytes) -> bool:
        """Validates the value (raises); true when the header is kept (the first one)."""
        first = self.length is None
        i, end = 0, len(value)
        while i < end:
            if value[i] in _LWS:
                i += 1
                continue
            j = i
            while j < end and 48 <= value[j] <= 57:
                j += 1
            if j == i:
                raise _Invalid
            n = int(value[i:j])
            if n >= 1 << 64:
                raise _Invalid
            while j < end and value[j] in _LWS:
                j += 1
            if j < end and value[j] != 0x2C:
                raise _Invalid
            if self.length is not None and n != self.length:
                raise _Invalid
            self.length = n
            i = j + 1
        return first

    def transfer_encoding(self, value: bytes) -> None:
        self.xfer_enc = True
        i, end = 0, len(value)
        while i < end:
            if value[i] in _LWS:
                i += 1
                continue
            j = value_end(value, i)
            word = value[i:j].rstrip(bytes(_LWS)).lower()
            self.chunked = False
            if word == b"chunked":
                if self.te_chunked:
                    raise _Invalid  # chunked twice
                self.te_chunked = self.chunked = True
            elif self.te_chunked:
                raise _Invalid  # another coding after chunked
            i = j + 1


def value_end(value: bytes, i: int) -> int:
    """``http_find_hdr_value_end()``: the next comma outside a quoted string."""
    quoted = pair = False
    for j in range(i, len(value)):
        c = value[j]
        if pair:
            pair = False
        elif quoted:
            if c == 0x5C:
                pair = True
            elif c == 0x22:
                quoted = False
        elif c == 0x22:
            quoted = True
        elif c == 0x2C:
            return j
    return len(value)


def _scheme_authority(target: bytes) -> tuple[bytes | None, bytes]:
    """``http_parse_scheme()`` then ``http_parse_authority(parser, 1)``: the scheme with its
    ``://`` (``None`` without), and the authority: nothing for ``/...``, ``*`` or an empty
    target, else what follows the scheme (or the whole target) up to the first ``/``, userinfo
    dropped."""
    if not target or target[:1] in (b"/", b"*"):
        return None, b""
    scheme, rest = None, target
    if chr(target[0]).isalpha():  # the target's bytes are ASCII (33-126)
        i = 1
        while i < len(target) and (chr(target[i]).isalnum() or target[i] in b"+-."):
            i += 1
        if target[i:i + 3] == b"://":
            scheme, rest = target[:i + 3], target[i + 3:]
    return scheme, rest.split(b"/", 1)[0].rpartition(b"@")[2]


def _host_port(hostport: bytes) -> tuple[bytes, bytes | None]:
    """``http_get_host_port()``: the digits after a last ':' (maybe none: b""), or None."""
    i = len(hostport)
    while i > 0 and 48 <= hostport[i - 1] <= 57:
        i -= 1
    if i == 0 or hostport[i - 1] != 0x3A:
        return hostport, None
    return hostport[:i - 1], hostport[i:]


def _default_port(scheme: bytes | None, port: bytes) -> bool:
    if not port:
        return True
    if scheme is None:
        return port in (b"443", b"80")
    return (port, scheme.lower()) in ((b"443", b"https://"), (b"80", b"http://"))


def _check_authority(method: bytes, target: bytes, host: bytes | None) -> None:
    """``h1_validate_connect_authority()`` / ``h1_validate_mismatch_authority()`` at the end of
    the head (HAProxy 2.6.12)."""
    scheme, authority = _scheme_authority(target)
    if method == b"CONNECT":
        uri_host, uri_port = _host_port(authority)
        if not authority or not uri_port:
            raise _Invalid  # CONNECT needs host:port
        if host is None:
            return
        h_host, h_port = _host_port(host)
        if h_port:
            if h_host.lower() != uri_host.lower() or h_port != uri_port:
                raise _Invalid
        elif not _default_port(None, uri_port) or h_host.lower() != uri_host.lower():
            raise _Invalid
        return
    if host is None or not authority or authority.lower() == host.lower():
        return
    if scheme is None:
        raise _Invalid
    uri_host, uri_port = _host_port(authority)
    h_host, h_port = _host_port(host)
    if uri_port is None and h_port is None:
        raise _Invalid
    if uri_port is not None and not _default_port(scheme, uri_port):
        raise _Invalid
    if h_port is not None and not _default_port(scheme, h_port):
        raise _Invalid
    if uri_host.lower() != h_host.lower():
        raise _Invalid
