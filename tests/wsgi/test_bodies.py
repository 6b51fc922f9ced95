"""Request bodies through SpoeMiddleware (``option http-buffer-request``, docs/explanation/agents.md §9
"Body limits"): req.body up to the buffer size, truncated beyond it as HAProxy's buffer does,
the app reading an equivalent wsgi.input, chunked bodies, keep-alive after large bodies, and
many concurrent clients."""

from __future__ import annotations

import gevent
import pytest

from spoe_sync.errors import SpoeConfigWarning

from .support import LOAD_CONF, Client, parse_echo, serve

GROUP = ["send-spoe-group test grp-body"]


@pytest.mark.parametrize(("size", "limit", "chunked", "agent_len"), [
    pytest.param(500, 1000, False, 500, id="fits"),
    pytest.param(5000, 1000, False, 1000, id="truncated"),
    pytest.param(3000, 10000, True, 3000, id="chunked-fits"),
    pytest.param(9000, 1000, True, 1000, id="chunked-truncated"),
    pytest.param(0, 1000, False, 0, id="empty"),
])
def test_buffered_body(make_mw, size, limit, chunked, agent_len):
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    mw = make_mw(http_request=GROUP, buffer_body=limit)
    with serve(mw) as port, Client(port) as c:
        r = c.request("POST", "/upload", body=body, chunked=chunked)
        again = c.request("GET", "/after")  # the connection is still in sync
    seen = parse_echo(r.body)
    assert seen["txn.test.body_len"] == str(agent_len)
    assert seen["body"] == str(size)  # the app reads the whole body
    assert again.status == 200


def test_app_reads_the_same_bytes(make_mw):
    got = {}

    def app(environ, start_response):
        got["body"] = environ["wsgi.input"].read()
        got["length"] = environ.get("CONTENT_LENGTH")
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    body = b"line1\nline2\n" * 1000
    mw = make_mw(app, http_request=GROUP, buffer_body=4096)
    with serve(mw) as port, Client(port) as c:
        assert c.request("POST", "/", body=body).status == 200
    assert got == {"body": body, "length": str(len(body))}


def test_without_buffering_req_body_is_empty(make_mw):
    # HAProxy without http-buffer-request sees what is in its buffer: here, nothing yet
    with pytest.warns(SpoeConfigWarning, match="buffer_body is not set"):
        mw = make_mw(http_request=GROUP)
    with serve(mw) as port, Client(port) as c:
        seen = parse_echo(c.request("POST", "/", body=b"abc").body)
    assert seen["txn.test.body_len"] == "0" and seen["body"] == "3"


def test_large_body_then_keep_alive(make_mw):
    body = b"z" * (1 << 20)
    mw = make_mw(http_request=GROUP, buffer_body=8192)
    with serve(mw) as port, Client(port, timeout=10) as c:
        first = parse_echo(c.request("POST", "/big", body=body).body)
        second = parse_echo(c.request("POST", "/small", body=b"ok").body)
    assert first["txn.test.body_len"] == "8192" and first["body"] == str(len(body))
    assert second["txn.test.body_len"] == "2"


def test_many_concurrent_keep_alive_clients(agent, make_mw):
    mw = make_mw(conf=LOAD_CONF, buffer_body=1024,
                 http_request=["deny if { var(txn.test.action) -m str deny }", *GROUP])
    failures: list[str] = []
    done = []

    def client(n: int) -> None:
        with Client(port, timeout=20) as c:
            for i in range(5):
                action = "deny" if (n + i) % 3 == 0 else f"ok{n}"
                r = c.request("POST", f"/{n}/{i}", {"x-action": action}, body=b"b" * n)
                done.append(1)
                if action == "deny":
                    if r.status != 403:
                        failures.append(f"/{n}/{i}: deny gave {r.status}")
                    continue
                seen = parse_echo(r.body)
                got = (r.status, seen.get("txn.test.action"), seen.get("txn.test.body_len"),
                       seen.get("txn.test.error"))
                if got != (200, action, str(n), "None"):
                    failures.append(f"/{n}/{i}: (status, action, body_len, error) = {got}")

    with serve(mw) as port:
        jobs = [gevent.spawn(client, n) for n in range(1, 101)]
        gevent.joinall(jobs, timeout=60, raise_error=True)
    assert len(done) == 500 and not failures, failures[:10]
    assert mw.engines[0].metrics().nb_errors == 0
