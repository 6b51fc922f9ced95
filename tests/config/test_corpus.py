"""The corpus (SPOE.txt §2, docs/explanation/haproxy-behaviour.md §7): every file loads or fails the
way its header says, with HAProxy's message, at the named line."""

from __future__ import annotations

import os
import warnings

import pytest

from spoe_sync.config import Backend, Server, check_backend, load_config
from spoe_sync.errors import ConfigError, SpoeConfigWarning

from .corpus_util import corpus_files

BACKENDS = {
    "spoe_agents": Backend("spoe_agents", (Server("127.0.0.1:12345", name="a"),)),
    "be": Backend("be", (Server("127.0.0.1:1", name="s"),), mode="http"),
}
FILES = corpus_files()


def _load(corpus):
    env = {**os.environ, **corpus.env}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_config(corpus.path, corpus.engine, env=env)
        check_backend(config, BACKENDS)
    return config, [str(w.message) for w in caught if issubclass(w.category, SpoeConfigWarning)]


def test_corpus_is_big_enough():
    kinds = [f.kind for f in FILES]
    assert kinds.count("valid") >= 15 and kinds.count("invalid") >= 40
    assert all(f.haproxy for f in FILES if f.kind == "invalid")


@pytest.mark.parametrize("corpus", [pytest.param(f, id=f.name) for f in FILES if f.kind == "valid"])
def test_valid_file_loads(corpus):
    config, warned = _load(corpus)
    assert config.agent.use_backend == "spoe_agents"
    if corpus.warns:
        assert any(corpus.warns in w for w in warned), warned
    assert all(w.startswith(f"[{corpus.path}") for w in warned)


@pytest.mark.parametrize("corpus", [pytest.param(f, id=f.name) for f in FILES
                                    if f.kind in ("invalid", "spoe_only")])
def test_invalid_file_fails_at_its_line(corpus):
    with pytest.raises(ConfigError) as info:
        _load(corpus)
    expected = corpus.haproxy or corpus.spoe_sync
    matching = [e for e in info.value.errors if expected in e.message]
    assert matching, [e.message for e in info.value.errors]
    assert matching[0].lineno == corpus.line
    assert matching[0].filename == corpus.path
