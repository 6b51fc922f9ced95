"""``spoe-sync check --haproxy`` on the rule lines of a haproxy.cfg (configuration.txt §4.2):
every ``http-request``/``http-response``/``http-after-response``/``tcp-request content``/
``tcp-response content`` line spoe_sync runs is parsed as the middleware and the TCP proxy
parse it (errors at ``[file:line]``), an action HAProxy 2.6 knows and spoe_sync does not run
is a warning (HAProxy accepts it), a word HAProxy does not know is an error, and ``acl`` lines
are compiled.  The files are those of tests/config/corpus_rules/ (see rule_corpus.py)."""

from __future__ import annotations

import io
import os
import re

import pytest

from spoe_sync.config import run_check

from .rule_corpus import rule_corpus_files, with_agent_conf

FILES = rule_corpus_files()
# HAProxy refuses it because no Lua file registers the action; spoe_sync cannot know that.
_LUA = "lua-action.cfg"


def _check(path: str) -> tuple[int, str]:
    out = io.StringIO()
    return run_check(haproxy=path, out=out), out.getvalue()


@pytest.mark.parametrize("corpus", [pytest.param(f, id=f.name) for f in FILES
                                    if f.kind == "invalid" and not f.path.endswith(_LUA)])
def test_check_haproxy_rejects_the_invalid_files(corpus, tmp_path):
    code, text = _check(with_agent_conf(corpus.path, str(tmp_path)))
    assert code == 1, text
    assert corpus.spoe_sync in text, text
    if corpus.line is not None:
        assert f"x.cfg:{corpus.line}]" in text or f":{corpus.line}]" in text, text
    verdict, totals = text.rstrip().splitlines()[-2:]
    assert verdict == (f"Error(s) found in configuration file : "
                       f"{os.path.join(str(tmp_path), os.path.basename(corpus.path))}")
    assert re.fullmatch(r"checked \d+ files?: [1-9]\d* errors?, \d+ warnings?", totals), totals


def test_a_lua_action_is_a_warning_not_an_error(tmp_path):
    corpus = next(f for f in FILES if f.path.endswith(_LUA))
    code, text = _check(with_agent_conf(corpus.path, str(tmp_path)))
    assert code == 0, text
    assert "warning: 'http-request lua.crowdsec_handle' is not run by spoe_sync" in text


def _cfg(tmp_path, rules: str) -> str:
    src = next(f for f in FILES if f.kind == "valid").path
    with open(src) as f:
        text = f.read()
    lines = text.splitlines()
    fe = lines.index("frontend fe")
    body = "\n".join(lines[:fe + 1]) + "\n    bind 127.0.0.1:18999\n" \
        "    filter spoe engine rw config agent.conf\n" + rules + "\n    default_backend be\n" \
        "backend be\n    server s 127.0.0.1:1\nbackend agents\n    mode tcp\n" \
        "    server a 127.0.0.1:12345\n"
    (tmp_path / "src").mkdir()
    path = tmp_path / "src" / "x.cfg"
    path.write_text(body)
    return with_agent_conf(str(path), str(tmp_path))


@pytest.mark.parametrize("rule, verdict, text", [
    pytest.param("    http-request track-sc0 src", 0,
                 "warning: 'http-request track-sc0' is not run by spoe_sync", id="haproxy-only"),
    pytest.param("    tcp-request content switch-mode http", 0,
                 "warning: 'tcp-request content switch-mode' is not run", id="tcp-haproxy-only"),
    pytest.param("    declare capture response len 8\n    http-response capture res.hdr(server) id 0",
                 0, "warning: 'http-response capture' is not run", id="response-capture"),
    pytest.param("    http-request ot-group ot-test grp", 0,
                 "warning: 'http-request ot-group' is not run", id="opentracing-group"),
    pytest.param("    http-request frobnicate", 1, "but got 'frobnicate'", id="unknown-word"),
    pytest.param("    http-response set-status 99", 1, "set-status", id="bad-status"),
    pytest.param("    acl bad hdr(host) -m nosuch x\n    http-request deny if bad", 1,
                 "acl 'bad'", id="bad-acl"),
    pytest.param("    http-request deny if undefined_acl", 1, "undefined_acl", id="unknown-acl"),
    pytest.param("    acl ok path_beg /a\n    http-request deny if ok", 0, "valid",
                 id="good-acl"),
])
def test_rule_lines(tmp_path, rule, verdict, text):
    code, out = _check(_cfg(tmp_path, rule))
    assert code == verdict, out
    assert text in out, out
