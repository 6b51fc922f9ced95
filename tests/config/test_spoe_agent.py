"""``spoe-agent`` keywords (SPOE.txt §2.2, docs/explanation/haproxy-behaviour.md §7.2): HAProxy 2.6's
defaults, ranges, units, name rules, ``no``/``default`` prefixes and ``log`` lines."""

from __future__ import annotations

import warnings

import pytest

from spoe_sync import load_config
from spoe_sync.config import LogTarget, Timeouts
from spoe_sync.errors import ConfigError, SpoeConfigWarning

BASE = """\
spoe-agent my_agent
    messages m1
    use-backend agents
{extra}
spoe-message m1
    args src
    event on-client-session
"""
TIMEOUTS = "    timeout hello 1s\n    timeout idle 1s\n    timeout processing 1s\n"


def agent(extra: str = TIMEOUTS):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpoeConfigWarning)
        return load_config(BASE.format(extra=extra)).agent


def error(extra: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        agent(TIMEOUTS + extra)
    return info.value


def test_defaults_are_haproxy_26():
    a = agent()
    assert (a.name, a.var_prefix, a.use_backend) == ("my_agent", "my_agent", "agents")
    assert (a.max_frame_size, a.max_waiting_frames, a.maxconnrate, a.maxerrrate) == (16380, 20, 0, 0)
    assert (a.pipelining, a.async_, a.send_frag_payload) == (True, True, True)
    assert (a.dontlog_normal, a.continue_on_error, a.force_set_var) == (False, False, False)
    assert (a.set_on_error, a.set_process_time, a.set_total_time) == (None, None, None)
    assert (a.logs, a.log_global, a.register_var_names) == ((), False, ())
    assert (a.filename, a.lineno, a.messages, a.groups) == ("<string>", 1, ("m1",), ())


@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param("10", 0.01, id="default-unit-ms"),
    pytest.param("10ms", 0.01, id="ms"),
    pytest.param("1500us", 0.002, id="us-rounds-up"),
    pytest.param("2s", 2.0, id="s"),
    pytest.param("2m", 120.0, id="m"),
    pytest.param("1h", 3600.0, id="h"),
    pytest.param("1d", 86400.0, id="d"),
    pytest.param("0", None, id="zero-is-unset"),
    pytest.param("2147483647", 2147483.647, id="max"),
])
def test_timeout_units(text, seconds):
    a = agent(f"    timeout hello {text}\n    timeout idle 1s\n    timeout processing 1s\n")
    assert a.timeouts == Timeouts(seconds, 1.0, 1.0)


def test_timer_junk_after_unit_is_a_warning():
    with pytest.warns(SpoeConfigWarning, match=r"\[<string>:4\] unexpected character 'x' after the timer value '2sx'"):
        a = load_config(BASE.format(extra="    timeout hello 2sx\n    timeout idle 1s\n    timeout processing 1s"))
    assert a.agent.timeouts.hello == 2.0


def test_missing_timeouts_warn_at_the_agent_line():
    with pytest.warns(SpoeConfigWarning, match=r"^\[<string>:1\] missing timeouts for SPOE agent 'my_agent'"):
        cfg = load_config(BASE.format(extra="    timeout processing 1s"))
    assert cfg.agent.timeouts == Timeouts(None, None, 1.0)


def test_every_option():
    a = agent(TIMEOUTS + """
    no option pipelining
    no option async
    option async
    no option send-frag-payload
    option dontlog-normal
    option continue-on-error
    option force-set-var
    option var-prefix my.pfx_1
    option set-on-error err
    option set-process-time t.p
    option set-total-time t_t
    register-var-names a b
    register-var-names c
    max-frame-size 1024
    max-waiting-frames 5
    maxconnrate 10
    maxerrrate 20
""")
    assert (a.pipelining, a.async_, a.send_frag_payload, a.dontlog_normal) == (False, True, False, True)
    assert (a.continue_on_error, a.force_set_var, a.var_prefix) == (True, True, "my.pfx_1")
    assert (a.set_on_error, a.set_process_time, a.set_total_time) == ("err", "t.p", "t_t")
    assert a.var_name(a.set_on_error) == "txn.my.pfx_1.err"
    assert a.register_var_names == ("proc.my.pfx_1.a", "proc.my.pfx_1.b", "proc.my.pfx_1.c")
    assert (a.max_frame_size, a.max_waiting_frames, a.maxconnrate, a.maxerrrate) == (1024, 5, 10, 20)


@pytest.mark.parametrize(("line", "attr", "value"), [
    pytest.param("max-frame-size 1024abc", "max_frame_size", 1024, id="atol-ignores-junk"),
    pytest.param("max-frame-size 256", "max_frame_size", 256, id="min-frame"),
    pytest.param("max-frame-size 16380", "max_frame_size", 16380, id="max-frame"),
    pytest.param("maxconnrate abc", "maxconnrate", 0, id="garbage-is-zero"),
    pytest.param("maxerrrate -1", "maxerrrate", 2**32 - 1, id="negative-wraps"),
    pytest.param("max-waiting-frames -1", "max_waiting_frames", 2**32 - 1, id="waiting-wraps"),
])
def test_integers_read_like_atol(line, attr, value):
    assert getattr(agent(TIMEOUTS + "    " + line), attr) == value


