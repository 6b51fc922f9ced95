"""Outside gevent (threaded servers: werkzeug's as ``flask run`` starts it, wsgiref in a
thread) a request is refused at once with what to do, instead of waiting out ``timeout
processing`` with the check off (docs/explanation/agents.md §5); the main thread (test clients)
and gevent.pywsgi keep working."""

from __future__ import annotations

import http.client
import threading
import time
import wsgiref.simple_server

import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client as WerkzeugClient

from .support import get, serve


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _threaded_request(server) -> tuple[int, float]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=20)
        conn.request("GET", "/", headers={"x-action": "deny"})
        status = conn.getresponse().status
        conn.close()
        return status, time.monotonic() - start
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def _recording(mw, errors):
    def app(environ, start_response):
        try:
            return mw(environ, start_response)
        except BaseException as exc:
            errors.append(exc)
            raise
    return app


@pytest.mark.parametrize("kind", ["werkzeug-threaded", "wsgiref-in-a-thread"])
def test_a_threaded_server_is_refused_with_what_to_do(make_mw, kind):
    from spoe_sync.wsgi.hubcheck import NotUnderGevent

    mw = make_mw(http_request=["deny if { var(txn.test.action) -m str deny }"])
    errors: list[BaseException] = []
    app = _recording(mw, errors)
    if kind == "werkzeug-threaded":
        server = make_server("127.0.0.1", 0, app, threaded=True)
    else:
        server = wsgiref.simple_server.make_server("127.0.0.1", 0, app,
                                                   handler_class=_QuietHandler)
        server.server_port = server.server_address[1]
    status, _ = _threaded_request(server)
    # before: the request waited out timeout processing and passed with 200 (check off)
    assert status == 500
    assert len(errors) == 1 and isinstance(errors[0], NotUnderGevent)
    assert "gunicorn -k gevent" in str(errors[0]) and "gevent.pywsgi" in str(errors[0])


def test_engines_built_in_the_main_thread_are_refused_from_another(make_mw):
    from spoe_sync.wsgi.hubcheck import NotUnderGevent

    mw = make_mw()
    with serve(mw) as port:
        assert get(port, "/").status == 200  # built on the main thread's hub
    errors: list[BaseException] = []
    server = make_server("127.0.0.1", 0, _recording(mw, errors), threaded=True)
    status, _ = _threaded_request(server)
    assert status == 500 and isinstance(errors[0], NotUnderGevent)
    assert "another thread" in str(errors[0])


def test_a_test_client_in_the_main_thread_still_works(make_mw):
    mw = make_mw(http_request=["deny if { var(txn.test.action) -m str deny }"])
    client = WerkzeugClient(mw)
    assert client.get("/", headers={"x-action": "deny"}).status_code == 403
    assert client.get("/").status_code == 200
