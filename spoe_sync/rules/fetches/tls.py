"""TLS ClientHello fetches on the raw request buffer (``req.ssl_*``, configuration.txt §7.3.5),
for TCP proxies that inspect the first bytes a client sends.

Each fetch walks the buffer exactly as HAProxy 2.6's ``src/payload.c`` does, quirks included
(docs/explanation/haproxy-behaviour.md): an agent must get the same value from spoe_sync as from
HAProxy for any payload, not only for well-formed hellos.  The quirks that matter:

- the "whole handshake" check compares the handshake length with what follows the record
  header *including* the 4-byte handshake header, so a ClientHello cut up to 4 bytes short still
  parses (the walk then reads past the data: HAProxy reads its buffer's stale bytes, we read
  zeros);
- ``req.ssl_ver`` and ``req.ssl_hello_type`` only read the record header and a few bytes (any
  record type 0x14-0x17 or 0xff; ``req.ssl_ver`` also takes SSLv2 hellos);
- ``req.ssl_ec_ext`` is NULL, not false, when the extension is missing; ``req.ssl_st_ext`` is
  then 0;
- the SNI's name length is not checked against the extension's.
"""

from __future__ import annotations

from typing import Any

from ...protocol.values import Value
from ..casts import to_text
from . import fetch

#: HAProxy's default receive limit of a channel (tune.bufsize - tune.maxrewrite)
_RECV_LIMIT = 16384 - 1024


