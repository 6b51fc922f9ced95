"""SPOE for WSGI apps: :class:`SpoeMiddleware` (PEP 3333, gevent.pywsgi and gunicorn -k gevent).

::

    application = SpoeMiddleware(
        app, config="coraza.conf", engine="coraza", backends={"coraza-spoa": ["127.0.0.1:9000"]},
        http_request=["send-spoe-group coraza coraza-req",
                      "deny deny_status 403 if { var(txn.coraza.action) -m str deny }"])
    WSGIServer(listener(("0.0.0.0", 8080)), application, handler_class=SpoeWSGIHandler)

Where HAProxy fires SPOE events, so does the middleware, for each engine in declaration order:
``on-client-session`` on every request (HAProxy 2.6 fires it for each HTTP stream, keep-alive
ones included, so ``txn.*`` results of a session check cover every request), ``on-frontend-tcp-request``,
``on-backend-tcp-request``, ``on-frontend-http-request`` and ``on-backend-http-request`` before
the ``http-request`` rules, ``on-server-session`` just before the app runs, ``on-tcp-response``
and ``on-http-response`` once the app has chosen its status and headers, before the
``http-response`` rules.  ``http-after-response`` rules edit every response, generated ones
included.  Rules run in declaration order (``send-spoe-group`` is one of them).

The client connection is known under gevent.pywsgi (:class:`SpoeWSGIHandler` or gevent's own
handler) and gunicorn (``gunicorn.socket``): ``sess.*`` variables then last as long as the
connection.  Elsewhere a connection is one request.

The listener must set TCP_NODELAY (:func:`listener` does): gevent.pywsgi writes headers and body
in two sends, and without it Nagle's algorithm waits for the client's delayed ACK on every
keep-alive response (about 1.1k instead of 9k requests/s on a laptop).

The app sees ``environ["spoe_sync.vars"]`` (the transaction's variables, full HAProxy names:
``.get("txn.coraza.action")``, ``sess.*`` and ``proc.*`` included; meant for reading) and
``environ["spoe_sync.results"]`` (the :class:`~spoe_sync.engine.result.ProcessingResult` of each
event and group, in order).  ``deny``, ``return``, ``redirect`` and ``tarpit`` (after
``tarpit_timeout``) answer with HAProxy's responses (its built-in error pages by default);
``silent-drop`` and ``reject`` close the client socket with an RST and no response bytes where
the server exposes it (SpoeWSGIHandler, gunicorn), and end the request with an ``EPIPE`` error
everywhere (servers then close the connection without answering).  ``buffer_body=N`` reads up to
N bytes of the request body first (``option http-buffer-request``): ``req.body`` holds what fits,
truncated beyond N as HAProxy's buffer truncates it, and the app still reads the whole body.
``http-request wait-for-body time T [at-least N]`` does the same at its place in the rules (for
at most T: past it, HAProxy's 408 page), so that a later ``send-spoe-group`` sees ``req.body``;
``http-response wait-for-body`` makes the response body buffered (``buffer_response``) before
the response rules, without the time bound (a WSGI app's iterable cannot be given one).

Request rewrites (``set-method``, ``set-path``, ``set-pathq``, ``set-query``, ``set-uri``,
``set-src``, ``replace-header``, ``replace-value``) edit the environ as gevent.pywsgi would have
built it from the rewritten request (``PATH_INFO`` percent-decoded as latin-1, ``QUERY_STRING``,
``REQUEST_METHOD``, ``REMOTE_ADDR``, ``HTTP_*``, the raw URI and headers), so later rules,
SPOE messages and the app all see the new request (a request line gevent would refuse, such as
an empty method or a space in the path, is answered 400).  ``set-uri`` with a new authority also
sets ``Host``, as HAProxy does.  ``capture <sample> len N`` stores the sample (cut at N bytes)
in ``environ["spoe_sync.captures"]`` (a list indexed by slot, the ``len`` captures numbered in
rule order; ``None`` for a slot not filled), read by ``capture.req.hdr(<slot>)``.  Actions that
mean nothing to a WSGI app (``set-log-level``, ``set-nice``, ``set-tos``, ``set-mark``,
``set-priority-class``, ``set-priority-offset``, ``strict-mode``) are checked, warned about
(:class:`~spoe_sync.errors.SpoeConfigWarning`) and skipped; ``lua.<name>`` is a
:class:`~spoe_sync.errors.ConfigError` (pass a Python callable or ``Hook`` instead).
``stats_path="/spoe-stats"`` serves each engine's counters and a per-event/group latency
histogram in Prometheus text format, answered where the app would run: after the request events
and ``http-request`` rules, so ``deny if { path /spoe-stats } !{ src 10.0.0.0/8 }`` protects it.
Each gunicorn worker has its own engines: with ``PROMETHEUS_MULTIPROC_DIR`` set
(prometheus-client's multiprocess mode) every scrape aggregates all workers.
``unique_id_format`` (HAProxy's ``unique-id-format``) gives each request a ``unique-id``,
``unique_id_header`` also hands it to the app as a request header.

Rules are lists of lines without their keyword (``http_request=["deny if ..."]``; a single
string is one rule; ``"http-request deny"`` is a ConfigError).  Each ``deny``, ``return``,
``redirect``, ``tarpit``, ``reject``/``silent-drop`` and hook answer is logged at INFO on the
``spoe_sync`` logger with the rule that fired (``[file:line]`` or ``http_request[i]``).
:meth:`SpoeMiddleware.from_haproxy_cfg` honours ``option http-buffer-request``
(``buffer_body`` = ``tune.bufsize``) and warns (SpoeConfigWarning) about each frontend or
defaults setting that changes what agents see and that it does not honour.

Run it under gevent (gevent.pywsgi, ``gunicorn -k gevent``): the engines live on the gevent hub
of the thread that built them.  A threaded server (``flask run``, wsgiref or werkzeug in threads,
``gunicorn -k gthread``) gets :class:`NotUnderGevent` at its first request instead of requests
waiting out ``timeout processing``.  A test client called from the main thread works.

Engines are closed when the process exits (agents see HAPROXY-DISCONNECT); under gunicorn,
also use the hooks::

    # gunicorn.conf.py
    from spoe_sync.wsgi import child_exit, worker_exit  # noqa: F401

Nothing connects at construction or import: engines are built in each process on its first
request (gunicorn ``--preload`` forks after construction), and the library never monkey-patches.
An agent that is down never blocks a request beyond ``timeout processing``: the request goes on
(fail open) and rules can read ``var(txn.<prefix>.error)`` (``option set-on-error``).
"""

from __future__ import annotations

from .handler import SpoeWSGIHandler, listener
from .hubcheck import NotUnderGevent
from .lifecycle import close_all, worker_exit
from .middleware import RESULTS_KEY, VARS_KEY, EngineSpec, SpoeMiddleware
from .stats import child_exit

__all__ = ["RESULTS_KEY", "VARS_KEY", "EngineSpec", "NotUnderGevent", "SpoeMiddleware",
           "SpoeWSGIHandler", "child_exit", "close_all", "listener",
           "worker_exit"]
