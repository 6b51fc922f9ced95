"""Which requests HAProxy 2.6 refuses before any SPOE event, and its exact answer.

HAProxy's HTTP/1 parser and its request analysers answer some requests themselves (400, 413,
422) that gevent.pywsgi serves to the application.  When the agent (a WAF) never sees a request
that the application does, or both read one request differently, the check is off for it: so
``SpoeWSGIHandler`` must refuse what HAProxy refuses, with HAProxy's bytes, before any event.

:func:`check` decides it from the raw request head (request line and header lines, as
received).  Pure: no sockets, no gevent.  Every rule below was observed with HAProxy 2.6.12 (the
differential fuzz tier, tests/conformance/fuzz, compares this module with HAProxy on every
generated request); see docs/explanation/haproxy-behaviour.md.

Refused with 400:

- a method that is not a token; no version (HTTP/0.9); a version other than ``HTTP/<d>.<d>``
  (``http/1.1``, ``HTTP/1``, a blank after it);
- a target byte that is a control character, DEL, 8-bit, or ``#``;
- a header name that is empty or not a token (``X A:``, ``X-A :``), a bare CR in a line;
- two Host headers that differ (case aside), an absolute-form target (any ``scheme:``) whose
  authority differs from the Host header (case and default ports aside);
- a Content-Length that is not digits, or values that differ (``1, 2``, two headers);
- Transfer-Encoding empty, ``chunked`` twice, or not ending with ``chunked``;
- a head that does not fit HAProxy's buffer (``tune.bufsize`` - ``tune.maxrewrite``).

Refused with 422: a Transfer-Encoding with another coding before ``chunked``
(``gzip, chunked``).  Refused with 413: an HTTP/1.0 GET, HEAD or DELETE with a body
(Content-Length above 0 or chunked), whether or not HAProxy waits for the body (observed with
and without ``option http-buffer-request``).

Accepted, though gevent may treat them otherwise: 8-bit, control and NUL bytes in header
values, folded header lines, Content-Length with Transfer-Encoding (Content-Length is dropped),
HTTP/1.0 with a chunked body, identical duplicate Host or Content-Length headers.

:func:`read_head` (the handler's reader) lets a plainly valid head through on two compiled
patterns (:func:`plain_fields`, a strict subset of what :func:`check` accepts) and hands every
other head to :func:`check`, the one definition of the rules above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Refusal", "Refused", "check", "check_raw", "error_response", "plain_fields", "read_head",
           "read_head_fields"]

DEFAULT_BUFSIZE = 16384
DEFAULT_MAXREWRITE = 1024

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_SCHEME = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*):")
_BLANKS = b" \t"

# The fast path (plain_fields): heads plainly valid for HAProxy 2.6, matched by C code, where
# check() walks bytes in Python.  A token method, one space, an origin-form target of the bytes
# _request_line() lets through (no control, DEL, 8-bit or '#'), one space, HTTP/1.0 or 1.1...
_TOKEN_RE = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PLAIN_REQUEST_LINE = re.compile(
    rb"(" + _TOKEN_RE + rb") /[\x21\x22\x24-\x7e]* (HTTP/1\.[01])\r?\n")
# ... then header lines: a token name, a colon, a value without CR or controls but tab (what
# request_head's e-mail-parser-free path takes too: the same groups, name and value)
_PLAIN_FIELD = re.compile(rb"(" + _TOKEN_RE + rb"):[ \t]*([\t\x20-\x7e\xa0-\xff]*)\r?\n")
#: the header names check() looks at (_host, _framing), lower-case
_HOST, _LENGTH, _CODING = b"host", b"content-length", b"transfer-encoding"
_SEMANTIC = frozenset((_HOST, _LENGTH, _CODING))
#: the methods of HAProxy's 413 rule
_NO_BODY_10 = (b"GET", b"HEAD", b"DELETE")

# HAProxy's built-in error pages (http_err_msgs[] and http-errors defaults), byte for byte
_PAGES = {
    400: (b"Bad request", b"Your browser sent an invalid request.", True),
    413: (b"Payload Too Large", b"The request entity exceeds the maximum allowed.", False),
    422: (b"Unprocessable Content", b"The server cannot process the contained instructions.",
          False),
}


def error_response(status: int) -> bytes:
    """HAProxy 2.6's answer for ``status`` (400, 413 or 422), as it sends it."""
    reason, text, close = _PAGES[status]
    body = b"<html><body><h1>%d %s</h1>\n%s\n</body></html>\n" % (status, reason, text)
    head = b"HTTP/1.1 %d %s\r\nContent-length: %d\r\nCache-Control: no-cache\r\n" % (
        status, reason, len(body))
    if close:
        head += b"Connection: close\r\n"
    return head + b"Content-Type: text/html\r\n\r\n" + body


