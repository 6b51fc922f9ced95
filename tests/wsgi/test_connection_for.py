"""connection_for(): which client connection (``sess.*`` variables) a request belongs to, for
each way a server can tell it: SpoeWSGIHandler's Connection, a client socket key (gunicorn),
gevent's stock handler's per-connection reader behind ``wsgi.input``, or nothing at all."""

from __future__ import annotations

import io
import socket

from gevent import pywsgi

from spoe_sync.wsgi.handler import CONNECTION_KEY, SOCKET_KEY, Connection, connection_for


def _stock_input(rfile):
    return pywsgi.Input(rfile, 0)  # gevent's handler makes one per request, on one rfile


def test_spoe_wsgi_handler_connection_is_used_as_is():
    conn = Connection()
    assert connection_for({CONNECTION_KEY: conn, "wsgi.input": None}) is conn


def test_stock_handler_requests_of_one_connection_share_it():
    rfile = io.BufferedReader(io.BytesIO(b""))
    first = connection_for({"wsgi.input": _stock_input(rfile)})
    assert connection_for({"wsgi.input": _stock_input(rfile)}) is first
    other = io.BufferedReader(io.BytesIO(b""))
    assert connection_for({"wsgi.input": _stock_input(other)}) is not first


def test_a_socket_key_comes_before_wsgi_input():
    a, b = socket.socketpair()
    try:
        rfile = io.BufferedReader(io.BytesIO(b""))
        for key in (SOCKET_KEY, "gunicorn.socket", "gunicorn.sock"):
            by_socket = connection_for({key: a, "wsgi.input": _stock_input(rfile)})
            assert connection_for({key: a}) is by_socket
            assert connection_for({"wsgi.input": _stock_input(rfile)}) is not by_socket
        # a value without fileno() is no socket: the reader is the key
        assert connection_for({"gunicorn.socket": "x", "wsgi.input": _stock_input(rfile)}) \
            is connection_for({"wsgi.input": _stock_input(rfile)})
    finally:
        a.close()
        b.close()


def test_no_connection_known_gives_a_fresh_one_per_request():
    env = {"wsgi.input": io.BytesIO(b"")}
    assert connection_for(env) is not connection_for(env)
    assert connection_for({"gunicorn.socket": None}) is not connection_for({})
