"""Request and header rewrites (configuration.txt §4.2: ``set-path``, ``set-pathq``,
``set-query``, ``set-uri``, ``set-method``, ``set-src``, ``replace-header``, ``replace-value``,
``capture``) against HAProxy 2.6: for the same rule lines and client request, the WSGI app behind
SpoeMiddleware sees the environ a plain gevent.pywsgi server builds from the request HAProxy's
backend receives, and the client gets the same rewritten response headers.

Every case runs in one HAProxy and one middleware, selected by an ``x-case`` request header.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from gevent import socket as gsocket
from gevent.pywsgi import WSGIServer

from spoe_sync.wsgi import SpoeMiddleware, SpoeWSGIHandler
from tests.kit import free_port

from .cfgkit import haproxy_cfg, section
from .harness import run_haproxy
from .rules_support import RawResponder

pytestmark = pytest.mark.timeout(60)

# (case id, rules, request line, extra header lines)
CASES = [
    ("path", ["set-path /new%[path]"], "GET /a%20b?x=1", ""),
    ("path-absolute", ["set-path /b"], "GET http://h.test/a?z", ""),
    ("path-utf8", ["set-path /caf%%C3%%A9"], "GET /a", ""),
    ("path-raw-8bit", ["set-path /caf\xc3\xa9"], "GET /a", ""),
    ("path-qmark", ["set-path %[hdr(x-p)]"], "GET /a?z", "x-p: /a?b\r\n"),
    ("pathq", ["set-pathq /p?q=%[query]"], "GET /a?z", ""),
    ("pathq-drop", ["set-pathq /p"], "GET /a?z", ""),
    ("query", ["set-query a=b"], "GET /a", ""),
    ("query-empty-none", ["set-query %[hdr(x-none)]"], "GET /a", ""),
    ("query-empty-kept", ["set-query %[hdr(x-none)]"], "GET /a?z", ""),
    ("uri", ["set-uri /u?v"], "GET /a?z", ""),
    ("uri-authority", ["set-uri http://other.test/x?y"], "GET /a", ""),
    ("uri-relative-on-absolute", ["set-uri /rel"], "GET http://h.test/a?z", ""),
    ("method", ["set-method PURGE"], "GET /a", ""),
    ("src", ["set-src hdr(x-real-ip)"], "GET /", "X-Real-IP: 192.0.2.7\r\n"),
    ("src-v6", ["set-src hdr(x-real-ip)"], "GET /", "X-Real-IP: 2001:db8::7\r\n"),
    ("src-masked", ["set-src src,ipmask(24)"], "GET /", ""),
    ("src-not-ip", ["set-src hdr(x-real-ip)"], "GET /", "X-Real-IP: nope\r\n"),
    ("replace-header", [r"replace-header x-r ^a(.*)$ <\1>%[src]"], "GET /",
     "X-R: abc, aq\r\nX-R: xa\r\n"),
    ("replace-value", [r"replace-value x-v ^b(.*)$ [\1]"], "GET /",
     'X-V: b1, bb2 ,c, b3,,"b,5"\r\nX-V: x , b4\r\n'),
    ("replace-backrefs", [r"replace-header x-r (z+)(q)? \9\2\1\x41"], "GET /", "X-R: azzb\r\n"),
]
# both sides add these after each case's rules: later fetches see the rewritten request
# (``method`` is left out: HAProxy 2.6's method fetch keeps the original method, see the report)
AFTER = ["set-header x-after %[path]|%[query]|%[url]|%[base]", "set-header x-src %[src]",
         "capture req.hdr(host) len 4", "set-header x-cap %[capture.req.hdr(0)]"]
KEYS = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "HTTP_HOST", "HTTP_X_R", "HTTP_X_V",
        "HTTP_X_AFTER", "HTTP_X_SRC", "HTTP_X_CAP")
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-R: abc, aq\r\nX-R: xa\r\n"
            b"X-V: b1, bb2 ,c\r\nConnection: close\r\n\r\nok")
RESPONSE_RULES = ([r"replace-value x-v ^b(.*)$ <\1>"], [r"replace-header x-r ^x(a)$ \1\1"])


def rules() -> list[str]:
    out = []
    for name, lines, _, _ in CASES:
        out += [f"{line} if {{ req.hdr(x-case) -m str {name} }}" for line in lines]
    return out + AFTER


class RecordingBackend(RawResponder):
    """HAProxy's server: records each request head as received, answers :data:`RESPONSE`."""

    def __init__(self) -> None:
        self.heads: dict[str, bytes] = {}
        super().__init__()

    def _answer(self, request: bytes) -> bytes:
        head = request.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        case = next((ln.split(b":", 1)[1].strip().decode() for ln in
                     head.split(b"\r\n") if ln.lower().startswith(b"x-case:")), "")
        self.heads[case] = head
        return RESPONSE