@dataclass(frozen=True)
class Refusal:
    """HAProxy would answer this request itself.

    :attr status: 400, 413 or 422.
    :attr why: what in the request (for logs and tests, not sent).
    :attr response: the bytes HAProxy sends (:func:`error_response`).
    """

    status: int
    why: str

    @property
    def response(self) -> bytes:
        return error_response(self.status)


class Refused(ValueError):
    """Raised by a server's request reader for a request HAProxy refuses (a ValueError: gevent
    and gunicorn take it as a client error, not a crash)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"HAProxy would answer {refusal.status}: {refusal.why}")
        self.refusal = refusal


def read_head(rfile: Any, request_line: bytes, *, accept_invalid: bool = False, bufsize: int = DEFAULT_BUFSIZE,
              maxrewrite: int = DEFAULT_MAXREWRITE) -> bytes:
    """Read the header lines after ``request_line`` from the file ``rfile`` up to and with the
    blank line (or EOF), and return them; raise :class:`Refused` when HAProxy would refuse the
    request (:func:`check`).  A head larger than HAProxy's buffer stops the reading there."""
    return read_head_fields(rfile, request_line, accept_invalid=accept_invalid,
                            bufsize=bufsize, maxrewrite=maxrewrite)[0]


def read_head_fields(rfile: Any, request_line: bytes, *, accept_invalid: bool = False, bufsize: int = DEFAULT_BUFSIZE,
                     maxrewrite: int = DEFAULT_MAXREWRITE, fast: bool = True,
                     ) -> tuple[bytes, list[tuple[bytes, bytes]] | None]:
    """:func:`read_head`, and the header fields when the head is plain (:func:`plain_fields`;
    else ``None``).  ``fast=False`` always takes :func:`check` (the general path, for
    differential tests): the outcome is the same."""
    limit = bufsize - maxrewrite
    size = len(request_line)
    lines = []
    while True:
        line = rfile.readline(limit + 1 - size)  # size <= limit here
        lines.append(line)
        size += len(line)
        if size > limit:
            raise Refused(Refusal(400, "the request head does not fit the buffer"))
        if line in (b"\r\n", b"\n", b""):
            break
    block = b"".join(lines)
    # check()'s size rule counts the head without its last line end and the blank line, plus
    # 4: at most size + 2
    fields = plain_fields(request_line, lines) if fast and size + 2 <= limit else None
    if fields is None:
        refusal = check_raw(request_line + block, bufsize=bufsize, maxrewrite=maxrewrite,
                            accept_invalid=accept_invalid)
        if refusal is not None:
            raise Refused(refusal)
    return block, fields


