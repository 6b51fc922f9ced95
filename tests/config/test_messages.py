"""``spoe-message``/``spoe-group`` sections, scopes and message resolution (SPOE.txt §2.1,
§2.3, §2.4; docs/explanation/haproxy-behaviour.md §7.3-7.4): args order and names, events, conditions,
groups, scopes and engine selection, proxy kinds, and the frozen result."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from spoe_sync import load_config
from spoe_sync.config import SpoeConfig, parse_config
from spoe_sync.errors import ConfigError, SpoeConfigWarning
from spoe_sync.rules import EvalContext, StaticSamples

AGENT = """\
spoe-agent a
    use-backend agents
    timeout hello 1s
    timeout idle 1s
    timeout processing 1s
"""


def load(body: str, engine: str | None = None, **kw) -> SpoeConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpoeConfigWarning)
        return load_config(body, engine, **kw)


def test_args_accumulate_in_order_split_at_first_equal():
    cfg = load(AGENT + "    messages m\nspoe-message m\n    args app=var(txn.coraza.app) src\n"
                       "    args =dst x=str(a=b) 'q=str(x y)'\n    args a=src a=dst\n"
                       "    event on-client-session\n")
    args = cfg.messages["m"].args
    assert [(a.name, a.expr.text) for a in args] == [
        ("app", "var(txn.coraza.app)"), ("", "src"), ("", "dst"), ("x", "str(a=b)"),
        ("q", "str(x y)"), ("a", "src"), ("a", "dst")]
    assert cfg.messages["m"].arg_names[0] == "app"
    assert args[0].expr.var_refs == ("txn.coraza.app",)


def test_events_follow_the_agent_messages_order():
    cfg = load(AGENT + "    messages m3 m1\n    messages m2\n"
                       "spoe-message m1\n    event on-client-session\n"
                       "spoe-message m2\n    event on-client-session\n"
                       "spoe-message m3\n    event on-client-session\n"
                       "spoe-message m4\n    event on-http-response\n")
    assert [m.name for m in cfg.events["on-client-session"]] == ["m3", "m1", "m2"]
    assert set(cfg.events) == {"on-client-session"}  # m4 is not used
    assert set(cfg.messages) == {"m1", "m2", "m3", "m4"}
    assert cfg.agent.messages == ("m3", "m1", "m2")


def test_last_event_wins_and_keeps_the_previous_condition():
    cfg = load(AGENT + "    messages m\nspoe-message m\n    acl local src 127.0.0.1\n"
                       "    event on-frontend-http-request if local\n    event on-client-session\n")
    msg = cfg.messages["m"]
    assert (msg.event, msg.event_lineno) == ("on-client-session", 10)
    assert msg.condition is not None  # only an if/unless replaces it, as in HAProxy
    local = EvalContext(StaticSamples({"src": __import__("ipaddress").ip_address("127.0.0.1")}))
    other = EvalContext(StaticSamples({"src": __import__("ipaddress").ip_address("10.0.0.1")}))
    assert msg.condition.evaluate(local) and not msg.condition.evaluate(other)


def test_unless_condition_and_message_local_acls_ored():
    cfg = load(AGENT + "    messages m\nspoe-message m\n    acl a src 10.0.0.1\n"
                       "    acl a src 10.0.0.2\n    event on-client-session unless a\n")
    cond = cfg.messages["m"].condition
    ip = __import__("ipaddress").ip_address
    assert not cond.evaluate(EvalContext(StaticSamples({"src": ip("10.0.0.2")})))
    assert cond.evaluate(EvalContext(StaticSamples({"src": ip("10.0.0.3")})))


def test_acls_are_local_to_their_message():
    with pytest.raises(ConfigError, match="no such ACL : 'x'"):
        load(AGENT + "    messages m\nspoe-message other\n    acl x src 1.2.3.4\n"
                     "spoe-message m\n    event on-client-session if x\n")


@pytest.mark.parametrize(("words", "sent"), [
    pytest.param("if", False, id="if-never"), pytest.param("unless", True, id="unless-always")])
def test_empty_condition_like_haproxy(words, sent):
    with pytest.warns(SpoeConfigWarning, match="empty condition"):
        cfg = load_config(AGENT + f"    messages m\nspoe-message m\n    event on-client-session {words}\n")
    assert cfg.messages["m"].condition.evaluate(EvalContext(StaticSamples({}))) is sent


def test_groups():
    cfg = load(AGENT + "    groups g2 g1\n"
                       "spoe-message m1\n    args path\nspoe-message m2\n    args status\n"
                       "spoe-group g1\n    messages m1\n"
                       "spoe-group g2\n    messages m2\nspoe-group unused\n    messages m1 nowhere\n")
    assert list(cfg.groups) == ["g2", "g1"]  # the agent's order; unused groups are left out
    assert (cfg.groups["g1"].messages, cfg.groups["g1"].lineno) == (("m1",), 11)
    assert cfg.events == {}


def test_message_in_two_used_groups_is_an_error():
    with pytest.raises(ConfigError) as info:
        load(AGENT + "    groups g1 g2\nspoe-message m1\n    args path\n"
                     "spoe-group g1\n    messages m1\nspoe-group g2\n    messages m1\n")
    assert info.value.lineno == 12
    assert info.value.message == ("SPOE message 'm1' already belongs to the SPOE group 'g1' "
                                  "declare at <string>:9")


def test_group_members_and_event_binding_together():
    cfg = load(AGENT + "    messages m1\n    groups g1\n"
                       "spoe-message m1\n    args path\n    event on-frontend-http-request\n"
                       "spoe-message m2\n    args src\n"
                       "spoe-group g1\n    messages m2 m1\n")
    assert [m.name for m in cfg.group_messages("g1")] == ["m2", "m1"]
    assert cfg.groups["g1"].messages == ("m2", "m1")
    assert (cfg.messages["m1"].group, cfg.messages["m2"].group) == ("g1", "g1")
    assert [m.name for m in cfg.events["on-frontend-http-request"]] == ["m1"]


def test_message_without_event_is_dropped_with_a_warning():
    with pytest.warns(SpoeConfigWarning, match=r"\[<string>:7\] Ignore SPOE message 'm' without event at <string>:7\."):
        cfg = load_config(AGENT + "    messages m\nspoe-message m\n    args src\n")
    assert cfg.events == {}


def test_unknown_keyword_in_message_is_ignored_with_a_warning():
    with pytest.warns(SpoeConfigWarning, match=r"\[<string>:8\] unknown keyword 'evnet'"):
        cfg = load_config(AGENT + "    messages m\nspoe-message m\n    evnet on-client-session\n"
                                  "    event on-client-session\n")
    assert cfg.messages["m"].event == "on-client-session"


def test_duplicate_message_keeps_filling_the_first_one():
    with pytest.raises(ConfigError) as info:
        load(AGENT + "    messages m\nspoe-message m\n    args src\nspoe-message m\n"
                     "    event on-client-session\n    optoin\n")
    assert [e.lineno for e in info.value.errors] == [9]


@pytest.mark.parametrize(("event", "proxy", "bound"), [
    pytest.param("on-backend-http-request", "frontend", "on-backend-http-request", id="fe-keeps-be-event"),
    pytest.param("on-backend-http-request", "listen", "on-frontend-http-request", id="listen-be-to-fe"),
    pytest.param("on-backend-tcp-request", "listen", "on-frontend-tcp-request", id="listen-tcp"),
    pytest.param("on-http-response", "backend", "on-http-response", id="backend-response"),
    pytest.param("on-client-session", "backend", None, id="backend-drops-fe-event"),
])
def test_events_by_proxy_kind(event, proxy, bound):
    cfg = load(AGENT + f"    messages m\nspoe-message m\n    args src\n    event {event}\n", proxy=proxy)
    assert list(cfg.events) == ([bound] if bound else [])


def test_arg_not_available_at_event_names_the_args_line():
    with pytest.raises(ConfigError) as info:
        load(AGENT + "    messages m\nspoe-message m\n    args src\n    args status\n"
                     "    event on-frontend-http-request\n")
    assert info.value.lineno == 9
    assert info.value.message.startswith("Ignore SPOE message 'm' at <string>:7: some args "
                                         "extract information from 'frontend http-response body rule'")


def test_unimplemented_fetch_error_only_where_it_runs():
    body = AGENT + "    messages m\nspoe-message m\n    args src\n    event on-client-session\n"
    unused = "spoe-message spare\n    args sc0_http_req_rate\n    event on-frontend-http-request\n"
    with pytest.warns(SpoeConfigWarning, match=r"\[<string>:11\] SPOE message 'spare' uses fetch 'sc0_http_req_rate'"):
        load_config(body + unused)
    with pytest.raises(ConfigError, match="spoe_sync does not implement") as info:
        load(body.replace("messages m", "messages m spare") + unused)
    assert info.value.lineno == 11


def test_scopes_and_engine_selection():
    text = ("[e1]\n" + AGENT + "    messages m\nspoe-message m\n    args src\n    event on-client-session\n"
            "[e2]\n" + AGENT + "    messages m\nspoe-message m\n    args dst\n    event on-client-session\n")
    e2 = load(text, "e2")
    assert (e2.engine_id, e2.scope, e2.agent.name) == ("e2", "e2", "a")
    assert e2.messages["m"].args[0].expr.text == "dst" and e2.agent.lineno == 12
    with pytest.raises(ConfigError, match=r"No SPOE agent found in file <string> \(the file has scopes \[e1\], \[e2\]"):
        load(text)
    with pytest.raises(ConfigError, match=r"no scope \[e3\] in the file"):
        load(text, "e3")
    plain = load(AGENT + "    messages m\nspoe-message m\n    event on-client-session\n")
    assert (plain.engine_id, plain.scope) == ("a", None)
    with pytest.raises(ConfigError, match="No SPOE agent found"):
        load(AGENT + "    messages m\nspoe-message m\n    event on-client-session\n", "a")


def test_errors_of_other_scopes_are_not_reported_but_quoting_errors_are():
    bad_other = "[e1]\nspoe-agent x\n    optoin\n[e2]\n" + AGENT + "    messages m\nspoe-message m\n    event on-client-session\n"
    assert load(bad_other, "e2").agent.name == "a"
    with pytest.raises(ConfigError) as info:
        load(bad_other.replace("optoin", "args 'x"), "e2")
    assert info.value.lineno == 3


def test_several_errors_at_once():
    with pytest.raises(ConfigError) as info:
        load(AGENT + "    foo\n    timeout hello x\n    messages m\nspoe-message m\n    event on-foo\n")
    err = info.value
    assert [e.lineno for e in err.errors] == [6, 7, 10]
    assert (err.lineno, err.filename) == (6, "<string>")
    assert str(err).splitlines()[1] == "[<string>:7] unexpected character 'x' in 'timeout hello'."


def test_result_is_frozen():
    cfg = load(AGENT + "    messages m\nspoe-message m\n    args src\n    event on-client-session\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.agent.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.messages["x"] = cfg.messages["m"]  # type: ignore[index]
    assert isinstance(cfg.events["on-client-session"], tuple)


def test_path_and_text_sources(tmp_path):
    path = tmp_path / "spoe.conf"
    path.write_text(AGENT + "    messages m\nspoe-message m\n    event on-client-session\n")
    assert load(path).filename == str(path)
    assert load(str(path)).agent.filename == str(path)
    with pytest.raises(ConfigError, match=r"Could not open configuration file .*missing\.conf : No such file"):
        load(str(tmp_path / "missing.conf"))
    assert parse_config(path.read_text(), filename="x.conf").filename == "x.conf"


def test_if_blocks(monkeypatch):
    text = (".if defined(SPOE_SYNC_TEST_FLAG)\nspoe-agent on\n.else\nspoe-agent off\n.endif\n"
            + AGENT.split("\n", 1)[1] + "    messages m\nspoe-message m\n    event on-client-session\n")
    assert load(text).agent.name == "off"
    monkeypatch.setenv("SPOE_SYNC_TEST_FLAG", "1")
    assert load(text).agent.name == "on"


@pytest.mark.parametrize(("block", "message", "lineno"), [
    pytest.param(".if 1\n", "non-terminated '.if' block.", 9, id="unterminated"),
    pytest.param(".endif\n", "lone '.endif' with no matching '.if'.", 1, id="lone-endif"),
    pytest.param(".else\n", "lone '.else' with no matching '.if'.", 1, id="lone-else"),
    pytest.param(".if foo(\n.endif\n", "unparsable conditional expression 'foo(' in '.if'", 1, id="garbage"),
    pytest.param(".alert stop here\n", "'stop here'.", 1, id="alert"),
])
def test_if_block_errors(block, message, lineno):
    with pytest.raises(ConfigError) as info:
        load(block + AGENT + "    messages m\nspoe-message m\n    event on-client-session")
    assert info.value.message.startswith(message) and info.value.lineno == lineno


@pytest.mark.parametrize(("cond", "taken"), [
    pytest.param("defined(SPOE_SYNC_TEST_FLAG) && !defined(SPOE_SYNC_UNSET)", True, id="and"),
    pytest.param("defined(SPOE_SYNC_UNSET) || 0", False, id="or-false"),
    pytest.param("defined(SPOE_SYNC_UNSET) || streq(a,a)", True, id="or-true"),
    pytest.param("version_atleast(2.5) && version_before(2.7)", True, id="version"),
    pytest.param("feature(OPENSSL)", False, id="feature"),
])
def test_if_expressions(monkeypatch, cond, taken):
    monkeypatch.setenv("SPOE_SYNC_TEST_FLAG", "1")
    text = f".if {cond}\n    foo\n.endif\n" + AGENT + "    messages m\nspoe-message m\n    event on-client-session\n"
    if taken:
        with pytest.raises(ConfigError, match="unknown keyword 'foo' out of section"):
            load(text)
    else:
        assert load(text).agent.name == "a"
