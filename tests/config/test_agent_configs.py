"""Configs shaped like the ones real agents ship (docs/explanation/agents.md §1, §8) load with the right
messages, groups, args (order and names) and options."""

from __future__ import annotations

import os

from spoe_sync import load_config
from spoe_sync.config import Timeouts

from .corpus_util import CORPUS

VALID = os.path.join(CORPUS, "valid")


def test_coraza():
    cfg = load_config(os.path.join(VALID, "coraza.conf"), "coraza")
    a = cfg.agent
    assert (cfg.engine_id, a.name, a.var_prefix, a.use_backend) == ("coraza", "coraza-agent", "coraza", "spoe_agents")
    assert (a.set_on_error, a.log_global, a.timeouts) == ("error", True, Timeouts(2.0, 120.0, 0.5))
    assert list(cfg.groups) == ["coraza-req"]
    req = cfg.group_messages("coraza-req")[0]
    assert req.arg_names[0] == "app"  # coraza-spoa needs app first
    assert req.arg_names == ("app", "src-ip", "src-port", "dst-ip", "dst-port", "method", "path",
                             "query", "version", "headers", "body", "exportRuleIDs")
    assert [a.expr.fetch for a in req.args][-3:] == ["req.hdrs", "req.body", "bool"]
    assert [m.name for m in cfg.events["on-http-response"]] == ["coraza-res"]
    assert cfg.messages["coraza-res"].arg_names[-1] == "detect-only"


def test_crowdsec():
    cfg = load_config(os.path.join(VALID, "crowdsec.conf"), "crowdsec")
    assert [m.name for m in cfg.events["on-client-session"]] == ["crowdsec-tcp"]
    assert cfg.events["on-client-session"][0].arg_names == ("id", "src-ip", "src-port")
    assert list(cfg.groups) == ["crowdsec-http-body", "crowdsec-http-no-body"]
    body = cfg.group_messages("crowdsec-http-body")[0]
    assert "body" in body.arg_names and "body" not in cfg.group_messages("crowdsec-http-no-body")[0].arg_names
    assert body.args[0].expr.var_refs == ("txn.crowdsec.remediation",)


def test_datadog_env_timeouts_and_one_arg_per_line():
    cfg = load_config(os.path.join(VALID, "datadog.conf"), "datadog", env={"DD_SPOA_TIMEOUT": "250ms"})
    assert cfg.agent.timeouts == Timeouts(0.25, 0.25, 0.25)
    assert cfg.agent.var_prefix == "dd" and cfg.agent.pipelining
    headers = cfg.group_messages("request-headers-msg")[0]
    assert headers.arg_names == ("ip", "ip_port", "method", "path", "headers", "https", "timeout")
    assert [a.expr.fetch for a in headers.args] == ["src", "src_port", "method", "pathq",
                                                    "req.hdrs_bin", "ssl_fc", "var"]
    assert len(cfg.groups) == 4 and not cfg.events


def test_modsecurity_positional_args():
    cfg = load_config(os.path.join(VALID, "modsecurity.conf"), "modsecurity")
    (msg,) = cfg.events["on-frontend-http-request"]
    assert msg.name == "check-request" and msg.arg_names == ("",) * 8
    assert [a.expr.text for a in msg.args] == ["unique-id", "method", "path", "query", "req.ver",
                                               "req.hdrs_bin", "req.body_size", "req.body"]
    assert cfg.agent.var_name("code") == "txn.modsec.code"


def test_spoa_mirror_without_scope():
    cfg = load_config(os.path.join(VALID, "spoa-mirror.conf"))
    assert (cfg.scope, cfg.engine_id) == (None, "mirror")
    assert (cfg.agent.async_, cfg.agent.send_frag_payload) == (True, True)
    assert cfg.events["on-frontend-http-request"][0].arg_names == (
        "arg_method", "arg_path", "arg_ver", "arg_hdrs", "arg_body")


def test_all_agent_keywords_file():
    cfg = load_config(os.path.join(VALID, "all-agent-keywords.conf"))
    a = cfg.agent
    assert (a.messages, a.groups) == (("m1", "m2"), ("g1", "g2"))
    assert (a.pipelining, a.async_, a.send_frag_payload) == (False, True, False)
    assert (a.max_frame_size, a.max_waiting_frames, a.maxconnrate, a.maxerrrate) == (1024, 5, 100, 50)
    assert [(t.kind, t.facility) for t in a.logs] == [("udp", "local3"), ("stdout", "local0"), ("unix", "daemon")]
    assert a.register_var_names == ("proc.all.kw.a", "proc.all.kw.b", "proc.all.kw.c")
    assert set(cfg.events) == {"on-client-session", "on-frontend-http-request"}


def test_lexer_rules_file():
    cfg = load_config(os.path.join(VALID, "lexer-rules.conf"))
    assert (cfg.agent.name, cfg.agent.use_backend, cfg.agent.messages) == ("lex", "spoe_agents", ("m1",))
    msg = cfg.messages["m1"]
    assert [(a.name, a.expr.text) for a in msg.args] == [("", "src"), ("x", "str(a b)"), ("y", "str(#)")]
