"""``spoe-sync check`` (issue: CLI): exit codes, ``[file:line] message`` errors, warnings,
the summary, and ``--haproxy`` with backends and ``send-spoe-group`` rules."""

from __future__ import annotations

import pytest

from spoe_sync.cli import main

SPOE = """\
[iprep]
spoe-agent iprep-agent
    messages get-ip-reputation
    groups check
    option var-prefix iprep
    option set-on-error err
    timeout hello 2s
    timeout idle 2m
    timeout processing 10ms
    use-backend agents

spoe-message get-ip-reputation
    args ip=src
    event on-client-session

spoe-message by-host
    args host=req.hdr(host) ip=src

spoe-message status
    args status

spoe-group check
    messages by-host
"""


@pytest.fixture
def spoe_file(tmp_path):
    path = tmp_path / "spoe.conf"
    path.write_text(SPOE)
    return path


def test_valid_file_prints_a_summary(spoe_file, capsys):
    assert main(["check", str(spoe_file), "--engine", "iprep"]) == 0
    out = capsys.readouterr().out
    assert f"{spoe_file}: valid, engine [iprep]" in out
    assert "agent      iprep-agent (variables txn.iprep.*)" in out
    assert "timeouts   hello 2s, idle 2m, processing 10ms" in out
    assert "event      on-client-session: get-ip-reputation(ip=src)" in out
    assert "group      check: by-host(host=req.hdr(host), ip=src)" in out
    assert "set-on-error txn.iprep.err" in out


def test_invalid_file_prints_every_error(tmp_path, capsys):
    path = tmp_path / "bad.conf"
    path.write_text(SPOE.replace("option set-on-error err", "option set-on-error e-r")
                    .replace("event on-client-session", "event on-foo"))
    assert main(["check", str(path), "--engine", "iprep"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"[{path}:6] 'option set-on-error' only supports [a-zA-Z0-9_.] chars.",
                     f"[{path}:14] unknown event 'on-foo'.",
                     "checked 1 file: 2 errors, 0 warnings"]


def test_warnings_are_printed_and_valid(tmp_path, capsys):
    path = tmp_path / "warn.conf"
    path.write_text(SPOE.replace("    timeout idle 2m\n", "").replace("event on-client-session", ""))
    assert main(["check", str(path), "--engine", "iprep"]) == 0
    out = capsys.readouterr().out
    assert f"[{path}:2] warning: missing timeouts for SPOE agent 'iprep-agent'" in out
    assert f"[{path}:11] warning: Ignore SPOE message 'get-ip-reputation' without event" in out
    assert "valid" in out


def test_scoped_file_needs_an_engine(spoe_file, capsys):
    assert main(["check", str(spoe_file)]) == 1
    assert "the file has scopes [iprep]" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    pytest.param(["check"], id="nothing"),
    pytest.param(["check", "a.conf", "--haproxy", "h.cfg"], id="both"),
    pytest.param(["check", "--haproxy", "h.cfg", "--engine", "e"], id="engine-with-haproxy"),
])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--bogus"])
    assert info.value.code == 2


def test_missing_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.conf")]) == 1
    assert "Could not open configuration file" in capsys.readouterr().out


def _haproxy(tmp_path, spoe_file, frontend_extra="", agents_mode="tcp"):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""\
defaults
    mode http
frontend www
    bind :8080
    filter spoe engine iprep config {spoe_file.name}
{frontend_extra}
backend agents
    mode {agents_mode}
    server a1 127.0.0.1:12345 check
    server a2 unix@/run/spoa.sock
