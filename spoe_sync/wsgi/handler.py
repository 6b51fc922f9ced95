"""The connection side of :mod:`spoe_sync.wsgi`: :class:`SpoeWSGIHandler` (gevent.pywsgi),
the TCP_NODELAY :func:`listener`, what lives as long as a client connection (:class:`Connection`)
and ``silent-drop`` on the client socket.
"""

from __future__ import annotations

import errno
import io
import socket as _stdsocket
import struct
import time
import weakref
from typing import Any

from gevent import pywsgi, socket
from gevent.pywsgi import WSGIHandler

from ..engine.vars import Session
from ..rules.sources import to_address
from ..rules.wsgisource import LOCAL_ADDR_KEY, RAW_HEADERS_KEY, RAW_URI_KEY, handler_environ
from .request_head import environ_headers, parse_head, plain_message
from .response_head import plain_head
from .validity import Refused, read_head_fields

__all__ = ["CONNECTION_KEY", "SOCKET_KEY", "Connection", "SpoeWSGIHandler", "client_socket",
           "connection_for", "listener", "silent_drop"]

CONNECTION_KEY = "spoe_sync.connection"
SOCKET_KEY = "spoe_sync.socket"
#: the largest first body chunk sent in one send() with the response head
_COALESCE_MAX = 16384
_HOLD = object()
#: gevent's PATH_INFO decoding (urllib's unquote for latin-1)
_unquote_latin1: Any = pywsgi.unquote_latin1  # type: ignore[attr-defined]
# gevent.pywsgi's log for log=None (a private class: nothing matches it if it goes away)
_NO_LOG: Any = getattr(pywsgi, "_NoopLog", ())
#: the ``Date`` response header of the current second: [second, value, header line]
_DATE: list[Any] = [-1, b"", b""]


def _http_date() -> list[Any]:
    """[second, value, header line] of gevent's ``Date`` now.  gevent formats the date
    (gmtime, %-formatting, encode) for every response; its value changes once a second."""
    now = int(time.time())
    if now != _DATE[0]:
        value = pywsgi.format_date_time(now)  # type: ignore[attr-defined]
        _DATE[:] = [now, value, b"Date: " + value + b"\r\n"]
    return _DATE


class Connection:
    """What lives as long as a client connection: its ``sess.*`` variables and its local
    address (read once)."""

    __slots__ = ("__weakref__", "local", "session")

    def __init__(self) -> None:
        self.session: Session | None = None
        self.local: Any = None


