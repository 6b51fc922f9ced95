"""The middleware's samples (spoe_sync.wsgi.request_samples) against the general WSGISamples: the
same request for any environ, the fast path taken for plain ones, and the response's fetches
seeing the request as it was before the app edited the environ."""

from __future__ import annotations

from gevent.pywsgi import WSGIHandler, WSGIServer
from hypothesis import given, settings
from hypothesis import strategies as st

from spoe_sync.rules.wsgisource import WSGISamples
from spoe_sync.wsgi import listener
from spoe_sync.wsgi.request_samples import MiddlewareSamples

from .support import Client


def _fields(samples):
    req = samples.request
    return req.method, req.target, req.version, req.headers, req.body


_TEXT = st.text(st.sampled_from("aZ09/%?;=,:@!$&'()*+-._~ \xe9\x00\u20ac#"), max_size=8)
_OPTIONAL = st.one_of(st.none(), _TEXT)


@settings(max_examples=400, deadline=None)
@given(path=_TEXT, script=_OPTIONAL, query=_OPTIONAL, method=_OPTIONAL,
       raw_uri=_OPTIONAL, ours=_OPTIONAL, raw_headers=st.one_of(st.none(), st.lists(
           st.one_of(st.tuples(_TEXT, _TEXT), st.tuples(st.integers(), _TEXT)), max_size=3)),
       headers=st.dictionaries(st.sampled_from(
           ["HTTP_HOST", "HTTP_X_A", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_COOKIE"]), _TEXT),
       body=st.one_of(st.none(), st.binary(max_size=4)))
def test_same_request_as_the_general_samples(path, script, query, method, raw_uri, ours,
                                             raw_headers, headers, body):
    env = {"PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1", **headers}
    for key, value in (("SCRIPT_NAME", script), ("QUERY_STRING", query),
                       ("REQUEST_METHOD", method), ("REQUEST_URI", raw_uri),
                       ("spoe_sync.raw_uri", ours), ("spoe_sync.raw_headers", raw_headers),
                       ("spoe_sync.body", body)):
        if value is not None:
            env[key] = value
    assert _fields(MiddlewareSamples(env)) == _fields(WSGISamples(env))



_ODD = st.one_of(st.none(), _TEXT, st.binary(max_size=3), st.integers(0, 9))


@settings(max_examples=300, deadline=None)
@given(path=_ODD, script=_ODD, query=_ODD, uri_key=st.sampled_from(
    [None, "REQUEST_URI", "RAW_URI", "spoe_sync.raw_uri"]), uri=_ODD)
def test_same_request_for_values_that_are_not_text(path, script, query, uri_key, uri):
    # a broken server's environ (bytes, numbers, keys absent): the fast path reads only text
    # and leaves the rest to the general path, which reads such a value as absent
    env = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "h"}
    for key, value in (("PATH_INFO", path), ("SCRIPT_NAME", script),
                       ("QUERY_STRING", query), (uri_key, uri)):
        if key is not None and value is not None:
            env[key] = value
    assert _fields(MiddlewareSamples(env)) == _fields(WSGISamples(env))

def test_plain_environ_takes_the_fast_path():
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a/b.c", "QUERY_STRING": "x=1",
           "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "h"}
    req = MiddlewareSamples(env).request
    assert "_make" in req.__dict__  # no scan yet
    assert req.target == "/a/b.c?x=1" and req.headers == ((b"host", b"h"),)
    escaped = MiddlewareSamples({**env, "PATH_INFO": "/a b"}).request
    assert "_make" not in escaped.__dict__
    assert escaped.target == "/a%20b?x=1"
    # SpoeWSGIHandler's environ: the raw headers are checked when first read
    raw = {**env, "spoe_sync.raw_uri": "/a%20b?x=1", "spoe_sync.raw_headers": [("Host", "h")]}
    req = MiddlewareSamples(raw).request
    assert "_make" in req.__dict__
    assert req.target == "/a%20b?x=1" and req.headers == ((b"Host", b"h"),)


LATE = """[test]
spoe-agent test-agent
    messages check-path
    groups late
    option var-prefix test
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend agents

spoe-message check-path
    args path=path
    event on-frontend-http-request

spoe-message late-data
    args data=req.hdr(x-data)
spoe-group late
    messages late-data
"""


def test_response_fetches_see_the_request_before_the_app_edited_it(agent, make_mw):
    # the request is built for the request event's path argument (no header read yet); the
    # app then edits a header in the environ; a group sent from http-response still reads
    # the header the request came with
    def app(environ, start_response):
        environ["HTTP_X_DATA"] = "edited by the app"
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    mw = make_mw(app, conf=LATE, http_response=["send-spoe-group test late"])
    server = WSGIServer(listener(("127.0.0.1", 0)), mw, handler_class=WSGIHandler, log=None,
                        error_log=None)
    server.start()
    try:
        with Client(server.server_port) as c:
            assert c.request("GET", "/", {"x-data": "sent"}).status == 200
    finally:
        server.stop(timeout=1)
    (late,) = [m for n in agent.notifies for m in n.messages if m.name == "late-data"]
    assert dict(late.args)["data"] == "sent"
