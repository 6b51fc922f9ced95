"""SpoeWSGIHandler's response side against gevent.pywsgi's own handler, differentially: the
same responses (status lines, header sets, bodies, bad headers, 204/304, HTTP/1.0, HEAD,
start_response twice) go through a real server on 127.0.0.1 with each handler, and the raw
bytes on the wire, the errors the app sees and the handler's state after each response are
equal (the Date value aside).  The fast path (one-pass head, cached heads, lazy
response_headers) must never show."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from gevent import socket
from gevent.pywsgi import WSGIHandler, WSGIServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoe_sync.wsgi import SpoeWSGIHandler, listener
from spoe_sync.wsgi.response_head import plain_head

_STATE = ("status", "_orig_status", "code", "response_headers", "provided_date",
          "provided_content_length", "close_connection", "response_use_chunked",
          "response_length", "headers_sent", "connection_upgraded")


def _recording(base: type[WSGIHandler]) -> type[WSGIHandler]:
    class Recording(base):  # type: ignore[valid-type, misc]
        def log_request(self) -> None:  # called once per response, at its very end
            state = {name: getattr(self, name) for name in _STATE}
            state["response_headers"] = [
                (n, b"-" if n == b"Date" else v) for n, v in state["response_headers"] or ()]
            self.server.states.append(state)
            super().log_request()

    return Recording


class Case(NamedTuple):
    status: Any
    headers: Any
    body: Any = (b"hello",)  # the chunks; "gen" in kind: a generator of them
    kind: str = "list"  # list, tuple, gen, write, twice, raise, again


class _Server(WSGIServer):
    """A server whose handler records its state after each response (see _recording)."""

    states: list[dict[str, Any]]
    errors: list[Any]
    case: Case

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env["test.server"] = self
        return env


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    server = environ["test.server"]
    case: Case = server.case

    def start(status: Any, headers: Any, exc_info: Any = None) -> Any:
        try:
            return start_response(status, headers, exc_info)
        except Exception as ex:  # gevent's errors, compared across handlers
            server.errors.append((type(ex).__name__, str(ex)))
            start_response("500 Oops", [("Content-Length", "4")], sys.exc_info())
            return None

    if case.kind == "raise":  # an error after start_response: gevent's own 500
        start_response(case.status, case.headers)
        raise RuntimeError("boom")
    if case.kind == "twice":  # start_response again (exc_info), the second head wins
        start(case.status, case.headers)
        try:
            raise ValueError("late")
        except ValueError:
            write = start("201 Later", [("X-Second", "yes")], sys.exc_info())
    elif case.kind == "again":  # again without exc_info: gevent lets it replace the first
        start("202 First", [("X-First", "1"), ("Content-Length", "9")])
        write = start(case.status, case.headers)
    else:
        write = start(case.status, case.headers)
    if write is None:
        return [b"oops"]
    if case.kind == "write":  # the write() callable, then an empty result
        for chunk in case.body:
            write(chunk)
        return []
    if case.kind == "gen":
        return iter(list(case.body))
    return tuple(case.body) if case.kind == "tuple" else list(case.body)


def _servers() -> dict[str, Any]:
    made = {}
    for name, base in (("stock", WSGIHandler), ("spoe", SpoeWSGIHandler)):
        server = _Server(listener(("127.0.0.1", 0)), _app, handler_class=_recording(base),
                         log=None, error_log=None)
        server.start()
        made[name] = server
    return made


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    made = _servers()
    yield made
    for server in made.values():
        server.stop(timeout=1)


def _exchange(server: Any, case: Case, request: bytes, count: int = 1) -> Any:
    server.case, server.states, server.errors = case, [], []
    with socket.create_connection(server.address, timeout=5) as client:
        client.sendall(request * count)
        client.shutdown(socket.SHUT_WR)  # the server answers, reads EOF, closes
        data = b""
        for _ in range(10000):  # bounded: until the server closes
            part = client.recv(65536)
            if not part:
                break
            data += part
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", data), server.states, server.errors


_REQUESTS = {
    "1.1": b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n",
    "1.0": b"GET /x HTTP/1.0\r\n\r\n",
    "1.0-keep-alive": b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "1.1-close": b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "head": b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n",
}

_CT = ("Content-Type", "text/plain")
_BIG = b"y" * 20000
CASES = {
    "length-given": Case("200 OK", [_CT, ("Content-Length", "5")]),
    "length-computed": Case("200 OK", [_CT]),
    "no-headers": Case("200 OK", []),
    "status-code-only": Case("200", [("Content-Length", "5")]),
    "latin1-reason": Case("200 Tr\xe8s bien", [("X-Caf\xe9", "cr\xe8me")]),
    "colon-in-name": Case("200 OK", [("X-A: Content-Length", "1"), ("Connection: x", "y")]),
    "lower-case-names": Case("200 OK", [("content-length", "5"), ("connection", "close")]),
    "connection-close": Case("200 OK", [("Connection", "close")]),
    "connection-keep-alive": Case("200 OK", [("Connection", "keep-alive")]),
    "connection-Close": Case("200 OK", [("Connection", "Close")]),
    "date-given": Case("200 OK", [("Date", "Mon, 01 Jan 2001 00:00:00 GMT")]),
    "two-lengths": Case("200 OK", [("Content-Length", "3"), ("Content-Length", "5")]),
    "transfer-encoding-given": Case("200 OK", [("Transfer-Encoding", "chunked")],
                                    (b"5\r\nhello\r\n0\r\n\r\n",)),
    "many-chunks": Case("200 OK", [_CT], (b"ab", b"", b"cde")),
    "empty-list": Case("200 OK", [_CT], ()),
    "empty-chunk": Case("200 OK", [_CT], (b"",)),
    "tuple-body": Case("200 OK", [_CT], (b"hello",), "tuple"),
    "generator": Case("200 OK", [_CT], (b"ab", b"", b"cde"), "gen"),
    "generator-empty-first": Case("200 OK", [_CT], (b"", b"abc"), "gen"),
    "generator-nothing": Case("200 OK", [_CT], (), "gen"),
    "generator-length": Case("200 OK", [("Content-Length", "5")], (b"he", b"llo"), "gen"),
    "generator-big": Case("200 OK", [_CT], (_BIG, b"z"), "gen"),
    "big-body": Case("200 OK", [_CT], (_BIG,)),
    "big-body-length": Case("200 OK", [("Content-Length", "20000")], (_BIG,)),
    "long-head": Case("200 OK", [("X-Long", "v" * 5000)]),
    "write-callable": Case("200 OK", [_CT], (b"ab", b"cd"), "write"),
    "bytearray-chunk": Case("200 OK", [_CT], (bytearray(b"hello"),)),
    "memoryview-chunk": Case("200 OK", [_CT], (memoryview(b"hello"),)),
    "str-chunk": Case("200 OK", [("Content-Length", "5")], ("hello",)),
    "204": Case("204 No Content", [], ()),
    "204-length-0": Case("204 No Content", [("Content-Length", "0")], ()),
    "204-length-5": Case("204 No Content", [("Content-Length", "5")], ()),
    "204-with-body": Case("204 No Content", [], (b"x",)),
    "304-generator": Case("304 Not Modified", [("ETag", '"e"')], (), "gen"),
    "101": Case("101 Switching Protocols", [("Upgrade", "x")], (), "gen"),
    "twice-exc-info": Case("200 OK", [_CT]),
    "again-no-exc-info": Case("203 Again", [("Content-Length", "5")], (b"hello",), "again"),
    "raise-after-start": Case("200 OK", [_CT], (), "raise"),
    # what gevent refuses: its errors, word for word
    "cr-in-value": Case("200 OK", [("X-A", "a\rb")]),
    "lf-in-name": Case("200 OK", [("X-\nA", "b")]),
    "crlf-in-status": Case("200 OK\r\nX: y", []),
    "non-latin1-value": Case("200 OK", [("X-A", "\u0100")]),
    "non-latin1-status": Case("200 \u0100", []),
    "bytes-name": Case("200 OK", [(b"X-A", "b")]),
    "bytes-value": Case("200 OK", [("X-A", b"b")]),
    "bytes-status": Case(b"200 OK", []),
    "int-value": Case("200 OK", [("Content-Length", 5)]),
    "no-code": Case("OK", []),
    "empty-status": Case("", []),
    "three-items": Case("200 OK", [("X-A", "b", "c")]),
    "list-item": Case("200 OK", [["X-A", "b"], ["Content-Length", "5"]]),
    "string-item": Case("200 OK", ["ab"]),
    "tuple-of-headers": Case("200 OK", ((_CT), ("Content-Length", "5"))),
    "generator-of-headers": Case("200 OK", None),  # built per exchange (used up once)
}


def _fresh(case: Case) -> Case:
    if case.headers is None:
        return case._replace(headers=(h for h in [_CT, ("Content-Length", "5")]))
    return case


@pytest.mark.parametrize("request_kind", sorted(_REQUESTS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_response_as_gevents(servers: dict[str, Any], name: str,
                                  request_kind: str) -> None:
    request = _REQUESTS[request_kind]
    stock = _exchange(servers["stock"], _fresh(CASES[name]), request, count=3)
    ours = _exchange(servers["spoe"], _fresh(CASES[name]), request, count=3)
    assert ours[0] == stock[0]  # the bytes on the wire
    assert ours[2] == stock[2]  # the errors start_response raised
    assert ours[1] == stock[1]  # the handler's state after each response
    assert stock[1], "no response at all: the case tests nothing"


def test_a_head_used_again_is_the_same(servers: dict[str, Any]) -> None:
    """The cached head (the same status and headers again) answers like the first time,
    and a head that differs only by a header's value is its own."""
    request = _REQUESTS["1.1"]
    for case in (CASES["length-given"], CASES["length-given"],
                 Case("200 OK", [_CT, ("Content-Length", "3")], (b"abc",)),
                 CASES["length-given"]):
        stock = _exchange(servers["stock"], case, request, count=3)
        ours = _exchange(servers["spoe"], case, request, count=3)
        assert ours == stock


