"""SpoeWSGIHandler's response writes: the head and a small first body chunk leave in one send
(no Nagle stall between them, one syscall less per response); the bytes on the wire are the
ones gevent.pywsgi's own handler writes."""

from __future__ import annotations

import io
import re
import time

import gevent
import pytest
from gevent import socket
from gevent.pywsgi import WSGIHandler, WSGIServer, format_date_time

from spoe_sync.wsgi import SpoeWSGIHandler, listener


class _CountingSocket:
    """The accepted socket, recording the writes (send() and sendall() calls) the handler
    makes on it: what each one wrote."""

    def __init__(self, sock: socket.socket, sends: list[bytes]) -> None:
        self._sock, self._sends = sock, sends
        self.calls: list[str] = []

    def sendall(self, data: bytes) -> None:
        self.calls.append("sendall")
        self._sends.append(bytes(data))
        self._sock.sendall(data)

    def send(self, data: bytes) -> int:
        self.calls.append("send")
        sent: int = self._sock.send(data)
        self._sends.append(bytes(data[:sent]))
        return sent

    def __getattr__(self, name: str):  # recv, makefile, close...: the real socket's
        return getattr(self._sock, name)


class _Server(WSGIServer):
    def __init__(self, *args, sends: list[bytes], **kw) -> None:
        super().__init__(*args, **kw)
        self.sends = sends

    def handle(self, sock, address):
        self.socket_seen = _CountingSocket(sock, self.sends)
        super().handle(self.socket_seen, address)


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/chunked":  # no length: gevent uses chunked encoding
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (part for part in (b"abc", b"", b"def"))
    size = _size(path)
    if path == "/dated":  # the app's own Date: gevent adds none
        start_response("200 OK", [("Date", "Mon, 01 Jan 2001 00:00:00 GMT"),
                                  ("Content-Length", str(size))])
        return [b"x" * size]
    start_response("200 OK", [("Content-Length", str(size))])
    return [b"x" * size]


def _size(path: str) -> int:
    return 20000 if path == "/big" else 5


def _exchange(handler: type[WSGIHandler], path: str,
              raw: bool = False) -> tuple[bytes, list[bytes]]:
    sends: list[bytes] = []
    server = _Server(listener(("127.0.0.1", 0)), _app, handler_class=handler, log=None,
                     sends=sends)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=5) as client:
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            data = b""
            for _ in range(1000):  # bounded: until the whole response is in
                data += client.recv(65536)
                if data.endswith((b"0\r\n\r\n", b"x" * 5)) and len(data) >= _size(path):
                    break
    finally:
        server.stop(timeout=1)
    return data if raw else re.sub(rb"Date: [^\r]*", b"Date: -", data), sends


@pytest.mark.parametrize(("path", "spoe_sends"), [
    pytest.param("/", 1, id="small-body-with-head"),
    pytest.param("/chunked", 3, id="chunked-first-chunk-with-head"),
    pytest.param("/big", 2, id="large-body-apart"),
])
def test_head_and_first_chunk(path: str, spoe_sends: int) -> None:
    plain, plain_sends = _exchange(WSGIHandler, path)
    ours, our_sends = _exchange(SpoeWSGIHandler, path)
    assert ours == plain  # the same bytes, only fewer writes
    assert b"".join(our_sends) == b"".join(plain_sends)
    assert len(our_sends) == spoe_sends
    assert len(plain_sends) == spoe_sends + (1 if path != "/big" else 0)


def test_date_header_as_gevents() -> None:
    # the Date is formatted once a second: it is still the current second, in gevent's
    # format, and an app's own Date is the only one
    before = int(time.time())
    ours, _ = _exchange(SpoeWSGIHandler, "/", raw=True)
    after = int(time.time())
    (date,) = re.findall(rb"\r\nDate: ([^\r]*)", ours)
    assert date in {format_date_time(t) for t in range(before, after + 1)}
    plain, _ = _exchange(WSGIHandler, "/dated", raw=True)
    ours, _ = _exchange(SpoeWSGIHandler, "/dated", raw=True)
    assert ours == plain and ours.count(b"Date: ") == 1


def test_access_log_still_written() -> None:
    """Skipping the access-log line is only for log=None: a real log gets gevent's line."""
    access = io.StringIO()
    server = WSGIServer(listener(("127.0.0.1", 0)), _app, handler_class=SpoeWSGIHandler,
                        log=access)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=5) as client:
            client.sendall(b"GET /logged HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            for _ in range(1000):  # bounded: until the whole response is in
                data += client.recv(65536)
                if data.endswith(b"x" * 5):
                    break
    finally:
        server.stop(timeout=1)
    assert re.search(r'"GET /logged HTTP/1\.1" 200 \d+ ', access.getvalue())


def test_a_response_larger_than_the_socket_buffer_arrives_whole() -> None:
    """The handler writes a response with one send() first (gevent's sendall asks the kernel
    for SO_SNDBUF every time): what that send() leaves, when the client reads slowly, goes out
    after it, every byte in order."""
    body = bytes(range(256)) * (128 * 1024)  # 32 MiB: more than loopback's socket buffers

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    sends: list[bytes] = []
    server = _Server(listener(("127.0.0.1", 0)), app, handler_class=SpoeWSGIHandler, log=None,
                     sends=sends)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            gevent.sleep(0.2)  # the server fills the buffers meanwhile
            data = bytearray()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # bounded: until the whole response is in
                chunk = client.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
                if data.endswith(body[-1000:]) and len(data) > len(body):
                    break
    finally:
        server.stop(timeout=1)
    _head, _, received = bytes(data).partition(b"\r\n\r\n")
    assert received == body
    assert b"".join(sends) == bytes(data)
    calls = server.socket_seen.calls
    assert "send" in calls and "sendall" in calls  # the first send() took only a part