@pytest.mark.parametrize(("line", "message"), [
    pytest.param("optoin x", "unknown keyword 'optoin' in spoe-agent section."),
    pytest.param("option", "'option' expects an option name."),
    pytest.param("option bogus", "option 'bogus' is not supported."),
    pytest.param("option async now", "'option' cannot handle unexpected argument 'now'."),
    pytest.param("no option var-prefix x", "negation is not supported for option 'var-prefix'."),
    pytest.param("no option continue-on-error", "negation is not supported for option 'continue-on-error'."),
    pytest.param("option var-prefix", "'option var-prefix' expects a value."),
    pytest.param("option var-prefix a-b", "'option var-prefix' only supports [a-zA-Z0-9_.] chars."),
    pytest.param("option set-total-time é", "'option set-total-time' only supports [a-zA-Z0-9_.] chars."),
    pytest.param("option set-on-error a b", "'option' cannot handle unexpected argument 'b'."),
    pytest.param("timeout", "'timeout' expects 'hello', 'idle' and 'processing'."),
    pytest.param("timeout server 1s", "'timeout' supports 'hello', 'idle' or 'processing' (got server)."),
    pytest.param("timeout hello", "'timeout hello' expects an integer value (in milliseconds)."),
    pytest.param("timeout hello 1s 2s", "'timeout' cannot handle unexpected argument '2s'."),
    pytest.param("timeout hello x", "unexpected character 'x' in 'timeout hello'."),
    pytest.param("timeout hello -1", "unexpected character '-' in 'timeout hello'."),
    pytest.param("timeout idle 1.5s", "unexpected character '.' in 'timeout idle'."),
    pytest.param("timeout idle 25d", "timer overflow in argument <25d> to <timeout idle>, maximum value is 2147483647 ms (~24.8 days)."),
    pytest.param("max-frame-size", "'max-frame-size' expects an integer argument."),
    pytest.param("max-frame-size 255", "'max-frame-size' expects a positive integer argument in the range [256, 16380]."),
    pytest.param("max-frame-size 16381", "'max-frame-size' expects a positive integer argument in the range [256, 16380]."),
    pytest.param("max-frame-size 0x400", "'max-frame-size' expects a positive integer argument in the range [256, 16380]."),
    pytest.param("max-waiting-frames x", "'max-waiting-frames' expects a positive integer argument."),
    pytest.param("maxconnrate", "'maxconnrate' expects an integer argument."),
    pytest.param("maxerrrate 1 2", "'maxerrrate' cannot handle unexpected argument '2'."),
    pytest.param("register-var-names", "'register-var-names' expects one or more variable names."),
    pytest.param("use-backend", "'use-backend' expects a backend name."),
    pytest.param("use-backend a b", "'use-backend' cannot handle unexpected argument 'b'."),
    pytest.param("messages m1", "spoe-message 'm1' already used."),
    pytest.param("groups g g", "spoe-group 'g' already used."),
    pytest.param("no messages m2", "negation/default currently supported only for options, log, busy-polling"),
    pytest.param("default option pipelining", "'option' cannot handle unexpected argument 'pipelining'."),
    pytest.param("default timeout hello 1s", "'timeout' cannot handle unexpected argument '1s'."),
    pytest.param("register-var-names ok bad-name", "failed to register variable my_agent.bad-name (invalid syntax at char '-name')"),
])
def test_keyword_errors(line, message):
    err = error("    " + line)
    assert any(message in e.message for e in err.errors), [e.message for e in err.errors]
    assert err.lineno == 7 and err.filename == "<string>"


@pytest.mark.parametrize(("line", "target"), [
    pytest.param("log stdout local0", LogTarget("stdout", None, "local0"), id="stdout"),
    pytest.param("log stderr format raw daemon info", LogTarget("stderr", None, "daemon", "info", format="raw"), id="stderr"),
    pytest.param("log fd@1 local0", LogTarget("stdout", None, "local0"), id="fd1"),
    pytest.param("log 127.0.0.1:514 len 200 format rfc5424 local3 info notice",
                 LogTarget("udp", "127.0.0.1:514", "local3", "info", "notice", "rfc5424", 200), id="udp-full"),
    pytest.param("log 10.0.0.1 user", LogTarget("udp", "10.0.0.1:514", "user"), id="default-port"),
    pytest.param("log udp@[::1]:1514 local7", LogTarget("udp", "[::1]:1514", "local7"), id="ipv6"),
    pytest.param("log /dev/log daemon", LogTarget("unix", "/dev/log", "daemon"), id="unix-path"),
    pytest.param("log unix@/run/log.sock daemon err", LogTarget("unix", "/run/log.sock", "daemon", "err"), id="unix-prefix"),
    pytest.param("log stdout sample 1-3,5:10 local0", LogTarget("stdout", None, "local0", sample="1-3,5:10"), id="sample"),
])
def test_log_targets(line, target):
    assert agent(TIMEOUTS + "    " + line).logs == (target,)


