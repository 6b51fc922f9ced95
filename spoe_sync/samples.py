"""Sample sources: where the engine's fetches read from (public names).

``WSGISamples(environ)`` for a WSGI request, ``TCPSamples(client_addr, local_addr, payload)`` for a
TCP connection, ``StaticSamples({"src": ..., "req.hdr(host)": ...})`` for tests and scripts, plus
the ``req.hdrs_bin`` helpers agent authors ask for.

``SpoeWSGIHandler`` is a gevent.pywsgi handler that adds the raw request data HAProxy's fetches
need (headers in arrival order and original case, the raw request-target, the local address) to the
environ::

    WSGIServer(("127.0.0.1", 8080), app, handler_class=SpoeWSGIHandler)
"""

from __future__ import annotations

from typing import Any

from gevent.pywsgi import WSGIHandler

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
    "SpoeWSGIHandler",
    "StaticSamples",
    "TCPSamples",
    "WSGISamples",
    "decode_hdrs_bin",
    "encode_hdrs_bin",
    "handler_environ",
    "haproxy_body_limit",
]


class SpoeWSGIHandler(WSGIHandler):
    """gevent.pywsgi handler whose environ carries the ``spoe_sync.*`` raw-request keys."""

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env.update(handler_environ(self))
        return env