class SpoeWSGIHandler(WSGIHandler):
    """gevent.pywsgi handler for :class:`~spoe_sync.wsgi.SpoeMiddleware` (and for
    :class:`~spoe_sync.samples.WSGISamples` on its own).

    gevent builds one handler per client connection and runs every keep-alive request of it,
    so the handler owns the connection's :class:`Connection` (``sess.*`` variables).  Its
    environ also carries the raw header list in arrival order, the raw request-target, the
    local address (see :mod:`spoe_sync.rules.wsgisource`) and the client socket
    (``spoe_sync.socket``, for ``silent-drop``).  It writes the same bytes as gevent's handler
    with less work: a plain request head (see :func:`~spoe_sync.wsgi.validity.plain_fields`)
    checked by two compiled patterns and parsed once, into the same header object and the same
    environ as gevent's (other heads: HAProxy's rules in full, then gevent's parser without the
    e-mail parser where the lines allow it); a response head it has met before written from
    the heads already checked (``spoe_sync.wsgi.response_head``; gevent's
    ``start_response`` otherwise), with a first body chunk of up to 16 KiB in one send; the
    ``Date`` header formatted once a second, and no access-log line formatted when the server
    has no log (``log=None``)::

        WSGIServer(listener(("127.0.0.1", 8080)), application, handler_class=SpoeWSGIHandler)
    """

    _spoe_connection: Connection | None = None
    #: the response head held back to go out with the first body chunk (see _sendall)
    _spoe_head: Any = None
    #: the head of a response met before (response_head.plain_head), until it is sent; None
    #: when gevent's start_response took the response
    _spoe_lines: bytes | None = None
    #: the response methods are SpoeWSGIHandler's (see _plain_response): the shortcuts hold;
    #: None until the connection's first start_response
    _spoe_plain_response: bool | None = None
    # gevent's handler state, as gevent really keeps it: types-gevent's stubs say str where
    # gevent stores bytes (status, response_headers), and Optional where it is set by then
    result: Any  # what the application returned
    status: Any
    response_headers: Any
    code: Any
    environ: Any
    application: Any
    path: Any
    headers: Any
    content_length: Any
    _write: Any
    _connection_upgrade_requested: Any

    def start_response(self, status: Any, headers: Any, exc_info: Any = None) -> Any:
        plain = self._spoe_plain_response
        if plain is None:
            plain = self._spoe_plain_response = _plain_response(type(self))
        head = None if exc_info or not plain else plain_head(status, headers)
        if head is None or (head[2] in (304, 204) and head[6] is not None and head[6] != "0"):
            # a head met for the first time, exc_info, an unusual type, a bad status or
            # header, a 204/304 with a length: gevent's code, for its exact errors and state
            self._spoe_lines = None
            return super().start_response(status, headers, exc_info)
        # the state gevent's start_response leaves, as it left it the last time
        lines, self.status, self.code, pairs, connection, date, length = head
        self._orig_status = status
        self.response_headers = response_headers = [*pairs]
        self.provided_date, self.provided_content_length = date, length
        if self.request_version == "HTTP/1.0" and connection is None:
            value = b"close" if self.close_connection else b"keep-alive"
            response_headers.append((b"Connection", value))
            lines += b"Connection: " + value + b"\r\n"
        elif connection == "close":
            self.close_connection = True
        self._spoe_lines = lines
        return self.write

    def finalize_headers(self) -> bytes:  # type: ignore[override]
        # gevent's, with the Date formatted once a second; it also returns the header lines it
        # added, for the fast head (gevent's caller ignores them)
        add = self.response_headers.append
        added = b""
        if self.provided_date is None:
            _second, value, added = _http_date()
            add((b"Date", value))
        code = self.code
        self.connection_upgraded = code == 101
        if code not in (304, 204) and self.provided_content_length is None:
            result: Any = self.result
            if hasattr(result, "__len__"):
                total = str(sum(len(chunk) for chunk in result)).encode("latin-1")
                add((b"Content-Length", total))
                added += b"Content-Length: " + total + b"\r\n"
            else:
                self.response_use_chunked = (not self.connection_upgraded
                                             and self.request_version != "HTTP/1.0")
                if self.response_use_chunked:
                    add((b"Transfer-Encoding", b"chunked"))
                    added += b"Transfer-Encoding: chunked\r\n"
        return added

    def run_application(self) -> None:
        # gevent's, with its process_result() done here for the plain result (a list or
        # tuple of one bytes chunk or none, nothing written yet): gevent's loop would write()
        # that chunk (or b"") with the head, its length from the app or from the list, never
        # chunked.  (The status is None until the app calls start_response.)
        assert self.result is None
        try:
            result: Any = self.application(self.environ, self.start_response)
            self.result = result
            if (self.status and self._spoe_plain_response and not self.headers_sent
                    and type(result) in (list, tuple) and len(result) < 2):
                data = result[0] if result else b""
                if type(data) is bytes and not (data and self.code in (304, 204)):
                    self._write_with_headers(data)
                    return
            self.process_result()
        finally:
            close: Any = getattr(self.result, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                close = None  # gevent frees the result (a generator's frames) at once
                self.result = None

    def _write_with_headers(self, data: bytes) -> None:
        # gevent sends the head and the first body chunk in two send() calls: one syscall
        # and one TCP segment more per response, and a Nagle stall without TCP_NODELAY.
        # A small first chunk goes out with the head instead (same bytes on the wire).
        lines = self._spoe_lines
        self._spoe_lines = None
        if type(data) is bytes:
            self.headers_sent = True
            if lines is not None:  # the head start_response found, finished as gevent does
                head = lines + self.finalize_headers() + b"\r\n"
            else:  # gevent's start_response took it: gevent's head, in one join
                self.finalize_headers()
                head = b"".join([b"HTTP/1.1 ", self.status, b"\r\n",
                                 *[name + b": " + value + b"\r\n"
                                   for name, value in self.response_headers], b"\r\n"])
            if not data or len(data) > _COALESCE_MAX:
                self._sendall(head)
                self._write(data)  # gevent private API
            elif self.response_use_chunked:  # gevent's _write() framing
                self._sendall(head + b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                self._sendall(head + data)
            return
        if not data or len(data) > _COALESCE_MAX:
            super()._write_with_headers(data)  # type: ignore[misc]  # gevent private API
            return
        self._spoe_head = _HOLD
        try:
            super()._write_with_headers(data)  # type: ignore[misc]
        finally:
            # a non-empty chunk always reaches _sendall: nothing is left held here
            self._spoe_head = None

    def _sendall(self, data: Any) -> None:
        head = self._spoe_head
        if head is not None:
            if head is _HOLD:  # the head: held until the chunk comes
                self._spoe_head = data
                return
            self._spoe_head = None
            try:
                head += data
                data = head
            except TypeError:  # not bytes (an app's str): the head, then gevent's error
                super()._sendall(head)  # type: ignore[misc]
        if type(data) is not bytes or not data:
            super()._sendall(data)  # type: ignore[misc]
            return
        # gevent's _sendall with one send() first: gevent's socket.sendall() asks the kernel
        # for SO_SNDBUF (a getsockopt() syscall) and slices a memoryview for every response,
        # where one send() takes a small response whole; the rest, if any, goes through it
        sock = self.socket
        try:
            sent = sock.send(data)
            if sent < len(data):
                sock.sendall(memoryview(data)[sent:])
        except OSError as ex:  # what gevent's _sendall does on an error
            self.status = f"socket error: {ex}"
            if self.code > 0:
                self.code = -self.code
            raise
        self.response_length += len(data)

    # HTTP validity (spoe_sync.wsgi.validity): what HAProxy answers itself (400, 413, 422) is
    # answered here with HAProxy's bytes, before any event, and the connection closed; the
    # head is read raw for that, then handed to gevent's parser.
    _spoe_header_block: bytes | None = None
    #: HAProxy's ``option accept-invalid-http-request``: 8-bit bytes and ``#`` in the target,
    #: odd header names and an authority that differs from Host are served (set it on a
    #: subclass)
    accept_invalid_http_request = False
    #: the header list as parsed, before gevent drops Content-Length for Transfer-Encoding
    #: (HAProxy drops it too, but still counts it in req.body_size: the rules need it)
    _spoe_raw_headers: Any = None

    #: parse a plain head once (False: always gevent's read_request, for differential tests)
    _spoe_plain_heads = True
    #: the request was read by _plain_request (and its environ can be made by _plain_environ)
    _spoe_plain = False
    #: _plain_environ() stands for gevent's get_environ() only while the hooks it inlines are
    #: gevent's (a subclass may override them)
    _spoe_plain_environ = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._spoe_plain_environ = (
            cls._headers is SpoeWSGIHandler._headers
            and cls._connection_upgrade_requested
            is WSGIHandler._connection_upgrade_requested)  # type: ignore[attr-defined]

    def read_request(self, raw_requestline: str) -> bool:  # type: ignore[override]
        line = raw_requestline.encode("latin-1")
        block, fields = read_head_fields(self.rfile, line,
                                         accept_invalid=self.accept_invalid_http_request,
                                         fast=self._spoe_plain_heads)
        if fields is not None:
            msg = plain_message(fields)
            if msg is not None:
                return self._plain_request(raw_requestline, msg)
        self._spoe_plain = False
        self._spoe_header_block = block
        try:
            if not line.startswith(b"HEAD "):
                return bool(super().read_request(raw_requestline))
            # gevent refuses a HEAD request with a body (400); HAProxy serves it
            ok = super().read_request("GET" + raw_requestline[4:])
            self.command, self.requestline = "HEAD", raw_requestline.rstrip()
            return bool(ok)
        finally:
            self._spoe_header_block = None

    def _plain_request(self, raw_requestline: str, msg: Any) -> bool:
        # What gevent's read_request sets, from the head read_head_fields() found plain: one
        # "METHOD SP /target SP HTTP/1.x" line (three words), no Transfer-Encoding, at most one
        # Content-Length of digits (never negative; a HEAD with a body is served, as above)
        self._spoe_plain = self._spoe_plain_environ
        self.requestline = requestline = raw_requestline.rstrip()
        self.command, self.path, self.request_version = requestline.split()
        self.headers = msg
        self._spoe_raw_headers = msg._headers
        length = msg.get("content-length")
        self.content_length = None if length is None else int(length)
        if self.request_version == "HTTP/1.1":
            self.close_connection = msg.get("Connection", "").lower() == "close"
        else:  # HTTP/1.0
            self.close_connection = msg.get("Connection", "close").lower() != "keep-alive"
        return True

    def _check_http_version(self) -> bool:
        # read_head() let through what HAProxy accepts: any HTTP/<d>.<d> (HTTP/2.0 in an
        # HTTP/1 request line is served as 1.1), where gevent refuses >= 2.0
        return True

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # gevent's name
        # the block read_head() already read; parsed without the e-mail parser when it is plain
        # (see request_head), by gevent's own parser otherwise
        block = self._spoe_header_block
        msg = parse_head(fp if block is None else io.BytesIO(block), super().MessageClass)
        self._spoe_raw_headers = getattr(msg, "_headers", None)  # del rebinds, never edits it
        return msg

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, Refused):
            return str(ex.refusal.status), ex.refusal.response
        return super()._handle_client_error(ex)  # type: ignore[misc]

    def _headers(self) -> Any:
        items = environ_headers(self.headers)
        return items if items is not None else super()._headers()  # type: ignore[misc]

    def log_request(self) -> None:
        # gevent formats the access-log line (datetime.now(), strftime...) even for a server
        # without a log (log=None): skip the formatting when it would be thrown away.
        if not isinstance(self.server.log, _NO_LOG):
            super().log_request()

    def _plain_environ(self) -> dict[str, Any]:
        # gevent's get_environ() for a head read by _plain_request (token names, no folded
        # line, no Transfer-Encoding): one pass over the header pairs where gevent makes 5
        # Message.get() calls and a generator; the same keys, values and order
        env: dict[str, Any] = self.server.get_environ()
        env["REQUEST_METHOD"] = self.command
        env["SCRIPT_NAME"] = ""
        path, query = self.path.split("?", 1) if "?" in self.path else (self.path, "")
        env["PATH_INFO"] = _unquote_latin1(path) if "%" in path else path  # unquote's own test
        env["QUERY_STRING"] = query
        ctype = length = connection = upgrade = None  # the first of each, as Message.get()
        items = []
        for name, value in self.headers._headers:
            if "_" in name:  # gevent drops them (and no name get() looks for has one)
                continue
            key = name.replace("-", "_").upper()  # ASCII names: upper() is lower()'s twin
            if key == "CONTENT_TYPE":
                if ctype is None:
                    ctype = value
                continue
            if key == "CONTENT_LENGTH":
                if length is None:
                    length = value
                continue
            if key == "CONNECTION":
                if connection is None:
                    connection = value
            elif key == "UPGRADE" and upgrade is None:
                upgrade = value
            items.append(("HTTP_" + key, value.strip()))
        if ctype is not None:
            env["CONTENT_TYPE"] = ctype
        if length:
            env["CONTENT_LENGTH"] = length
        env["SERVER_PROTOCOL"] = self.request_version
        client_address = self.client_address
        if isinstance(client_address, tuple):
            env["REMOTE_ADDR"] = str(client_address[0])
            env["REMOTE_PORT"] = str(client_address[1])
        for key, value in items:
            if key in env:
                if "COOKIE" in key:
                    env[key] += "; " + value
                else:
                    env[key] += "," + value
            else:
                env[key] = value
        sock = self.socket if env.get("HTTP_EXPECT") == "100-continue" else None
        chunked = env.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        handling_reads = not ((connection or "").lower() == "upgrade"
                              or (upgrade or "").lower() == "websocket")
        self.wsgi_input = pywsgi.Input(self.rfile, self.content_length, socket=sock,
                                       chunked_input=chunked)
        env["wsgi.input"] = self.wsgi_input if handling_reads else self.rfile
        env["wsgi.input_terminated"] = handling_reads
        return env

    def get_environ(self) -> dict[str, Any]:
        env = self._plain_environ() if self._spoe_plain else super().get_environ()
        conn = self._spoe_connection
        if conn is None:
            # the first request of the connection: the local address (a getsockname()
            # syscall) once per connection
            conn = self._spoe_connection = Connection()
            local = handler_environ(self).get(LOCAL_ADDR_KEY)
            parsed = to_address(local)
            conn.local = parsed if parsed is not None else local
        raw = self._spoe_raw_headers
        if not isinstance(raw, list):
            raw = getattr(self.headers, "_headers", None)
        if isinstance(raw, list):
            env[RAW_HEADERS_KEY] = raw  # (name, value) text pairs; rule edits copy it
        if isinstance(self.path, str):
            env[RAW_URI_KEY] = self.path
        if conn.local is not None:
            env[LOCAL_ADDR_KEY] = conn.local
        env[CONNECTION_KEY] = conn
        env[SOCKET_KEY] = self.socket
        return env


#: the response methods the shortcuts of SpoeWSGIHandler stand for: a subclass that overrides
#: one of them (to add a header to response_headers, to write differently) gets gevent's
#: path through its own code
_RESPONSE_METHODS = ("start_response", "finalize_headers", "write", "process_result",
                     "_write_with_headers", "_write")
#: handler class -> whether its response methods are SpoeWSGIHandler's
_PLAIN_RESPONSE: dict[type, bool] = {}


def _plain_response(cls: type) -> bool:
    plain = _PLAIN_RESPONSE.get(cls)
    if plain is None:
        plain = _PLAIN_RESPONSE[cls] = all(
            getattr(cls, name) is getattr(SpoeWSGIHandler, name) for name in _RESPONSE_METHODS)
    return plain


_BY_SOCKET: weakref.WeakKeyDictionary[Any, Connection] = weakref.WeakKeyDictionary()


#: where servers put the client socket, in the order client_socket() reads them
_SOCKET_KEYS = (SOCKET_KEY, "gunicorn.socket", "gunicorn.sock")


def client_socket(environ: dict[str, Any]) -> Any:
    """The client socket when the server exposes it (SpoeWSGIHandler, gunicorn)."""
    for key in _SOCKET_KEYS:
        sock = environ.get(key)
        if sock is not None and hasattr(sock, "fileno"):
            return sock
    return None


def connection_for(environ: dict[str, Any]) -> Connection:
    """The client connection of a request; a fresh one per request when the server does
    not expose it (``sess.*`` then lasts one request)."""
    conn = environ.get(CONNECTION_KEY)
    if isinstance(conn, Connection):
        return conn
    # keyed by something that lives exactly as long as the client connection: its socket
    # where the server exposes it, else gevent's stock handler's buffered reader of the
    # socket (made once per connection, behind every request's wsgi.input); the socket keys
    # are looked for at once (gevent's stock handler has none: every request of it)
    sock = None if environ.keys().isdisjoint(_SOCKET_KEYS) else client_socket(environ)
    if sock is None:
        wsgi_input = environ.get("wsgi.input")
        if isinstance(wsgi_input, pywsgi.Input):
            sock = wsgi_input.rfile
    if sock is not None:
        try:
            conn = _BY_SOCKET.get(sock)
            if conn is None:
                conn = _BY_SOCKET[sock] = Connection()
            return conn
        except TypeError:  # not weak-referenceable
            pass
    return Connection()


def listener(address: tuple[str, int], backlog: int = 1024) -> socket.socket:
    """A listening gevent socket with TCP_NODELAY (inherited by accepted sockets on Linux).

    Without it gevent.pywsgi runs about 8x slower on keep-alive connections: it sends the
    headers and the body in two writes, and Nagle's algorithm holds the second one until the
    client's delayed ACK (~40 ms).
    """
    family = _stdsocket.AF_INET6 if ":" in address[0] else _stdsocket.AF_INET
    sock = socket.socket(family, _stdsocket.SOCK_STREAM)
    sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
    sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
    sock.bind(address)
    sock.listen(backlog)
    return sock


def silent_drop(environ: dict[str, Any]) -> OSError:
    """Close the client connection at once, without a response, and return the error to
    raise so that the server stops the request (gevent.pywsgi and gunicorn ignore EPIPE).

    HAProxy makes the connection vanish without telling the client; from user space the
    closest is an abortive close (SO_LINGER 0: an RST, no FIN, no response bytes) with the
    IP TTL lowered to 1 so the RST dies at the first router.  When the server does not expose
    the socket, the error alone ends the request (most servers then close the connection).
    """
    sock = client_socket(environ)
    if sock is not None:
        try:
            if sock.family == _stdsocket.AF_INET:
                sock.setsockopt(_stdsocket.IPPROTO_IP, _stdsocket.IP_TTL, 1)
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(_stdsocket.SHUT_RD)
        except OSError:
            pass
        try:
            sock.close()
            raw = getattr(sock, "_sock", None)
            if raw is not None:
                raw.close()
        except OSError:
            pass
    return OSError(errno.EPIPE, "SPOE silent-drop")
