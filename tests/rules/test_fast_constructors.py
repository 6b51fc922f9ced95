"""The per-request shortcuts of the sample sources build what the general code builds:
``normalize_headers`` (one encode per string when the headers are latin-1 text),
``response_info`` (``ResponseInfo`` without its frozen dataclass's ``__init__``) and
``WSGISamples.with_response`` (``copy.copy`` written out), on any input, failures included."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from spoe_sync.rules import EvalContext, ResponseInfo, parse_sample
from spoe_sync.rules.sources import _header_bytes, normalize_headers, response_info
from spoe_sync.rules.wsgisource import WSGISamples

_PART = st.one_of(st.text(max_size=6), st.binary(max_size=6),
                  st.sampled_from(["Content-Type", "caf\xe9", "\u20ac", "\udcff", b"\xff", 7,
                                   None]))
_HEADERS = st.lists(st.one_of(st.tuples(_PART, _PART), st.tuples(_PART)), max_size=4)


def _reference(headers):
    return tuple((_header_bytes(n), _header_bytes(v)) for n, v in headers)


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # the same failure on both paths
        return type(exc)


@settings(max_examples=500, deadline=None)
@given(_HEADERS, st.sampled_from([list, tuple, iter]))
def test_normalize_headers_is_its_definition(headers, container):
    assert _outcome(normalize_headers, container(headers)) == _outcome(_reference, headers)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(100, 599), st.sampled_from(["200", 404.0, True])),
       st.lists(st.tuples(_PART, _PART), max_size=3), st.one_of(st.none(), st.binary(max_size=4)),
       st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.text(max_size=5))
def test_response_info_is_the_constructor(status, headers, body, version, reason):
    general = _outcome(ResponseInfo, status, tuple(headers), body, version, reason)
    fast = _outcome(response_info, status, tuple(headers), body, version, reason)
    if isinstance(general, type):
        assert fast is general
    else:
        assert type(fast) is ResponseInfo and fast == general and vars(fast) == vars(general)


def test_with_response_is_a_copy_with_the_response():
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "REMOTE_ADDR": "10.0.0.1",
           "REMOTE_PORT": "5", "HTTP_HOST": "h", "spoe_sync.unique_id": "u"}
    response = response_info(200, [("Content-Type", "text/plain")])
    for samples in (WSGISamples(env), WSGISamples(env, body=b"x", ssl=True, frontend_id=3)):
        parse_sample("path").evaluate(EvalContext(samples))  # some lazy fields already read
        expected = copy.copy(samples)
        expected.response = response
        clone = samples.with_response(response)
        assert type(clone) is type(samples) and vars(clone) == vars(expected)
        assert clone is not samples and samples.response is None
