"""The WSGI app gunicorn serves in test_gunicorn.py: the middleware is built at import time
(in the master with --preload), the agent address comes from SPOE_TEST_AGENT."""

from __future__ import annotations

import os

from spoe_sync.wsgi import SpoeMiddleware
from tests.wsgi.support import CONF, echo_app


def _app(environ, start_response):
    def start(status, headers, exc_info=None):
        runtime = application._runtime
        headers = [*headers, ("X-Pid", str(os.getpid())),
                   ("X-Runtime-Pid", str(runtime.pid if runtime else -1))]
        return start_response(status, headers, exc_info)
    return echo_app(environ, start)


def _worker(environ, response):
    # which worker answered, generated responses and the stats endpoint included
    response.headers.append(("X-Worker", str(os.getpid())))


application = SpoeMiddleware(
    _app, CONF, "test", {"agents": [os.environ["SPOE_TEST_AGENT"]]},
    http_request=["deny deny_status 403 if { var(txn.test.action) -m str deny }"],
    http_after_response=["set-header x-action %[var(txn.test.action)]", _worker],
    stats_path="/spoe-stats")
