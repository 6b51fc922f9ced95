"""The middleware's per-request fast paths give what the general paths give.

The fuzz generator's nasty requests go through a real ``SpoeWSGIHandler`` (and gevent's stock
handler: a plain environ); for each environ the app receives, every fetch below is evaluated
on the middleware's samples (``new_samples``, ``MiddlewareSamples``) and on the general
``WSGISamples``, and ``path`` is also checked against its definition (``http_get_path()`` on
the request-target).  Then the pieces one at a time: ``new_samples`` builds what
``MiddlewareSamples()`` builds, the inline client cache read answers what ``_client()``
answers, and a sample source that answers fetches itself is still asked.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from gevent import socket
from gevent.pywsgi import WSGIHandler

from spoe_sync.rules import EvalContext, SampleSource, StaticSamples, parse_sample
from spoe_sync.rules.fetches.http import _path_start
from spoe_sync.rules.wsgisource import WSGISamples, _client, _str
from spoe_sync.wsgi import SpoeWSGIHandler
from spoe_sync.wsgi.request_samples import MiddlewareSamples, new_samples
from tests.conformance.fuzz.generator import generate
from tests.kit import read_until_eof

from .support import serve

FETCHES = ("path", "pathq", "url", "query", "method", "base", "req.ver", "src", "src_port",
           "dst", "dst_port", "req.hdr(host)", "req.hdrs", "req.fhdr(x-a)", "req.hdr_cnt(x-a)",
           "req.hdr_names", "req.cook(a)", "url_param(a)", "req.body", "req.len", "req.body_size",
           "path,lower", "src,ipmask(24)", "url,length", "query,url_dec", "unique-id")
EXPRS = [parse_sample(f) for f in FETCHES]
COUNT = 150  # requests per handler: bounded; each one is a short loopback exchange


def _values(samples: SampleSource) -> list[object]:
    ctx = EvalContext(samples)
    return [expr.evaluate(ctx) for expr in EXPRS]


def _defined_path(env: dict) -> object:
    """``path`` by its definition: the target from ``url``, cut at http_get_path() and '?'."""
    uri = parse_sample("url").evaluate(EvalContext(WSGISamples(env)))
    start = None if uri is None else _path_start(uri)
    return None if uri is None or start is None else uri[start:].split("?", 1)[0]


def _environs(handler: type) -> list[dict]:
    seen: list[dict] = []

    def app(environ, start_response):
        seen.append(dict(environ))
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    with serve(app, handler) as port:
        for req in generate(1507, COUNT):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(req.raw)
                sock.shutdown(socket.SHUT_WR)
                read_until_eof(sock, timeout=5)
    return seen


def _check(environs: list[dict]) -> None:
    assert len(environs) > COUNT // 2  # most fuzz requests reach the app
    for env in environs:
        general = _values(WSGISamples(env))
        assert _values(new_samples(env)) == general, env
        assert _values(MiddlewareSamples(env)) == general, env
        assert general[0] == _defined_path(env), env


def test_fetches_agree_under_spoe_wsgi_handler():
    environs = _environs(SpoeWSGIHandler)
    assert all("spoe_sync.raw_uri" in env for env in environs)  # the raw fast path
    _check(environs)


def test_fetches_agree_under_the_stock_handler():
    _check(_environs(WSGIHandler))  # plain environs


def test_an_absolute_form_target_is_normalised_with_its_host_header():
    # HAProxy 2.6 drops the default port and gives Host the authority (htx_target): the fast
    # paths once skipped it for "http://h:80/a" (SpoeWSGIHandler) and for an absolute-form
    # PATH_INFO (gevent's stock handler)
    raw = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/a",
           "spoe_sync.raw_uri": "http://h:80/a", "spoe_sync.raw_headers": [("Host", "h:80")]}
    plain = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
             "PATH_INFO": "http://H:80/a", "HTTP_HOST": "h"}
    for env, host in ((raw, "h"), (plain, "H")):
        for samples in (new_samples(env), MiddlewareSamples(env)):
            assert _values(samples) == _values(WSGISamples(env))
            assert parse_sample("req.hdr(host)").evaluate(EvalContext(samples)) == host
            assert parse_sample("base").evaluate(EvalContext(samples)) == f"{host}/a"


def test_new_samples_is_the_constructor():
    for env in ({}, {"PATH_INFO": "/x", "spoe_sync.body": b"b", "spoe_sync.unique_id": "u",
                     "HTTPS": "on"}):
        fast, general = new_samples(env), MiddlewareSamples(env)
        assert type(fast) is type(general) and vars(fast) == vars(general)


def test_the_inline_client_cache_read_answers_what_client_answers():
    hosts = ["127.0.0.1", "::1", "fe80::1%eth0", "bad", "", None, 7]
    ports = ["40000", "0", "65535", "65536", "-1", "x", "", 40000, None, True, b"1"]
    for _ in range(2):  # a miss then a hit of the cache
        for host in hosts:
            for port in ports:
                env = {"REMOTE_ADDR": host, "REMOTE_PORT": port}
                expected = _client(_str(env, "REMOTE_ADDR"), port)
                assert WSGISamples(env).client == expected, (host, port)
                assert new_samples(env).client == expected, (host, port)


def test_a_source_answering_fetches_itself_is_asked():
    class Answers(SampleSource):
        def lookup(self, keys):
            return "from lookup" if "path" in keys else super().lookup(keys)

    class Inherits(Answers):
        pass

    for source in (Answers(), Inherits(), StaticSamples({"path": "from lookup"})):
        assert parse_sample("path").evaluate(EvalContext(source)) == "from lookup"
    plain = SampleSource(client=(IPv4Address("10.0.0.1"), 1))
    assert parse_sample("src").evaluate(EvalContext(plain)) == IPv4Address("10.0.0.1")