_TEXT = st.text(alphabet="aZ-: \t\xe9\xff\r\n\u0100", max_size=6)
_NAMES = st.one_of(st.sampled_from(["Content-Length", "content-length", "Date", "CONNECTION",
                                    "Connection", "Transfer-Encoding", "X-A"]), _TEXT)
_VALUES = st.one_of(st.sampled_from(["0", "5", "close", "keep-alive", "chunked"]), _TEXT)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.one_of(st.sampled_from(["200 OK", "204 No Content", "304 NM", "101 Up",
                                         "404 Not Found", "500"]),
                        st.builds("{} {}".format, st.integers(100, 599), _TEXT)),
       headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=4),
       body=st.lists(st.sampled_from([b"", b"ab", b"hello", _BIG]), max_size=3),
       kind=st.sampled_from(["list", "gen", "write", "tuple"]),
       request_kind=st.sampled_from(sorted(_REQUESTS)))
def test_random_responses_as_gevents(servers: dict[str, Any], status: str,
                                     headers: list[tuple[str, str]], body: list[bytes],
                                     kind: str, request_kind: str) -> None:
    case = Case(status, headers, tuple(body), kind)
    request = _REQUESTS[request_kind]
    stock = _exchange(servers["stock"], case, request, count=2)
    ours = _exchange(servers["spoe"], case, request, count=2)
    assert ours == stock