def plain_fields(request_line: bytes, lines: list[bytes]) -> list[tuple[bytes, bytes]] | None:
    """The ``(name, value)`` fields of a head that is plainly valid for HAProxy 2.6 (``None``
    for any other: :func:`check` decides those), the value without the blanks before it.

    ``lines`` are the header lines as read, the last one the blank line.  Plain: the request
    line and header lines as the patterns above, at most one Host and one Content-Length (all
    digits), no Transfer-Encoding, and not HAProxy's 413 case.  A strict subset of what
    :func:`check` lets through (whatever ``accept_invalid``, which only loosens), so check()
    stays the one definition of HAProxy's rules; the size rule is the caller's."""
    start = _PLAIN_REQUEST_LINE.fullmatch(request_line)
    if start is None or lines[-1] not in (b"\r\n", b"\n"):
        return None
    fields = []
    field = _PLAIN_FIELD.fullmatch
    host = length = False
    for i in range(len(lines) - 1):
        m = field(lines[i])
        if m is None:
            return None
        name, value = m.groups()
        if name.lower() in _SEMANTIC:  # what check() reads: plain only in its simplest forms
            low = name.lower()
            if low == _HOST:
                if host:
                    return None  # two Host headers: the same or not
                host = True
            elif low == _CODING or length:
                return None
            else:
                digits = value.rstrip(_BLANKS)
                if not digits.isdigit() or len(digits) > 19:  # 19 digits: under 2**64
                    return None
                length = True
                if int(digits) and start[2] == b"HTTP/1.0" and start[1] in _NO_BODY_10:
                    return None  # HAProxy's 413
        fields.append((name, value))
    return fields


def check_raw(raw: bytes, **options: object) -> Refusal | None:
    """:func:`check` on a raw request: its head is what comes before the first blank line."""
    match = re.search(rb"\r?\n\r?\n", raw)
    return check(raw[:match.start()] if match else raw, **options)  # type: ignore[arg-type]


def check(head: bytes, *, bufsize: int = DEFAULT_BUFSIZE, maxrewrite: int = DEFAULT_MAXREWRITE,
          accept_invalid: bool = False) -> Refusal | None:
    """Whether HAProxy 2.6 refuses the request whose head (request line and header lines, CRLF
    or LF line ends, without the blank line) is ``head``; ``None`` when it would go on.

    :param accept_invalid: ``option accept-invalid-http-request``: 8-bit bytes and ``#`` in the
        target, non-token bytes in header names and an authority that is not the Host header
        pass (HAProxy's h1 parser only logs them then).
    """
    if len(head) + 4 > bufsize - maxrewrite:
        return Refusal(400, "the request head does not fit the buffer")
    lines = re.split(rb"\r?\n", head)
    while lines and not lines[0]:
        lines.pop(0)  # empty lines before a request are skipped
    if not lines:
        return None
    start = _request_line(lines[0], accept_invalid)
    if isinstance(start, Refusal):
        return start
    method, target, version = start
    headers = _headers(lines[1:], accept_invalid)
    if isinstance(headers, Refusal):
        return headers
    return (_host(method, target, headers, accept_invalid)
            or _framing(method, version, headers))


def _request_line(line: bytes, accept_invalid: bool) -> tuple[bytes, bytes, bytes] | Refusal:
    i, end = 0, len(line)
    while i < end and line[i] in _TOKEN:
        i += 1
    method = line[:i]
    if not method or i == end or line[i] not in _BLANKS:
        return Refusal(400, "the method is not a token, or nothing follows it (HTTP/0.9)")
    while i < end and line[i] in _BLANKS:
        i += 1
    t0 = i
    while i < end and line[i] not in _BLANKS:
        c = line[i]
        if c <= 32 or c == 127 or (not accept_invalid and (c > 127 or c == 0x23)):
            return Refusal(400, f"byte {c:#04x} in the request target")
        i += 1
    target = line[t0:i]
    while i < end and line[i] in _BLANKS:
        i += 1
    version = line[i:]
    if not target or not version:
        return Refusal(400, "no HTTP version (HTTP/0.9)")
    if not _VERSION.fullmatch(version):
        return Refusal(400, f"version {version!r}")
    return method, target, version


