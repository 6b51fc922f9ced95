"""What the fuzz tier accepts as different, each with its reason.

:data:`MASKED` values cannot be equal and are not compared.  :data:`KNOWN` are
mismatch classes found and not fixed yet: the conformance test fails on any class not listed
here, and this list should only shrink.
"""

from __future__ import annotations

__all__ = ["KNOWN", "MASKED"]

#: (message, argument) -> why its value cannot be equal
MASKED: dict[tuple[str, str], str] = {
    ("l4", "fe_id"): "a WSGI app has no frontend: spoe_sync's id is not HAProxy's",
    ("l4", "fe_name"): "a WSGI app has no frontend name",
    ("l4", "sport"): "each engine's client connects from its own port",
    ("l4", "dport"): "each engine listens on its own port",
}

#: class name -> one-line reason it is not fixed yet
KNOWN: dict[str, str] = {
    # HTTP validity: HAProxy answers 400 (or 413) before any SPOE event to requests gevent
    # serves (8-bit or control bytes in the target or a header value, '#' in the target, an
    # absolute-form target and Host that differ, two different Host or Content-Length...).
    # spoe_sync.wsgi.validity decides it; SpoeWSGIHandler does not apply it yet.
    "status 400/200": "HTTP validity: SpoeWSGIHandler does not refuse what HAProxy refuses yet",
    "status 400/302": "HTTP validity (same cause, another backend answer)",
    "status 400/404": "HTTP validity (same cause, another backend answer)",
    "status 400/418": "HTTP validity (same cause, another backend answer)",
    "status 413/200": "HTTP validity: HAProxy answers 413 to an HTTP/1.0 GET/HEAD/DELETE with "
                      "a body it waits for (http-buffer-request); SpoeWSGIHandler serves it",
    "status 413/302": "HTTP validity (the 413 above, another backend answer)",
    "status 413/404": "HTTP validity (the 413 above, another backend answer)",
    "status 413/418": "HTTP validity (the 413 above, another backend answer)",
    "status 413/400": "HTTP validity: HAProxy's 413 for an HTTP/1.0 HEAD with a body, gevent's "
                      "own 400 for it",
    # Variables the agent sets (every ACK sets <scope>.fz.v in sess, txn, req and res): the
    # engine/middleware keep what HAProxy 2.6 drops (the engine layer's, not the rules').
    "arg body.v_res NULL/BINARY": "a res variable set by a request-phase ACK: HAProxy 2.6 "
                                  "drops it, spoe_sync keeps it",
    "arg res.v_res NULL/BINARY": "the same res variable, still there at the response",
    "arg res.v_req NULL/STRING": "req variables are gone by the response phase in HAProxy; "
                                 "spoe_sync keeps them",
    # gevent.pywsgi drops Content-Length from its header list when Transfer-Encoding is
    # there too; HAProxy (which also drops it) still counts it in req.body_size (htx->extra).
    "arg body.size INT64!=": "chunked with Content-Length: gevent hides the Content-Length "
                             "that HAProxy adds to req.body_size",
    "arg ints.b_size INT64!=": "req.body_size: same cause as body.size",
    # gevent.pywsgi refuses a HEAD request with a body (400) before the middleware runs; HAProxy
    # serves it.  Only the handler can change that (with the validity hook).
    "status 200/400": "a HEAD request with a body: gevent answers 400 itself, HAProxy serves it",
    "status 302/400": "a HEAD request with a body (see status 200/400)",
    "status 404/400": "a HEAD request with a body (see status 200/400)",
    "status 418/400": "a HEAD request with a body (see status 200/400)",
    # The middleware builds the response's version from the request's SERVER_PROTOCOL;
    # HAProxy's res.ver is the server's, and HAProxy speaks HTTP/1.1 to servers.
    "arg res.ver STRING!=": "res.ver of an HTTP/1.0 request: the middleware says 1.0, "
                            "HAProxy's server answered 1.1",
    "arg res.ver2 STRING!=": "resp_ver: same cause as res.ver",
}