def _request(case: str, line: str, extra: str) -> bytes:
    return (f"{line} HTTP/1.1\r\nHost: h.test\r\nx-case: {case}\r\n{extra}"
            "Connection: close\r\n\r\n").encode("latin-1")


def _exchange(sock: Any, raw: bytes) -> bytes:
    sock.sendall(raw)
    data = b""
    for _ in range(1000):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _headers(raw: bytes) -> list[tuple[str, str]]:
    lines = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (ln.partition(":") for ln in lines)]


class _EnvironServer:
    """A gevent.pywsgi server whose app keeps the :data:`KEYS` of each environ by case."""

    def __init__(self, wrap: Any = None, handler: Any = None) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            self.seen[environ.get("HTTP_X_CASE", "")] = {k: environ.get(k) for k in KEYS}
            self.seen[environ.get("HTTP_X_CASE", "")]["REMOTE_ADDR"] = environ["REMOTE_ADDR"]
            start_response("200 OK", [("Content-Length", "2"), ("X-R", "abc, aq"),
                                      ("X-R", "xa"), ("X-V", "b1, bb2 ,c")])
            return [b"ok"]

        self.app = wrap(app) if wrap else app
        kw = {"handler_class": handler} if handler else {}
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None, **kw)
        self.server.start()
        self.port = self.server.server_port

    def send(self, raw: bytes) -> bytes:
        with gsocket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            return _exchange(s, raw)

    def close(self) -> None:
        self.server.stop(timeout=1)


@pytest.fixture(scope="module")
def both(haproxy_bin, tmp_path_factory):
    """(HAProxy's backend request heads and client responses, ours) for every case."""
    backend = RecordingBackend()
    port = free_port()
    cfg = haproxy_cfg(port, *(f"http-request {r}" for r in rules()),
                      *(f"http-response {r}" for r in RESPONSE_RULES[0]),
                      *(f"http-after-response {r}" for r in RESPONSE_RULES[1]),
                      "default_backend be",
                      tail=section("backend be", f"server s 127.0.0.1:{backend.port}"))
    theirs: dict[str, bytes] = {}
    try:
        with run_haproxy(haproxy_bin, cfg, tmp_path_factory.mktemp("rewrite"), ready_port=port):
            for name, _, line, extra in CASES:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    theirs[name] = _exchange(s, _request(name, line, extra))
    finally:
        backend.close()
    plain = _EnvironServer()
    mw_holder: list[SpoeMiddleware] = []

    def wrap(app: Any) -> SpoeMiddleware:
        mw = SpoeMiddleware(app, http_request=rules(), http_response=RESPONSE_RULES[0],
                            http_after_response=RESPONSE_RULES[1])
        mw_holder.append(mw)
        return mw

    ours = _EnvironServer(wrap, SpoeWSGIHandler)
    responses: dict[str, bytes] = {}
    try:
        for name, _, line, extra in CASES:
            # what gevent.pywsgi makes of the request HAProxy forwarded
            assert name in backend.heads, (name, theirs[name][:300])
            # HAProxy drops the client's Connection header: close this one ourselves
            plain.send(backend.heads[name][:-2] + b"Connection: close\r\n\r\n")
            responses[name] = ours.send(_request(name, line, extra))
    finally:
        plain.close()
        ours.close()
    yield plain.seen, ours.seen, theirs, responses


@pytest.mark.parametrize("case", [pytest.param(c[0], id=c[0]) for c in CASES])
def test_app_sees_what_haproxy_backend_receives(both, case):
    expected, seen, _, _ = both
    want, got = dict(expected[case]), dict(seen[case])
    assert got["REMOTE_ADDR"] == got["HTTP_X_SRC"]  # REMOTE_ADDR is the new src
    want.pop("REMOTE_ADDR"), got.pop("REMOTE_ADDR")
    assert got == want


@pytest.mark.parametrize("case", [pytest.param(c[0], id=c[0]) for c in CASES[:3]])
def test_client_gets_the_same_rewritten_response_headers(both, case):
    _, _, theirs, ours = both
    pick = [(n, v) for n, v in _headers(theirs[case]) if n in ("x-r", "x-v")]
    assert pick == [(n, v) for n, v in _headers(ours[case]) if n in ("x-r", "x-v")]
    assert pick == [("x-r", "abc, aq"), ("x-r", "aa"), ("x-v", "<1>,<b2>,c")]