def _headers(lines: list[bytes], accept_invalid: bool) -> list[tuple[bytes, bytes]] | Refusal:
    out: list[tuple[bytes, bytes]] = []
    for line in lines:
        if b"\r" in line:
            return Refusal(400, "a bare CR in a header line")
        if line[:1] in (b" ", b"\t"):
            if not out:
                return Refusal(400, "a header line starts with a blank")
            name, value = out[-1]  # obs-fold: the line goes on the previous value
            out[-1] = (name, (value + b" " + line.strip(_BLANKS)).strip(_BLANKS))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or (not accept_invalid and any(c not in _TOKEN for c in name)):
            return Refusal(400, f"header name {name!r}")
        out.append((name.lower(), value.strip(_BLANKS)))
    return out


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


def _host(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
          accept_invalid: bool) -> Refusal | None:
    hosts = _values(headers, b"host")
    if len({h.lower() for h in hosts}) > 1:
        return Refusal(400, "two different Host headers")
    if not hosts or method == b"CONNECT" or target[:1] in (b"/", b"*") or accept_invalid:
        return None
    scheme = _SCHEME.match(target)
    if scheme is None:
        return None
    rest = target[scheme.end():]
    authority = b""
    if rest.startswith(b"//"):
        authority = re.split(rb"[/?]", rest[2:], maxsplit=1)[0]
        authority = authority.rpartition(b"@")[2]  # userinfo is not compared
    if not _same_authority(scheme.group(1).lower(), authority, hosts[0]):
        return Refusal(400, "the target's authority is not the Host header")
    return None


def _split_port(hostport: bytes) -> tuple[bytes, bytes | None]:
    # http_get_host_port(): the digits after the last ':' outside an IPv6 literal
    at = hostport.rfind(b":")
    if at < 0 or b"]" in hostport[at:]:
        return hostport, None
    return hostport[:at], hostport[at + 1:]


def _same_authority(scheme: bytes, authority: bytes, host: bytes) -> bool:
    """``h1_validate_mismatch_authority()``: equal, or equal but for a default port."""
    if authority.lower() == host.lower():
        return True
    default = {b"http": b"80", b"https": b"443"}.get(scheme)
    a_host, a_port = _split_port(authority)
    h_host, h_port = _split_port(host)
    if a_port is None and h_port is None:
        return False
    if a_port is not None and a_port != default:
        return False
    if h_port is not None and h_port != default:
        return False
    return a_host.lower() == h_host.lower()


def _framing(method: bytes, version: bytes,
             headers: list[tuple[bytes, bytes]]) -> Refusal | None:
    length: int | None = None
    for value in _values(headers, b"content-length"):
        for word in value.split(b","):
            word = word.strip(_BLANKS)
            if not word.isdigit():
                return Refusal(400, f"Content-Length {value!r}")
            n = int(word)
            if n >= 1 << 64 or (length is not None and n != length):
                return Refusal(400, "Content-Length values differ")
            length = n
    codings = [w.strip(_BLANKS).lower() for v in _values(headers, b"transfer-encoding")
               for w in (v.split(b",") if v else [b""])]
    chunked = False
    if codings:
        if codings[-1] == b"" and len(codings) > 1:
            codings.pop()  # "chunked," passes (observed)
        if b"" in codings or codings.count(b"chunked") > 1:
            return Refusal(400, "Transfer-Encoding empty or chunked twice")
        if b"chunked" in codings and codings[-1] != b"chunked":
            return Refusal(400, "a Transfer-Encoding coding after chunked")
        if codings[-1] != b"chunked":
            return Refusal(400, "Transfer-Encoding does not end with chunked")
        if len(codings) > 1:
            return Refusal(422, "a Transfer-Encoding coding other than chunked")
        chunked = True
    body = chunked or bool(length)
    if body and version == b"HTTP/1.0" and method in _NO_BODY_10:
        return Refusal(413, "an HTTP/1.0 GET, HEAD or DELETE with a body")
    return None
