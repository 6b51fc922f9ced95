"""HTTP rule lines of haproxy.cfg files (configuration.txt §4.2; the actions of
docs/explanation/agents.md §6: ``set-src``, ``set-path``, ``wait-for-body``, ``capture``,
``replace-header``...) loaded the way users load them: ``SpoeMiddleware.from_haproxy_cfg``
and ``spoe-sync check --haproxy``.  tests/conformance/test_rule_corpus_haproxy.py holds the
same files against ``haproxy -c``."""

from __future__ import annotations

import io
import warnings

import pytest

from spoe_sync.config import run_check
from spoe_sync.errors import ConfigError, SpoeConfigWarning
from spoe_sync.wsgi import SpoeMiddleware

from .rule_corpus import rule_corpus_files, with_agent_conf

FILES = rule_corpus_files()


def _app(environ, start_response):
    start_response("204 No Content", [])
    return []


def _load(path: str) -> tuple[ConfigError | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpoeConfigWarning)
        try:
            mw = SpoeMiddleware.from_haproxy_cfg(_app, path, "fe")
        except ConfigError as exc:
            return exc, [str(w.message) for w in caught]
    mw.close(timeout=0)
    return None, [str(w.message) for w in caught]


def test_the_corpus_has_every_kind():
    kinds = {f.kind for f in FILES}
    assert kinds == {"valid", "invalid", "spoe_only"}
    assert all(f.spoe_sync for f in FILES if f.kind != "valid")


@pytest.mark.parametrize("corpus", [pytest.param(f, id=f.name) for f in FILES])
def test_from_haproxy_cfg_verdict(corpus, tmp_path):
    path = with_agent_conf(corpus.path, str(tmp_path))
    error, warned = _load(path)
    if corpus.kind == "valid":
        assert error is None, error
        if corpus.warns:
            assert any(corpus.warns in w for w in warned), warned
        return
    assert error is not None, "accepted"
    assert corpus.spoe_sync in str(error)
    if corpus.line is not None:
        assert f"[{path}:{corpus.line}]" in str(error), str(error)


@pytest.mark.parametrize("corpus", [pytest.param(f, id=f.name) for f in FILES
                                    if f.kind == "valid"])
def test_check_haproxy_accepts_the_valid_files(corpus, tmp_path):
    out = io.StringIO()
    assert run_check(haproxy=with_agent_conf(corpus.path, str(tmp_path)), out=out) == 0, \
        out.getvalue()
