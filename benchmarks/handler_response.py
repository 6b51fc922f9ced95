"""CPU per response of the handler's response side, in process: SpoeWSGIHandler against
gevent's stock WSGIHandler.

    python benchmarks/handler_response.py [--seconds 1.0] [--handler spoe|stock|both]
                                          [--app plain|dated|chunked|http10|varying]

Runs ``handle_one_response()`` (start_response, the head, the body, the access log) of one
handler over and over on a request already read, the socket a sink that keeps nothing, and
prints the CPU (``time.process_time``) per response.  The package comes from PYTHONPATH:
compare two trees by running this file under each one's, alternately, several rounds::

    for i in 1 2 3; do for t in /old/tree $PWD; do
        PYTHONPATH=$t python benchmarks/handler_response.py --handler spoe; done; done
"""

from __future__ import annotations

import argparse
import io
import os
import time
from typing import Any

from gevent.pywsgi import Input, WSGIHandler, WSGIServer

import spoe_sync
from spoe_sync.wsgi import SpoeWSGIHandler

_BODY = [b"hello"]


def _plain(environ: Any, start_response: Any) -> Any:  # benchmarks/_common.py's app
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return _BODY


def _dated(environ: Any, start_response: Any) -> Any:  # Content-Length computed by gevent
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Date", "Mon, 01 Jan 2001 00:00:00 GMT")])
    return _BODY


def _chunked(environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter(_BODY)


_NEXT = [0]


def _varying(environ: Any, start_response: Any) -> Any:
    # a head never sent before (a request id in it): the handler's heads never help (the
    # worst case)
    _NEXT[0] = n = _NEXT[0] + 1
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5"),
                              ("X-Request-Id", str(n))])
    return _BODY


APPS = {"plain": _plain, "dated": _dated, "chunked": _chunked, "http10": _plain,
        "varying": _varying}


class _Sink:
    """The client socket: takes every byte, keeps none."""

    sent = 0

    def sendall(self, data: bytes) -> None:
        self.sent += len(data)

    def makefile(self, *args: Any, **kw: Any) -> Any:
        return io.BytesIO()


def cpu_per_response(handler_class: type[WSGIHandler], app: str, seconds: float) -> float:
    server = WSGIServer(("127.0.0.1", 0), APPS[app], log=None, error_log=None)
    handler = handler_class(_Sink(), ("127.0.0.1", 40000), server, io.BytesIO())
    handler.request_version = "HTTP/1.0" if app == "http10" else "HTTP/1.1"
    handler.command, handler.path = "GET", "/bench/path?x=1"
    handler.requestline = f"GET /bench/path?x=1 {handler.request_version}"
    handler.environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/bench/path"}
    handler.application = server.application
    handler.wsgi_input = Input(io.BytesIO(), 0)
    one = handler.handle_one_response
    done, start = 0, time.process_time()
    deadline = start + seconds
    while done < 2_000_000:  # bounded in count and in time
        for _ in range(1000):
            handler.response_length = 0
            handler.close_connection = False
            one()
        done += 1000
        if time.process_time() >= deadline:
            break
    return (time.process_time() - start) / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--handler", choices=("spoe", "stock", "both"), default="both")
    parser.add_argument("--app", choices=sorted(APPS), default="plain")
    args = parser.parse_args()
    kinds = ("stock", "spoe") if args.handler == "both" else (args.handler,)
    for kind in kinds:
        cls = SpoeWSGIHandler if kind == "spoe" else WSGIHandler
        cpu = cpu_per_response(cls, args.app, args.seconds)
        print(f"{kind:5} {args.app:7} {cpu * 1e6:6.2f} us CPU per response"
              f" ({os.path.dirname(os.path.dirname(spoe_sync.__file__))})")


if __name__ == "__main__":
    main()
