"""Helpers of :mod:`spoe_sync.wsgi`: the per-connection handler, request and response body
buffering, the TCP_NODELAY listener, silent-drop, header edits, the ``acl`` lines of a haproxy.cfg
section and the Prometheus stats endpoint.
"""

from __future__ import annotations

import errno
import io
import socket as _stdsocket
import struct
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from gevent import pywsgi, socket
from gevent.pywsgi import WSGIHandler
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..config.lexer import LexError, split_lines, tokenize
from ..config.loader import read_source
from ..config.rule_actions import reason_phrase
from ..engine.vars import Session
from ..rules.sources import to_address
from ..rules.wsgisource import (
    LOCAL_ADDR_KEY,
    RAW_HEADERS_KEY,
    RAW_URI_KEY,
    WSGISamples,
    handler_environ,
)

__all__ = ["CONNECTION_KEY", "SOCKET_KEY", "Body", "Connection", "HttpResponse", "SpoeStats",
           "SpoeWSGIHandler", "buffer_request_body", "buffer_response", "close_result",
           "connection_for", "hook_reply", "listener", "request_samples", "section_acls",
           "section_option",
           "silent_drop"]

CONNECTION_KEY = "spoe_sync.connection"
SOCKET_KEY = "spoe_sync.socket"
BODY_KEY = "spoe_sync.body"
# gevent.pywsgi's error for a malformed request body (answered 400 by the server)
_BAD_INPUT: Any = getattr(pywsgi, "_InvalidClientInput", ())


#: the largest first body chunk sent in one send() with the response head
_COALESCE_MAX = 16384
_HOLD = object()
# gevent.pywsgi's log for log=None (a private class: nothing matches it if it goes away)
_NO_LOG: Any = getattr(pywsgi, "_NoopLog", ())


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
    with less work: the response head and a first body chunk of up to 16 KiB in one send, and
    no access-log line formatted when the server has no log (``log=None``)::

        WSGIServer(listener(("127.0.0.1", 8080)), application, handler_class=SpoeWSGIHandler)
    """

    _spoe_connection: Connection | None = None
    #: the response head held back to go out with the first body chunk (see _sendall)
    _spoe_head: Any = None

    def _write_with_headers(self, data: bytes) -> None:
        # gevent sends the head and the first body chunk in two send() calls: one syscall
        # and one TCP segment more per response, and a Nagle stall without TCP_NODELAY.
        # A small first chunk goes out with the head instead (same bytes on the wire).
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
            head += data
            data = head
        super()._sendall(data)  # type: ignore[misc]

    def log_request(self) -> None:
        # gevent formats the access-log line (datetime.now(), strftime...) even for a server
        # without a log (log=None): skip the formatting when it would be thrown away.
        if not isinstance(self.server.log, _NO_LOG):
            super().log_request()

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        conn = self._spoe_connection
        if conn is None:
            # the first request of the connection: the local address (a getsockname()
            # syscall) once per connection
            conn = self._spoe_connection = Connection()
            local = handler_environ(self).get(LOCAL_ADDR_KEY)
            parsed = to_address(local)
            conn.local = parsed if parsed is not None else local
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


_BY_SOCKET: weakref.WeakKeyDictionary[Any, Connection] = weakref.WeakKeyDictionary()


def client_socket(environ: dict[str, Any]) -> Any:
    """The client socket when the server exposes it (SpoeWSGIHandler, gunicorn)."""
    for key in (SOCKET_KEY, "gunicorn.socket", "gunicorn.sock"):
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
    sock = client_socket(environ)
    if sock is not None:
        try:
            conn = _BY_SOCKET.get(sock)
            if conn is None:
                conn = _BY_SOCKET[sock] = Connection()
            return conn
        except TypeError:  # not weak-referenceable
            pass
    return Connection()


def request_samples(environ: dict[str, Any], conn: Connection) -> WSGISamples:
    """The request's :class:`~spoe_sync.samples.WSGISamples` (fields read when first used)."""
    return WSGISamples(environ)


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


