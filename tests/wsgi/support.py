"""Shared pieces of the WSGI middleware tests: an example-like agent (FakeAgent handlers), its
SPOE config, a gevent.pywsgi server on a TCP_NODELAY loopback listener, and a small HTTP/1.1
client over real sockets (keep-alive, chunked and sized bodies)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import gevent
from gevent import socket
from gevent.pywsgi import WSGIServer

from spoe_sync.protocol import Message, SetVar, VarScope
from spoe_sync.wsgi import SpoeWSGIHandler, listener

CONF = """[test]
spoe-agent test-agent
    messages check-client check-request check-backend check-response
    groups grp-body grp-path
    option var-prefix test
    option set-on-error error
    timeout hello 1s
    timeout idle 30s
    timeout processing 300ms
    use-backend agents

spoe-message check-client
    args ip=src
    event on-client-session

spoe-message check-request
    args ip=src path=path act=req.hdr(x-action) data=req.hdr(x-data) seen=var(txn.test.seen)
    event on-frontend-http-request

spoe-message check-backend
    args path=path
    event on-backend-http-request if { req.hdr(x-backend) -m found }

spoe-message check-response
    args status=status ctype=res.hdr(content-type)
    event on-http-response

spoe-message check-body
    args body=req.body len=req.body_size
spoe-group grp-body
    messages check-body

spoe-message check-path
    args path=path app=var(txn.app)
spoe-group grp-path
    messages check-path
"""

# Load tests: 100 clients and the in-process FakeAgent share one loaded CI core; 300ms can pass
# between a NOTIFY and its ACK there without anything being wrong.
LOAD_CONF = CONF.replace("timeout processing 300ms", "timeout processing 10s")
assert LOAD_CONF != CONF

# A second engine for the "several engines" tests: sets txn.other.*.
CONF_OTHER = """[other]
spoe-agent other-agent
    messages other-request
    groups other-grp
    option var-prefix other
    timeout hello 1s
    timeout idle 30s
    timeout processing 300ms
    use-backend others

spoe-message other-request
    args path=path seen=var(txn.test.action)
    event on-frontend-http-request

spoe-message other-msg
    args app=var(txn.app)
spoe-group other-grp
    messages other-msg
"""


def example_handler(message: Message) -> list[SetVar]:
    """What the example agent answers: an IP score per client session, the action asked by
    the request's ``x-action`` header, the response status, the body size."""
    args = dict(message.args)
    if message.name == "check-client":
        return [SetVar(VarScope.SESS, "ip_score", 10)]
    if message.name == "check-request":
        out = [SetVar(VarScope.TXN, "action", args.get("act") or "allow"),
               SetVar(VarScope.TXN, "path", args.get("path") or "")]
        if args.get("data"):
            out.append(SetVar(VarScope.TXN, "data", args["data"]))
        return out
    if message.name == "check-backend":
        return [SetVar(VarScope.TXN, "backend", "seen")]
    if message.name == "check-response":
        return [SetVar(VarScope.TXN, "status", int(args["status"])),
                SetVar(VarScope.TXN, "ctype", args.get("ctype") or "")]
    if message.name == "check-body":
        body = args.get("body")
        return [SetVar(VarScope.TXN, "body_len", len(body) if body is not None else -1),
                SetVar(VarScope.TXN, "body_size", args.get("len") if args.get("len")
                       is not None else -1)]
    if message.name == "check-path":
        return [SetVar(VarScope.TXN, "grp_app", args.get("app") or "none")]
    if message.name == "other-request":
        return [SetVar(VarScope.TXN, "seen", args.get("seen") or "nothing")]
    if message.name == "other-msg":
        return [SetVar(VarScope.TXN, "app", args.get("app") or "none")]
    return []


def echo_app(environ, start_response):
    """Answers with what it saw: variables, headers, the body it read."""
    v = environ["spoe_sync.vars"]
    body = environ["wsgi.input"].read()
    lines = [f"{k}={v.get(k)}" for k in ("sess.test.ip_score", "txn.test.action",
                                          "txn.test.backend", "txn.test.grp_app",
                                          "txn.test.body_len", "txn.test.error",
                                          "txn.other.seen", "txn.other.app", "txn.mine")]
    lines.append(f"x-added={environ.get('HTTP_X_ADDED')}")
    lines.append(f"x-drop={environ.get('HTTP_X_DROP')}")
    lines.append(f"body={len(body)}")
    lines.append(f"results={len(environ['spoe_sync.results'])}")
    payload = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "1"),
                              ("Content-Length", str(len(payload)))])
    return [payload]


def parse_echo(body: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)


@contextlib.contextmanager
def serve(app, handler_class: type = SpoeWSGIHandler) -> Iterator[int]:
    server = WSGIServer(listener(("127.0.0.1", 0)), app, handler_class=handler_class,
                        log=None, error_log=None)
    server.start()
    try:
        yield server.server_port
    finally:
        server.stop(timeout=1)


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None


class Client:
    """HTTP/1.1 over one keep-alive connection; every read bounded by ``timeout``."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buf += data

    def _line(self) -> bytes:
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()
        raise AssertionError("line too long")

    def _exact(self, n: int) -> bytes:
        for _ in range(100000):
            if len(self.buf) >= n:
                out, self.buf = self.buf[:n], self.buf[n:]
                return out
            self._fill()
        raise AssertionError("body too long")

    def send(self, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes = b"", chunked: bool = False) -> None:
        hdrs = {"Host": "test.local", **(headers or {})}
        if chunked:
            hdrs["Transfer-Encoding"] = "chunked"
        elif body or method in ("POST", "PUT"):
            hdrs["Content-Length"] = str(len(body))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        if chunked:
            parts = [body[i:i + 4096] for i in range(0, len(body), 4096)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        else:
            payload = body
        self.sock.sendall(head.encode("latin-1") + b"\r\n" + payload)

    def receive(self, method: str = "GET") -> Response:
        status_line = self._line().decode("latin-1")
        _, code, reason = ([*status_line.split(" ", 2), ""])[:3]
        headers = []
        for _ in range(1000):
            line = self._line()
            if not line:
                break
            n, _, v = line.decode("latin-1").partition(":")
            headers.append((n.strip(), v.strip()))
        resp = Response(int(code), reason, headers, b"")
        te = resp.header("transfer-encoding")
        if method == "HEAD" or int(code) in (204, 304):
            return resp
        if te and "chunked" in te.lower():
            parts = []
            for _ in range(100000):
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    self._line()
                    break
                parts.append(self._exact(size))
                self._line()
            resp.body = b"".join(parts)
        else:
            resp.body = self._exact(int(resp.header("content-length") or 0))
        return resp

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"", chunked: bool = False) -> Response:
        self.send(method, path, headers, body, chunked)
        return self.receive(method)

    def closed_without_response(self, timeout: float = 3.0) -> bool:
        """The server closed (FIN or RST) without sending a byte."""
        with gevent.Timeout(timeout, False):
            try:
                data = self.sock.recv(1)
            except OSError:
                return not self.buf
            return data == b"" and not self.buf
        return False


def get(port: int, path: str, headers: dict[str, str] | None = None, **kw) -> Response:
    with Client(port) as c:
        return c.request("GET", path, headers, **kw)
