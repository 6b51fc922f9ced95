"""spoe_sync's side of the rules conformance tests: a real gevent.pywsgi server (with
``SpoeWSGIHandler``) that evaluates sample expressions for each raw request it receives."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.pywsgi import WSGIServer

from spoe_sync.samples import SpoeWSGIHandler, WSGISamples

Evaluate = Callable[[WSGISamples], Any]


def exchange(sock: Any, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send one raw request and read its response (headers, plus the ``ok`` body unless the
    method is HEAD) without waiting for the peer to close: some requests keep the connection
    alive."""
    sock.sendall(raw)
    head_only = raw.startswith(b"HEAD ")
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        if b"\r\n\r\n" in data and (head_only or data.endswith(b"ok")):
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def raw_exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """:func:`exchange` on a blocking socket to 127.0.0.1:port (for HAProxy)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        return exchange(s, raw, timeout)


class EvalServer:
    """Serves on 127.0.0.1:0; each request's result of ``evaluate`` is kept in order."""

    def __init__(self, evaluate: Evaluate) -> None:
        self.results: list[Any] = []
        self._evaluate = evaluate
        self.server = WSGIServer(("127.0.0.1", 0), self._app, handler_class=SpoeWSGIHandler,
                                 log=None, error_log=None)
        self.server.start()
        self.port = self.server.server_port

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read()
        self.results.append(self._evaluate(WSGISamples(environ, body=body)))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    def request(self, raw: bytes, timeout: float = 5.0) -> Any:
        """Send ``raw`` on a fresh connection, wait for the response, return the result."""
        before = len(self.results)
        with gsocket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            data = exchange(s, raw, timeout)
        assert len(self.results) == before + 1, f"server saw no request: {data[:200]!r}"
        return self.results[-1]

    def close(self) -> None:
        self.server.stop(timeout=1)
        gevent.sleep(0)

    def __enter__(self) -> EvalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the variables both engines set before the message args and conditions run
VARS = {"txn.s": "deny", "txn.i": 42}


def raw_requests() -> Sequence[tuple[str, bytes]]:
    """The raw HTTP requests both engines get (byte for byte)."""
    return [
        ("duplicates-and-case", b"GET /some/path?x=1&y=2 HTTP/1.1\r\nHost: Golden.Example\r\n"
         b"X-List: a, b\r\nUser-Agent: curl/8.0 (x, y)\r\nx-list: \"c,d\", e\r\n"
         b"Cookie: sid=abc; other=1\r\nCOOKIE: sid=second;  empty=\r\n"
         b"X-Spaces: \t padded value \t\r\nConnection: close\r\n\r\n"),
        ("no-query-http10", b"GET /nq HTTP/1.0\r\nHost: h\r\n\r\n"),
        ("empty-query", b"GET /q? HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        ("post-body", b"POST /form?a=%41 HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 11\r\nConnection: close\r\n\r\nhello world"),
        ("percent-path", b"GET /a%20b/%7e/c+d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        ("absolute-uri", b"GET http://abs.example:8080/abs/p?z HTTP/1.1\r\nHost: abs.example:8080\r\n"
         b"Connection: close\r\n\r\n"),
        ("no-headers-but-host", b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ("long-header", b"GET /long HTTP/1.1\r\nHost: h\r\nX-Long: " + b"a" * 300 +
         b"\r\nConnection: close\r\n\r\n"),
        ("chunked-body", b"POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
         b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        ("non-ascii-and-empty", b"GET /caf%C3%A9 HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9\r\n"
         b"X-Empty:\r\nX-Utf8: \xc3\xa9t\xc3\xa9\r\nConnection: close\r\n\r\n"),
        ("unknown-method-upgrade", b"PURGE /x HTTP/1.1\r\nHost: h\r\n"
         b"Connection: keep-alive, Upgrade\r\nUpgrade: foo\r\nKeep-Alive: timeout=5\r\n\r\n"),
        ("absolute-ip-form", b"POST http://1.2.3.4:8080/p/q?x=1 HTTP/1.1\r\nHost: 1.2.3.4:8080\r\n"
         b"X-IP: 10.0.0.1, 10.0.0.2\r\nContent-Type: application/x-www-form-urlencoded\r\n"
         b"Content-Length: 11\r\nConnection: close\r\n\r\na=1&b=x%20y"),
        ("http10-keepalive", b"HEAD /h HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\n\r\n"),
        # no path: path/pathq NULL, base/baseq the Host alone (smp_fetch_base)
        ("options-star", b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    ]


RAW_RESPONSES: dict[str, bytes] = {
    "redirect": (b"HTTP/1.1 302 Found\r\nLocation: /x\r\nSet-Cookie: s=1; Path=/\r\n"
                 b"set-cookie: t=2\r\nX-List: a, b\r\nX-LIST: c\r\nX-Pad:  v \r\n"
                 b"Content-Length: 5\r\nConnection: close\r\n\r\nmoved"),
    "http10": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
    "empty-404": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "teapot-custom-reason": (b"HTTP/1.1 418 I Am A Teapot\r\nContent-Length: 3\r\n"
                             b"X-Latin: caf\xe9\r\nConnection: close\r\n\r\ntea"),
}


class RawResponder:
    """A threaded HTTP server on 127.0.0.1 answering ``GET /<name>`` with ``RAW_RESPONSES[name]``
    verbatim, then closing (HAProxy's backend server in the response tests); subclasses
    answer otherwise by overriding :meth:`_answer`."""

    def __init__(self) -> None:
        import threading

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                deadline = time.monotonic() + 2
                try:
                    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(self._answer(data))
                except OSError:
                    pass

    def _answer(self, request: bytes) -> bytes:
        """The bytes to send back for ``request`` (its head, as received)."""
        name = request.split(b" ", 2)[1].decode().lstrip("/") if b" " in request else ""
        return RAW_RESPONSES.get(name, RAW_RESPONSES["empty-404"])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> RawResponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_raw_response(raw: bytes) -> tuple[int, str, list[tuple[bytes, bytes]], bytes]:
    """Status, version, headers (as written) and body of a raw response: what a WSGI app gives
    ``start_response`` and returns."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    version, status = lines[0].split(b" ", 2)[:2]
    headers = [(n, v) for n, _, v in (line.partition(b":") for line in lines[1:])]
    return int(status), version.decode(), headers, body
