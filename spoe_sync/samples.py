"""Sample sources: where the engine's fetches read from (public names).

``WSGISamples(environ)`` for a WSGI request, ``TCPSamples(client_addr, local_addr, payload)`` for a
TCP connection, ``StaticSamples({"src": ..., "req.hdr(host)": ...})`` for tests and scripts, plus
the ``req.hdrs_bin`` helpers agent authors ask for.

``SpoeWSGIHandler`` (the one of :mod:`spoe_sync.wsgi`, re-exported) is a gevent.pywsgi handler that
adds the raw request data HAProxy's fetches need (headers in arrival order and original case, the
raw request-target, the local address) and the client connection to the environ::

    WSGIServer(("127.0.0.1", 8080), app, handler_class=SpoeWSGIHandler)
"""

from __future__ import annotations

from .rules.hdrs import decode_hdrs_bin, encode_hdrs_bin
from .rules.sources import (
    RequestInfo,
    ResponseInfo,
    SampleSource,
    StaticSamples,
    TCPSamples,
    haproxy_body_limit,
)
from .rules.wsgisource import RAW_HEADERS_KEY, RAW_URI_KEY, WSGISamples, handler_environ

__all__ = [
    "RAW_HEADERS_KEY",
    "RAW_URI_KEY",
    "RequestInfo",
    "ResponseInfo",
    "SampleSource",
    "StaticSamples",
    "TCPSamples",
    "WSGISamples",
    "decode_hdrs_bin",
    "encode_hdrs_bin",
    "handler_environ",
    "haproxy_body_limit",
]


def __getattr__(name: str) -> object:
    # SpoeWSGIHandler pulls in gevent.pywsgi: imported only when asked for, so that the TCP proxy
    # (which reads its samples from here) never loads the WSGI layer.
    if name == "SpoeWSGIHandler":
        from .wsgi.handler import SpoeWSGIHandler

        return SpoeWSGIHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
