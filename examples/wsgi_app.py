#!/usr/bin/env python
"""A gevent.pywsgi app that asks the example SPOE agent about each client first.

:class:`spoe_sync.wsgi.SpoeMiddleware` runs the packaged ``spoe-iprep.conf`` (scope
``ip-reputation``: message ``get-ip-reputation`` with ``args ip=src path=path`` on
``on-frontend-http-request``), then the HAProxy rule

    http-request deny deny_status 403 if { var(sess.iprep.ip_score) -m int lt 20 }

decides.  If the agent is down the event fails open, as in HAProxy (the score is unset, the rule
does not match): at once with the connection's status once the server is known to be
unreachable (it backs off), within ``timeout processing`` at worst, and with a warning on the
library's logger.  The app itself reads the score
from ``environ["spoe_sync.vars"]``.

Run it::

    spoe-sync agent --listen 127.0.0.1:12345 &
    python examples/wsgi_app.py --listen 127.0.0.1:8080 --agent 127.0.0.1:12345 --trust-xff
    curl -i http://127.0.0.1:8080/                                    # 200, loopback is trusted
    curl -i -H 'X-Forwarded-For: 192.0.2.7' http://127.0.0.1:8080/   # 403, a listed address

``--trust-xff`` makes ``src`` the last ``X-Forwarded-For`` address (a ProxyFix in front of
the middleware): only behind a proxy you run, since clients can send that header themselves.

Under gunicorn (each worker builds its engine on its first request; ``--preload`` works too;
gunicorn sets TCP_NODELAY on its listeners itself)::

    gunicorn -k gevent examples.wsgi_app:application

with ``SPOE_AGENT=HOST:PORT`` and ``SPOE_TRUST_XFF=1`` in the environment for the two options.
The listener here comes from :func:`spoe_sync.wsgi.listener`, which sets TCP_NODELAY:
gevent.pywsgi sends headers and body in two writes, and without it Nagle's algorithm holds
every keep-alive response until the client's delayed ACK.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from spoe_sync.cli import server_address, tcp_listen_address
from spoe_sync.examples.iprep import CONFIG_PATH
from spoe_sync.wsgi import SpoeMiddleware, SpoeWSGIHandler, listener

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The protected app: says hello with the client's reputation score."""
    score = environ["spoe_sync.vars"].get("sess.iprep.ip_score")
    body = f"hello {environ.get('REMOTE_ADDR')}, ip_score={score}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def trust_forwarded_for(app: WSGIApp) -> WSGIApp:
    """``REMOTE_ADDR`` (and so ``src``) from the last ``X-Forwarded-For`` address."""
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            environ["REMOTE_ADDR"] = forwarded.rsplit(",", 1)[-1].strip()
        return app(environ, start_response)
    return wrapped


def make_app(agent: str = "127.0.0.1:12345", *, trust_xff: bool = False) -> WSGIApp:
    """The app behind the middleware (nothing connects before the first request)."""
    app: WSGIApp = SpoeMiddleware(
        hello, config=CONFIG_PATH, engine="ip-reputation",
        backends={"iprep-servers": [agent]},
        http_request=["deny deny_status 403 if { var(sess.iprep.ip_score) -m int lt 20 }"])
    return trust_forwarded_for(app) if trust_xff else app


#: for ``gunicorn -k gevent examples.wsgi_app:application``
application = make_app(os.environ.get("SPOE_AGENT", "127.0.0.1:12345"),
                       trust_xff=os.environ.get("SPOE_TRUST_XFF", "") not in ("", "0"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the command line's own address parsers (an address to listen on, an agent to connect to)
    parser.add_argument("--listen", default="127.0.0.1:8080", type=tcp_listen_address,
                        metavar="HOST:PORT")
    parser.add_argument("--agent", default="127.0.0.1:12345", type=server_address,
                        metavar="HOST:PORT")
    parser.add_argument("--trust-xff", action="store_true",
                        help="take the client address from X-Forwarded-For")
    args = parser.parse_args()
    app = make_app(args.agent, trust_xff=args.trust_xff)
    try:
        server = WSGIServer(listener(args.listen), app, handler_class=SpoeWSGIHandler)
    except OSError as exc:
        sys.exit(f"wsgi_app: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}")
    server.start()
    print(f"listening on http://{args.listen[0]}:{server.server_port}", flush=True)
    stop = Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stop.set)
    stop.wait()
    server.stop(timeout=5)


if __name__ == "__main__":
    main()