""")
    return cfg


def test_haproxy_cfg_valid(tmp_path, spoe_file, capsys):
    cfg = _haproxy(tmp_path, spoe_file, "    http-request send-spoe-group iprep check")
    assert main(["check", "--haproxy", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "(filter of proxy 'www')" in out
    assert "backend    agents: a1=127.0.0.1:12345, a2=unix@/run/spoa.sock (balance roundrobin)" in out


@pytest.mark.parametrize(("extra", "mode", "expected"), [
    pytest.param("", "http", "[{spoe}:2] Proxy www : backend 'agents' used by SPOE agent 'iprep-agent' declared at {spoe}:2 does not support HTTP mode.", id="http-backend"),
    pytest.param("    http-request send-spoe-group other check", "tcp", "[{cfg}:6] Proxy 'www': unable to find SPOE engine 'other' used by the send-spoe-group 'check'.", id="no-engine"),
    pytest.param("    http-request send-spoe-group iprep nope", "tcp", "[{cfg}:6] Proxy 'www': unable to find SPOE group 'nope' into SPOE engine 'iprep' configuration.", id="no-group"),
    pytest.param("    tcp-request content send-spoe-group iprep", "tcp", "expects 2 arguments: <engine-id> <group-id>", id="one-arg"),
    pytest.param("    http-request send-spoe-group iprep check", "tcp", "[{cfg}:6] Invalid SPOE message 'status' used by SPOE group 'check' at {spoe}:19: some args extract information from 'frontend http-response body rule'", id="unavailable"),
    pytest.param("    tcp-request connection send-spoe-group iprep check", "tcp", "'send-spoe-group' is not available in 'tcp-request connection'", id="tcp-connection"),
])
def test_haproxy_cfg_errors(tmp_path, spoe_file, capsys, extra, mode, expected):
    spoe_file.write_text(SPOE.replace("messages by-host", "messages by-host status"))
    cfg = _haproxy(tmp_path, spoe_file, extra, mode)
    assert main(["check", "--haproxy", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert expected.format(spoe=spoe_file, cfg=cfg) in out, out


def test_haproxy_cfg_with_broken_spoe_file(tmp_path, spoe_file, capsys):
    spoe_file.write_text(SPOE.replace("use-backend agents", "use-backend"))
    cfg = _haproxy(tmp_path, spoe_file)
    assert main(["check", "--haproxy", str(cfg)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"[{spoe_file}:10] 'use-backend' expects a backend name.",
                   f"[{cfg}:5] 'filter' : 'Error(s) found in configuration file {spoe_file.name}'",
                   f"Error(s) found in configuration file : {cfg}",
                   "checked 2 files: 1 error, 0 warnings"]


def test_haproxy_cfg_verdict_comes_last_and_alone(tmp_path, spoe_file, capsys):
    # a valid SPOE file and a bad send-spoe-group rule: no "valid" anywhere, the error verdict
    # last (a summary saying "valid" before the rule error read as both verdicts)
    cfg = _haproxy(tmp_path, spoe_file, "    http-request send-spoe-group iprep nope")
    assert main(["check", "--haproxy", str(cfg)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert not any("valid" in line for line in out), out
    assert out == [f"[{cfg}:6] Proxy 'www': unable to find SPOE group 'nope' into SPOE engine "
                   "'iprep' configuration.", f"Error(s) found in configuration file : {cfg}",
                   "checked 2 files: 1 error, 0 warnings"]


def test_haproxy_cfg_valid_summaries_then_verdict(tmp_path, spoe_file, capsys):
    cfg = _haproxy(tmp_path, spoe_file, "    http-request send-spoe-group iprep check")
    assert main(["check", "--haproxy", str(cfg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{spoe_file}: valid, engine [iprep] (filter of proxy 'www')"
    assert out[-2:] == [f"{cfg}: valid (1 SPOE filter(s))", "checked 2 files: 0 errors, 0 warnings"]


def test_error_naming_another_line_gets_a_note(tmp_path, capsys):
    path = tmp_path / "undefined.conf"
    path.write_text(SPOE.replace("    messages get-ip-reputation\n", "    messages get-ip-reputation nope\n"))
    assert main(["check", str(path), "--engine", "iprep"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"[{path}:3] SPOE agent 'iprep-agent' try to use undefined SPOE message 'nope' at {path}:2",
        f"[{path}:2] note: declared here",
        "checked 1 file: 1 error, 0 warnings"]


@pytest.mark.parametrize(("criterion", "lines", "bad_line", "message"), [
    pytest.param("src", "10.0.0.1\nnot-an-ip\n", 2,
                 "'not-an-ip' is not a valid IPv4 or IPv6 address", id="ip"),
    pytest.param("req.len", "# sizes\n\n  12\nabc\n", 4, "'abc' is not a number", id="int-comments"),
])
def test_bad_line_of_a_pattern_file_is_located(tmp_path, capsys, criterion, lines, bad_line,
                                               message):
    # haproxy -c: "error detected while parsing ACL 'wl' : 'not-an-ip' is not a valid IPv4 or
    # IPv6 address at line 2 of file '/path/wl2.lst'." (raw line numbers, comments counted)
    patterns = tmp_path / "wl2.lst"
    patterns.write_text(lines)
    path = tmp_path / "acl.conf"
    path.write_text(SPOE.replace("    args ip=src\n",
                                 f"    acl wl {criterion} -f {patterns}\n    args ip=src\n", 1))
    assert main(["check", str(path), "--engine", "iprep"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"[{path}:13] error detected while parsing ACL 'wl' : {message} "
                      f"at line {bad_line} of file '{patterns}'.")


def test_warnings_are_counted_in_the_closing_line(tmp_path, capsys):
    path = tmp_path / "warn.conf"
    path.write_text(SPOE.replace("    timeout idle 2m\n", ""))
    assert main(["check", str(path), "--engine", "iprep"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "checked 1 file: 0 errors, 1 warning"


def test_a_binary_file_is_one_error_with_the_closing_line(tmp_path, capsys):
    # an executable given by mistake: one error, not one per "line" of its bytes
    path = tmp_path / "binary.conf"
    path.write_bytes(bytes(range(256)) * 64 + b"\n[iprep]\n" + bytes(range(256)) * 64)
    assert main(["check", str(path), "--engine", "iprep"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"[{path}] not a configuration file: ")
    assert "(a binary file?)" in lines[0]
    assert lines[1] == "checked 1 file: 1 error, 0 warnings"
    # the same as the haproxy.cfg
    assert main(["check", "--haproxy", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "checked 1 file: 1 error, 0 warnings"


def test_a_stray_nul_in_a_text_file_is_an_error_of_its_line(tmp_path, capsys):
    # not a binary: haproxy -c names the line ("Stray NUL character"), so does the check
    path = tmp_path / "nul.conf"
    path.write_text(SPOE.replace("use-backend agents", "use-backend agents\0x"))
    assert main(["check", str(path), "--engine", "iprep"]) == 1
    out = capsys.readouterr().out
    assert "not a configuration file" not in out
    assert f"[{path}:" in out and "NUL" in out