# ------------------------------------------------------------------ the heads kept (pure)

def test_a_head_is_kept_at_its_second_coming() -> None:
    # a fresh value: this head was never met in this process
    headers = [_CT, ("X-Id", "kept-1")]
    assert plain_head("200 OK", list(headers)) is None  # gevent's code the first time
    head = plain_head("200 OK", list(headers))
    assert head is not None
    assert head[0] == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Id: kept-1\r\n"
    assert head[1:3] == (b"200 OK", 200)
    assert head[3] == ((b"Content-Type", b"text/plain"), (b"X-Id", b"kept-1"))
    assert plain_head("200 OK", list(headers)) is head  # found, not checked again
    # a header that differs by its value only is another head
    assert plain_head("200 OK", [_CT, ("X-Id", "kept-2")]) is None


def test_equal_items_find_the_head_and_odd_ones_never_do() -> None:
    class Pair(NamedTuple):
        name: str
        value: str

    headers = [("X-Id", "odd-1")]
    plain_head("201 Created", headers)
    head = plain_head("201 Created", headers)
    assert head is not None
    assert plain_head("201 Created", [Pair("X-Id", "odd-1")]) is head  # gevent unpacks both
    for odd in ([["X-Id", "odd-1"]], ("X-Id", "odd-1"), [("X-Id", b"odd-1")]):
        for _ in range(3):  # never kept, never found
            assert plain_head("201 Created", odd) is None
    assert plain_head(b"201 Created", headers) is None


def test_a_head_gevent_refuses_is_never_kept() -> None:
    for status, headers in (("200 OK", [("X-A", "a\rb")]), ("20x OK", []),
                            ("200 OK", [("X-A", "\u0100")]), ("200 OK", [("X-A", "b", "c")])):
        assert [plain_head(status, list(headers)) for _ in range(3)] == [None] * 3


class _ServerHeader:
    """What a subclass may do: add a header once gevent has finished the list."""

    def finalize_headers(self) -> None:
        super().finalize_headers()  # type: ignore[misc]
        self.response_headers.append((b"Server", b"mine"))  # type: ignore[attr-defined]


class _LoudWrite:
    """... or write every chunk through its own write()."""

    def write(self, data: bytes) -> None:
        super().write(data + b"!" if data else data)  # type: ignore[misc]


@pytest.mark.parametrize("mixin", [_ServerHeader, _LoudWrite])
def test_a_subclass_overriding_a_response_method_is_served_by_it(mixin: type) -> None:
    made = {}
    for name, base in (("stock", WSGIHandler), ("spoe", SpoeWSGIHandler)):
        handler = _recording(type("Sub", (mixin, base), {}))
        made[name] = _Server(listener(("127.0.0.1", 0)), _app, handler_class=handler,
                             log=None, error_log=None)
        made[name].start()
    try:
        for case in (CASES["length-computed"], CASES["no-headers"]):
            stock = _exchange(made["stock"], case, _REQUESTS["1.1"], count=3)
            ours = _exchange(made["spoe"], case, _REQUESTS["1.1"], count=3)
            assert ours == stock
            assert (b"Server: mine" in ours[0]) is (mixin is _ServerHeader)
    finally:
        for server in made.values():
            server.stop(timeout=1)


def test_a_long_head_is_not_kept() -> None:
    headers = [("X-Long", "v" * 5000)]
    assert [plain_head("200 OK", headers) for _ in range(3)] == [None] * 3
    # nor its text: the table keeps no reference to a head it refused
    from spoe_sync.wsgi import response_head
    assert not any(isinstance(entry, tuple) and entry[0] is not None
                   and entry[0][1:] == tuple(headers) for entry in response_head._HEADS.values())
