"""Header blocks as HAProxy builds them for ``req.hdrs``/``res.hdrs`` and ``*.hdrs_bin``.

HAProxy's HTX stores header names lower-cased and values without surrounding blanks, in arrival
order, duplicates kept (docs/explanation/agents.md §3.2/§3.3):

* text: ``name: value\\r\\n`` per header, then ``\\r\\n``;
* binary: ``varint(len(name)) name varint(len(value)) value`` per header, then ``00 00``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import HeaderBlockError

__all__ = ["decode_hdrs_bin", "encode_hdrs_bin", "hdrs_text", "htx_headers", "htx_target"]

_BLANKS = b" \t"


def _clean_connection(value: bytes) -> bytes:
    """HAProxy's H1 mux drops the ``close``/``keep-alive`` tokens of Connection headers."""
    words = [w.strip(_BLANKS) for w in value.split(b",")]
    kept = [w for w in words if w and w.lower() not in (b"close", b"keep-alive")]
    return b", ".join(kept)


def htx_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Headers as HAProxy's HTX holds them after its H1 parser: names lower-cased, values
    stripped of SP/HTAB, folded lines unfolded (their CR and LF become spaces, the leading
    blank of the next line stays), Connection cleaned of ``close``/``keep-alive`` (and dropped
    when nothing is left), a Host or Content-Length repeating an earlier one dropped (the
    first Content-Length keeps its last value: ``1, 1`` is ``1``), Content-Length dropped when
    Transfer-Encoding is present."""
    out = []
    host: bytes | None = None
    length = False
    for n, v in headers:
        name = n.lower()
        value = v.replace(b"\r\n", b"  ").replace(b"\n", b" ").strip(_BLANKS) \
            if b"\n" in v else v.strip(_BLANKS)
        if name == b"connection":
            value = _clean_connection(value)
            if not value:
                continue
        elif name == b"host":
            # HAProxy refuses two different Host headers (400); an identical one is merged
            if host is not None and value.lower() == host:
                continue
            host = value.lower()
        elif name == b"content-length":
            if length:
                continue  # a duplicate (different values are refused with 400)
            length = True
            if b"," in value:
                value = value.rsplit(b",", 1)[1].strip(_BLANKS)
        out.append((name, value))
    if any(n == b"transfer-encoding" for n, _ in out):
        out = [(n, v) for n, v in out if n != b"content-length"]
    return out


_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.S)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def htx_target(target: str, headers: list[tuple[Any, Any]]) -> tuple[str, list[tuple[Any, Any]]]:
    """The request-target and headers after HAProxy 2.6's scheme-based normalisation of an
    absolute-form target: the scheme's default port (or an empty one) leaves the authority
    (``http://h:80/A`` is ``http://h/A``), and a Host header takes the authority's value,
    userinfo aside (``https://H:443/x`` with ``Host: h`` gives ``Host: H``).  HAProxy refuses
    the request when the two differ otherwise (see spoe_sync.wsgi.validity)."""
    match = _ABSOLUTE.fullmatch(target)
    if match is None:
        return target, headers
    scheme, authority, rest = match.groups()
    userinfo, at, hostport = authority.rpartition("@")
    host, colon, port = hostport.rpartition(":")
    if colon and "]" not in port and (not port or port == _DEFAULT_PORTS.get(scheme.lower())):
        hostport = host
    target = f"{scheme}://{userinfo}{at}{hostport}{rest}"
    if not any(_lower(n) == "host" for n, _ in headers):
        return target, headers
    value: Any = hostport.encode("latin-1", "replace") if isinstance(headers[0][1], bytes) \
        else hostport
    return target, [(n, value if _lower(n) == "host" else v) for n, v in headers]


def _lower(name: Any) -> str:
    return (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()


def hdrs_text(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The ``req.hdrs`` block of already-normalized headers."""
    return b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"


def _varint(n: int) -> bytes:
    """SPOP varint (SPOE.txt §3.1)."""
    if n < 240:
        return bytes((n,))
    out = bytearray([(n & 0xFF) | 0xF0])
    n = (n - 240) >> 4
    while n >= 128:
        out.append((n & 0xFF) | 0x80)
        n = (n - 128) >> 7
    out.append(n)
    return bytes(out)


def _as_bytes(x: str | bytes) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8", "surrogateescape")


def encode_hdrs_bin(headers: Iterable[tuple[str | bytes, str | bytes]]) -> bytes:
    """Build a ``req.hdrs_bin`` block from ``(name, value)`` pairs, verbatim and in order,
    with the ``00 00`` terminator.  (The fetch itself lower-cases names first; this helper
    encodes what it is given, so tests can build exact agent inputs.)

    >>> encode_hdrs_bin([("host", "a")])
    b'\\x04host\\x01a\\x00\\x00'
    """
    out = bytearray()
    for name, value in headers:
        n, v = _as_bytes(name), _as_bytes(value)
        if not n:
            raise HeaderBlockError("a header name may not be empty (it would end the block)")
        out += _varint(len(n)) + n + _varint(len(v)) + v
    out += b"\x00\x00"
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise HeaderBlockError(f"truncated header block at offset {pos}")
    n = data[pos]
    pos += 1
    if n < 240:
        return n, pos
    shift = 4
    while True:
        if pos >= len(data):
            raise HeaderBlockError(f"truncated varint at offset {pos}")
        b = data[pos]
        pos += 1
        n += b << shift
        shift += 7
        if b < 128:
            return n, pos
        if shift > 70:
            raise HeaderBlockError(f"varint too long at offset {pos}")


def decode_hdrs_bin(data: bytes) -> list[tuple[bytes, bytes]]:
    """Parse a ``hdrs_bin`` block strictly, as DataDog's agent does: every length must fit,
    the block must end with the ``00 00`` pair and nothing may follow it.

    :raises HeaderBlockError: on a malformed block.
    """
    data = bytes(data)
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while True:
        nlen, pos = _read_varint(data, pos)
        if pos + nlen > len(data):
            raise HeaderBlockError(f"header name length {nlen} runs past the block end")
        name = data[pos:pos + nlen]
        pos += nlen
        vlen, pos = _read_varint(data, pos)
        if pos + vlen > len(data):
            raise HeaderBlockError(f"header value length {vlen} runs past the block end")
        value = data[pos:pos + vlen]
        pos += vlen
        if not name:
            if value:
                raise HeaderBlockError("empty header name with a non-empty value")
            if pos != len(data):
                raise HeaderBlockError(f"{len(data) - pos} bytes after the 00 00 terminator")
            return out
        out.append((name, value))