class _PrefixedInput(io.RawIOBase):
    """``wsgi.input`` for a body read in part: the buffered bytes, then the rest."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self._prefix = io.BytesIO(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._prefix.read() + (self._rest.read() or b"")
        data = self._prefix.read(size)
        if len(data) < size:
            data += self._rest.read(size - len(data)) or b""
        return data

    def readline(self, size: int | None = -1) -> bytes:
        line = self._prefix.readline(-1 if size is None else size)
        if line.endswith(b"\n") or (size is not None and 0 <= size <= len(line)):
            return line
        more = self._rest.readline() if size is None or size < 0 else \
            self._rest.readline(size - len(line))
        return line + (more or b"")

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def buffer_request_body(environ: dict[str, Any], limit: int) -> bytes:
    """Read up to ``limit`` bytes of the request body (``option http-buffer-request``), put
    them in ``spoe_sync.body`` for ``req.body`` and give the app an equivalent ``wsgi.input``.

    A body larger than ``limit`` is truncated for ``req.body``, as HAProxy's buffer does;
    the app still reads all of it (the buffered part, then the rest from the client).
    """
    length_text = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    try:
        length: int | None = int(length_text) if length_text else (None if chunked else 0)
    except ValueError:
        length = None
    inp = environ.get("wsgi.input")
    if inp is None or length == 0:
        environ[BODY_KEY] = b""
        return b""
    want = limit if length is None else min(length, limit)
    parts: list[bytes] = []
    got = 0
    extra = b""
    try:
        while got < want:
            data = inp.read(want - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        if length is None and got >= want:
            extra = inp.read(1) or b""  # is there more than the buffer holds?
    except _BAD_INPUT:
        raise  # a malformed body: the server answers 400, as HAProxy does
    except OSError:
        # The client went away mid-body: HAProxy aborts the stream (CD in its log) and has
        # nobody to answer; EPIPE makes the server close the connection quietly.
        raise OSError(errno.EPIPE, "client aborted while its body was buffered") from None
    body = b"".join(parts)
    complete = (length is not None and got >= length) or (length is None and not extra) or (
        length is not None and got < want)
    environ["wsgi.input"] = io.BytesIO(body) if complete else _PrefixedInput(body + extra, inp)
    environ[BODY_KEY] = body
    return body


def environ_key(name: str) -> str:
    """The PEP 3333 environ key of a request header (``HTTP_X_A``, ``CONTENT_TYPE``)."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def set_request_header(environ: dict[str, Any], name: str, value: str | None,
                       add: bool = False) -> None:
    """Edit a request header in the environ (``HTTP_*``) and the raw header list."""
    key = environ_key(name)
    raw = environ.get("spoe_sync.raw_headers")
    if isinstance(raw, list):
        raw = [(n, v) for n, v in raw if add or n.lower() != name.lower()]
        if value is not None:
            raw.append((name, value))
        environ["spoe_sync.raw_headers"] = raw
    if value is None:
        environ.pop(key, None)
    elif add and environ.get(key):
        environ[key] = f"{environ[key]},{value}"
    else:
        environ[key] = value


def delete_request_headers(environ: dict[str, Any], matches: Any) -> None:
    raw = environ.get("spoe_sync.raw_headers")
    if isinstance(raw, list):
        environ["spoe_sync.raw_headers"] = [(n, v) for n, v in raw if not matches(n)]
    for key in [k for k in environ if isinstance(k, str)]:
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-")
        else:
            continue
        if matches(name):
            del environ[key]