class _Buf:
    """The payload as HAProxy's buffer: bytes past the data read as zeros."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __getitem__(self, i: int) -> int:
        return self.data[i] if 0 <= i < len(self.data) else 0

    def u16(self, i: int) -> int:
        return (self[i] << 8) + self[i + 1]

    def span(self, start: int, length: int) -> bytes:
        out = self.data[start:start + length]
        return out + bytes(length - len(out))


#: one extension: (type, length, offset of its type field, what is left of the list there)
_Ext = tuple[int, int, int, int]
_OVERRUN: _Ext = (-1, -1, -1, -1)


def _extensions(data: bytes | None) -> list[_Ext] | None:
    """The ClientHello's extensions after HAProxy's checks, ``None`` when one fails before the
    extension list; the list ends with ``_OVERRUN`` when an extension overruns it (HAProxy's
    fetches then fail unless they met theirs before)."""
    if not data:
        return None
    d = _Buf(data)
    bleft = len(data)
    if d[0] != 0x16 or bleft < 3 or d[1] < 0x03 or bleft < 5:
        return None
    if d.u16(3) < 1 + 3 + 2 + 32 + 1 + 2 + 2 + 1 + 1 + 2 + 2:
        return None  # too short to have an extension
    p, bleft = 5, bleft - 5
    if bleft < 1 or d[p] != 0x01 or bleft < 4:  # not a ClientHello
        return None
    hs_len = (d[p + 1] << 16) + (d[p + 2] << 8) + d[p + 3]
    if hs_len < 2 + 32 + 1 + 2 + 2 + 1 + 1 + 2 + 2 or bleft < hs_len:
        return None  # bleft still counts the handshake header: HAProxy's off-by-4, kept
    p += 4
    if d[p] < 0x03 or d[p + 1] < 0x01:  # TLSv1 minimum
        return None
    sid = d[p + 34]
    if sid > 32 or sid > hs_len - 35:
        return None
    hs_len -= 35 + sid
    p += 35 + sid
    ciphers = d.u16(p)
    if hs_len < 4 or ciphers < 2 or ciphers > hs_len:
        return None
    hs_len -= 2 + ciphers
    p += 2 + ciphers
    if hs_len < 2 or d[p] < 1 or d[p] > hs_len:  # compression methods
        return None
    hs_len -= 1 + d[p]
    p += 1 + d[p]
    if hs_len < 2 or d.u16(p) > hs_len - 2:
        return None
    hs_len = d.u16(p)
    p += 2
    out: list[_Ext] = []
    while hs_len >= 4:
        ext_type, ext_len = d.u16(p), d.u16(p + 2)
        if ext_len > hs_len - 4:
            out.append(_OVERRUN)
            break
        out.append((ext_type, ext_len, p, hs_len))
        hs_len -= 4 + ext_len
        p += 4 + ext_len
    return out


def _find(data: bytes | None, wanted: int) -> _Ext | None:
    for ext in _extensions(data) or ():
        if ext is _OVERRUN:
            return None
        if ext[0] == wanted:
            return ext
    return None


@fetch("req.ssl_hello_type", out="sint")
def _hello_type(ctx: Any, args: tuple[Any, ...]) -> Value:
    data = ctx.samples.req_payload
    if not data or not (0x14 <= data[0] <= 0x17 or data[0] == 0xFF) or len(data) < 9:
        return None
    d = _Buf(data)
    if (d[1] << 16) + d[2] < 0x30000 or d.u16(3) < 4:
        return None
    hs_len = (d[6] << 16) + (d[7] << 8) + d[8]
    return d[5] if len(data) >= 9 + hs_len else None  # the handshake type, whatever it is


@fetch("req.ssl_ver", out="sint")
def _ssl_ver(ctx: Any, args: tuple[Any, ...]) -> Value:
    data = ctx.samples.req_payload
    if not data:
        return None
    d = _Buf(data)
    bleft = len(data)
    if 0x14 <= d[0] <= 0x17 or d[0] == 0xFF:  # SSLv3 record header, any record type
        if bleft < 11:
            return None
        msg_len = d.u16(3)
        if (d[1] << 16) + d[2] < 0x30000 or not 6 <= msg_len <= (1 << 14) + 2048:
            return None
        bleft -= 5
        version = (d[9] << 16) + d[10]  # the hello's client_version, not the record's
    else:  # SSLv2 hello
        if d[0] & 0x80:
            if bleft < 3:
                return None
            rlen, plen, p = ((d[0] & 0x7F) << 8) | d[1], 0, 2
        else:
            if bleft < 4:
                return None
            rlen, plen, p = ((d[0] & 0x3F) << 8) | d[1], d[2], 3
        bleft -= p
        if d[p] != 0x01:
            return None
        bleft -= 1
        p += 1
        if bleft < 8:
            return None
        version = (d[p] << 16) + d[p + 1]
        cilen, silen, chlen = d.u16(p + 2), d.u16(p + 4), d.u16(p + 6)
        bleft -= 8
        if cilen % 3 or (silen and silen != 16) or not 16 <= chlen <= 32 \
                or rlen != 9 + cilen + silen + chlen:
            return None
        msg_len = cilen + silen + chlen + plen
    return version if bleft >= min(msg_len, _RECV_LIMIT) else None


@fetch("req.ssl_sni", out="str")
def _ssl_sni(ctx: Any, args: tuple[Any, ...]) -> Value:
    data = ctx.samples.req_payload
    d = _Buf(data or b"")
    for ext in _extensions(data) or ():
        if ext is _OVERRUN:
            return None
        ext_type, ext_len, p, left = ext
        if ext_type != 0:
            continue
        # the server_name_list is bounded by what is left of the extension list, and the
        # name's length by nothing (HAProxy's)
        srv_len = d.u16(p + 4)
        if ext_len < 2 or srv_len < 4 or srv_len > left - 6:
            return None
        if d[p + 6] == 0:  # host_name; another type: HAProxy goes on to the next extension
            return to_text(d.span(p + 9, d.u16(p + 7)))
    return None


@fetch("req.ssl_alpn", out="str")
def _ssl_alpn(ctx: Any, args: tuple[Any, ...]) -> Value:
    data = ctx.samples.req_payload
    found = _find(data, 16)
    if found is None:
        return None
    _, ext_len, p, _ = found
    d = _Buf(data or b"")
    name_len = d[p + 6]  # the first protocol name (SPOE takes the first sample)
    if ext_len < 3 or name_len + 6 - 3 > ext_len:
        return None
    return to_text(d.span(p + 7, name_len))


@fetch("req.ssl_ec_ext", out="bool")
def _ssl_ec_ext(ctx: Any, args: tuple[Any, ...]) -> Value:
    return True if _find(ctx.samples.req_payload, 10) is not None else None


@fetch("req.ssl_st_ext", out="sint")
def _ssl_st_ext(ctx: Any, args: tuple[Any, ...]) -> Value:
    exts = _extensions(ctx.samples.req_payload)
    if exts is None:
        return None
    for ext in exts:
        if ext is _OVERRUN:
            return None
        if ext[0] == 35:  # SessionTicket: 2 when it carries a ticket
            return 2 if ext[1] > 0 else 1
    return 0