def test_log_global_and_no_log():
    a = agent(TIMEOUTS + "    log global\n    log stdout local0\n")
    assert a.log_global and len(a.logs) == 1
    b = agent(TIMEOUTS + "    log global\n    log stdout local0\n    no log\n    log stderr local1\n")
    assert not b.log_global and b.logs == (LogTarget("stderr", None, "local1"),)


@pytest.mark.parametrize(("line", "message"), [
    pytest.param("log", "log : expects <address> and <facility> or global as arguments"),
    pytest.param("log 127.0.0.1:514", "log : expects <address> and <facility> or global as arguments"),
    pytest.param("log global extra", "log : unknown log facility 'extra'"),
    pytest.param("no log global", "log : 'no log' does not expect arguments"),
    pytest.param("log stdout local9", "log : unknown log facility 'local9'"),
    pytest.param("log stdout local0 loud", "log : unknown optional log level 'loud'"),
    pytest.param("log stdout local0 info loud", "log : unknown optional minimum log level 'loud'"),
    pytest.param("log stdout local0 info info x", "log : cannot handle unexpected argument 'x'"),
    pytest.param("log stdout len 79 local0", "log : invalid log length '79', must be between 80 and 65535"),
    pytest.param("log stdout format xml local0", "log : unknown log format 'xml'"),
    pytest.param("log stdout format raw len 100 local0", "log : unknown log facility 'len'"),
    pytest.param("log stdout sample 1 local0", "log : Missing sample size"),
    pytest.param("log 127.0.0.1:99999 local0", "log : invalid port '99999'"),
    pytest.param("log 1.2.3.4:514-520 local0", "log : port range not permitted here"),
    pytest.param("log ipv6@::1 local0", "log : invalid address: ':'"),
    pytest.param("log ring@buf local0", "log server used by SPOE agent 'my_agent' declared at <string>:1 uses unknown ring named 'buf'."),
])
def test_log_errors(line, message):
    err = error("    " + line)
    assert err.message.startswith(message), err.message


def test_agent_header_errors_stop_the_reading():
    text = "spoe-agent a/b\n    optoin x\n"
    with pytest.raises(ConfigError) as info:
        load_config(text)
    assert [(e.lineno, e.message) for e in info.value.errors] == [
        (1, "character '/' is not permitted in 'spoe-agent' name 'a/b'.")]


@pytest.mark.parametrize(("header", "message"), [
    pytest.param("spoe-agent", "missing name for spoe-agent section."),
    pytest.param("spoe-agent a b", "'spoe-agent' cannot handle unexpected argument 'b'."),
    pytest.param("spoe-agent a\n    use-backend x\nspoe-agent b", "another spoe-agent section previously defined."),
])
def test_agent_header_errors(header, message):
    with pytest.raises(ConfigError) as info:
        load_config(header + "\n    use-backend x\n")
    assert info.value.errors[-1].message == message


def test_agent_name_must_be_a_valid_prefix_without_var_prefix():
    with pytest.raises(ConfigError, match=r"Invalid variable prefix 'ip-rep' for SPOE agent 'ip-rep' declared at <string>:1\. Use 'option var-prefix'"):
        load_config("spoe-agent ip-rep\n    use-backend b\n    messages m\n    timeout hello 1\n"
                    "    timeout idle 1\n    timeout processing 1\nspoe-message m\n    event on-client-session\n")
    cfg = load_config("spoe-agent ip-rep\n    option var-prefix iprep\n    use-backend b\n"
                      "    timeout hello 1\n    timeout idle 1\n    timeout processing 1\n"
                      "    messages m\nspoe-message m\n    event on-client-session\n")
    assert (cfg.agent.name, cfg.agent.var_prefix, cfg.engine_id) == ("ip-rep", "iprep", "ip-rep")


def test_no_backend_is_an_error_at_the_agent_line():
    with pytest.raises(ConfigError) as info:
        load_config("spoe-agent a\n    messages m\n    timeout hello 1\n    timeout idle 1\n"
                    "    timeout processing 1\nspoe-message m\n    event on-client-session\n")
    assert (info.value.lineno, info.value.message) == (1, "No backend declared for SPOE agent 'a' declared at <string>:1")


def test_bufsize_bounds_and_defaults_max_frame_size():
    text = BASE.format(extra=TIMEOUTS)
    assert load_config(text, bufsize=65536).agent.max_frame_size == 65532
    assert load_config(text.replace("use-backend agents", "use-backend agents\n    max-frame-size 30000"),
                       bufsize=32768).agent.max_frame_size == 30000
    with pytest.raises(ConfigError, match=r"in the range \[256, 32764\]"):
        load_config(text.replace("use-backend agents", "use-backend agents\n    max-frame-size 32765"),
                    bufsize=32768)