class SpoeStats:
    """Prometheus exposition of the engines' counters (prometheus-client, own registry).

    :param engines: a callable returning the live engines (``[]`` before the first request).
    """

    def __init__(self, engines: Any) -> None:
        self._engines = engines
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)
        self._children: dict[tuple[str, str, str, int], Any] = {}
        self.processing = Histogram(
            "spoe_processing_seconds", "Time SPOE added to a stream per event or group (pT)",
            ["engine", "kind", "name", "status"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def observe(self, engine: str, kind: str, name: str, status: int, seconds: float) -> None:
        key = (engine, kind, name, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.processing.labels(engine, kind, name, str(status))
        child.observe(seconds)

    def collect(self) -> Iterator[Any]:
        gauges = {"applets": "Agent connections alive", "idles": "Idle agent connections",
                  "nb_sending": "Frames queued or being written",
                  "nb_waiting": "Frames waiting for their ACK",
                  "in_progress": "Events and groups being processed"}
        counters = {"nb_processed": "Events and groups processed",
                    "nb_errors": "Processings that ended in error",
                    "nb_skipped": "Processings that sent nothing",
                    "nb_interrupted": "Processings interrupted by the caller",
                    "streams": "Streams created", "connections_opened": "Agent connections opened",
                    "frames_sent": "NOTIFY frames sent", "acks_received": "ACK frames received"}
        snapshots = [(e.config.engine_id, e.agent.name, e.metrics()) for e in self._engines()]
        for attr, doc in gauges.items():
            g = GaugeMetricFamily(f"spoe_{attr}", doc, labels=["engine", "agent"])
            for eid, agent, m in snapshots:
                g.add_metric([eid, agent], getattr(m, attr))
            yield g
        for attr, doc in counters.items():
            c = CounterMetricFamily(f"spoe_{attr.removeprefix('nb_')}", doc,
                                    labels=["engine", "agent"])
            for eid, agent, m in snapshots:
                c.add_metric([eid, agent], getattr(m, attr))
            yield c

    def describe(self) -> Sequence[Any]:
        return []

    def render(self) -> tuple[str, bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)


class HttpResponse:
    """The app's response as rules see and edit it (hooks get it too)."""

    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status, self.reason, self.headers = status, reason, headers

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}"


_SECTIONS = ("frontend", "backend", "listen", "global", "defaults", "resolvers", "peers",
             "userlist", "ring", "program", "http-errors", "cache", "mailers", "log-forward")


def _section_lines(filename: str) -> Iterator[tuple[str | None, str, list[str], int]]:
    """``(section kind, section name, words, lineno)`` of each line of a haproxy.cfg."""
    text, _ = read_source(filename)
    kind: str | None = None
    name = ""
    for line in split_lines(text):
        try:
            words = tokenize(line.raw)
        except LexError:
            continue  # load_haproxy_cfg reported it
        if not words:
            continue
        if words[0] in _SECTIONS:
            kind, name = words[0], words[1] if len(words) > 1 else ""
        else:
            yield kind, name, words, line.lineno


def section_acls(filename: str, section: str) -> list[tuple[str, list[str], int]]:
    """The ``acl <name> ...`` lines of one proxy section of a haproxy.cfg."""
    return [(words[1], words[2:], lineno) for kind, name, words, lineno in
            _section_lines(filename) if kind in _SECTIONS[:3] and name == section
            and words[0] == "acl" and len(words) > 1]


def section_option(filename: str, section: str, keyword: str) -> str | None:
    """The argument of a one-argument ``keyword`` line (``unique-id-format``...) of a
    frontend/listen section, else of the last ``defaults`` section before it."""
    found: str | None = None
    for kind, name, words, _ in _section_lines(filename):
        if words[0] != keyword or len(words) < 2:
            continue
        if kind == "defaults" or (kind in ("frontend", "listen") and name == section):
            found = " ".join(words[1:])
    return found


def hook_reply(out: Any) -> tuple[int, str, list[tuple[str, str]], bytes]:
    status, headers, body = out
    status = int(status)
    return status, reason_phrase(status), list(headers), bytes(body)


def buffer_response(head: list[bytes], chunks: Iterator[bytes],
                    limit: int) -> tuple[list[bytes], bytes, Iterator[bytes]]:
    got = sum(len(c) for c in head)
    while got < limit:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        head.append(chunk)
        got += len(chunk)
    return head, b"".join(head)[:limit], chunks


def close_result(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class Body:
    """The app's body: the chunks read ahead, then the rest; closes the app's iterable."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], result: Any) -> None:
        self._head, self._rest, self._result = head, rest, result

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        close_result(self._result)
