"""A gunicorn worker with SpoeWSGIHandler's fidelity: ``gunicorn -k
spoe_sync.wsgi.gunicorn.GeventWorker app:application``.

gunicorn's own gevent worker builds a plain environ: the middleware then rebuilds the header
list and the request target from ``HTTP_*`` keys and ``PATH_INFO`` (order, duplicates, ``%2F``
and a bare ``?`` are lost).  gunicorn's parser keeps them (``req.headers`` in arrival order with
duplicates, ``req.uri`` as received), so this worker hands the middleware the same raw data as
:class:`~spoe_sync.wsgi.SpoeWSGIHandler`: the raw header list, the raw target and the local
address (the client socket is ``gunicorn.socket`` already).  And it applies the same HTTP
validity rules (:mod:`spoe_sync.wsgi.validity`): what HAProxy 2.6 answers itself (400, 413,
422) gets HAProxy's bytes before any SPOE event, and the connection is closed; a request
gunicorn's stricter parser refuses gets HAProxy's 400 page instead of gunicorn's.

gunicorn's settings ``permit_unconventional_http_method`` and
``permit_unconventional_http_version`` are turned on (HAProxy serves such requests).  What gunicorn's
parser still changes before we see it (the README lists it): header names come upper-cased
(HAProxy lower-cases them anyway), headers with ``_`` are dropped (gunicorn's ``header_map``
default), and gunicorn refuses with 400 some requests HAProxy serves (control bytes in a header
value, folded header lines, two identical Content-Length headers, ``*`` as a GET target...).
"""

from __future__ import annotations

from typing import Any

from gevent.local import local
from gunicorn.http import errors as http_errors
from gunicorn.workers.ggevent import GeventWorker as _GunicornGeventWorker

from ..rules.wsgisource import LOCAL_ADDR_KEY, RAW_HEADERS_KEY, RAW_URI_KEY
from .validity import Refusal, check, error_response

__all__ = ["GeventWorker", "request_head"]

# gunicorn's parse errors that are the client's request (not the app's response headers nor
# the server's configuration): HAProxy answers them with its 400 when it refuses them too
_REQUEST_ERRORS = tuple(getattr(http_errors, name) for name in (
    "InvalidRequestLine", "InvalidRequestMethod", "InvalidHTTPVersion", "InvalidHeader",
    "InvalidHeaderName", "ObsoleteFolding", "LimitRequestLine", "LimitRequestHeaders",
    "UnsupportedTransferCoding", "InvalidChunkSize", "ChunkMissingTerminator",
    "InvalidChunkExtension") if hasattr(http_errors, name))
_HAPROXY_ACCEPTS = ("permit_unconventional_http_method", "permit_unconventional_http_version")
_APP_ERRORS = tuple(getattr(http_errors, name) for name in (
    "InvalidResponseHeader", "InvalidResponseHeaderName") if hasattr(http_errors, name))


def request_head(req: Any) -> bytes:
    """The head of a request gunicorn parsed, as validity.check() reads it."""
    major, minor = req.version
    lines = [f"{req.method} {req.uri} HTTP/{major}.{minor}"]
    lines += [f"{name}: {value}" for name, value in req.headers]
    return "\r\n".join(lines).encode("latin-1", "replace")


class _RawData:
    """The application, with the raw request data of the request being served added to its
    environ (the worker serves each connection in its own greenlet: ``current`` is local)."""

    def __init__(self, app: Any, current: Any) -> None:
        self.app = app
        self.current = current

    def __getattr__(self, name: str) -> Any:  # buffer_body, close()...: the app's
        return getattr(self.app, name)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = getattr(self.current, "req", None)
        if req is not None:
            environ[RAW_HEADERS_KEY] = [(str(n), str(v)) for n, v in req.headers]
            environ[RAW_URI_KEY] = req.uri
            local_addr = getattr(self.current, "local", None)
            if local_addr is not None:
                environ[LOCAL_ADDR_KEY] = local_addr
        return self.app(environ, start_response)


class GeventWorker(_GunicornGeventWorker):  # type: ignore[misc]  # gunicorn has no types
    """gunicorn's gevent worker with SpoeWSGIHandler's raw data and HTTP validity."""

    def load_wsgi(self) -> None:
        # what gunicorn refuses by default and HAProxy serves: a method with lowercase
        # letters, a version past 1.x (HTTP/1.2, HTTP/2.0 on an HTTP/1 line).  Folded lines stay
        # refused (HAProxy's 400 page): gunicorn would join them with one space where HAProxy
        # keeps the line break as spaces, and the agent would read another value
        for name in _HAPROXY_ACCEPTS:
            if name in self.cfg.settings and not self.cfg.settings[name].get():
                self.cfg.set(name, True)
        super().load_wsgi()
        self._spoe_current = local()
        app: Any = getattr(self, "wsgi")  # noqa: B009 (gunicorn sets it; untyped)
        self.wsgi = _RawData(app, self._spoe_current)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        refusal = check(request_head(req))
        if refusal is not None:
            self._refuse(sock, refusal)
        current = self._spoe_current
        current.req = req
        try:
            current.local = sock.getsockname()[:2]
        except (OSError, TypeError):
            current.local = None
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            current.req = current.local = None

    def _refuse(self, sock: Any, refusal: Refusal) -> None:
        try:
            sock.sendall(refusal.response)
        except OSError:
            pass
        # HAProxy closes the connection after its error answer: so does gunicorn on this
        raise StopIteration(f"HAProxy would answer {refusal.status}: {refusal.why}")

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, _REQUEST_ERRORS) and not isinstance(exc, _APP_ERRORS):
            self.log.debug("refused as HAProxy would (400): %s", exc)
            try:
                client.sendall(error_response(400))
            except OSError:
                pass
            return
        super().handle_error(req, client, addr, exc)
