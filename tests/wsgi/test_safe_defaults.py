"""What used to turn a check off without anyone knowing: rules given as one string, rules
that repeat their keyword, a stats path that can never match or that the rules did not
protect, a ``logger.enable("spoe_sync")`` undone by the import, and denies that left no trace
in the logs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from loguru import logger

from spoe_sync.errors import ConfigError

from .support import CONF, echo_app, get, serve


def test_a_single_string_is_one_rule(make_mw):
    # before: the string was iterated, one (bad) rule per character
    mw = make_mw(http_request="deny deny_status 403 if { req.hdr(x-action) -m str deny }",
                 acls="is_ok req.hdr(x-action) -m str ok")
    assert len(mw.http_request) == 1
    with serve(mw) as port:
        assert get(port, "/", {"x-action": "deny"}).status == 403
        assert get(port, "/").status == 200


@pytest.mark.parametrize("param,line,hint", [
    ("http_request", "http-request deny", "drop the leading 'http-request' keyword"),
    ("http_response", "http-response set-header x 1", "drop the leading 'http-response'"),
    ("http_request", "http-response deny", "belongs in http_response"),
])
def test_a_repeated_rule_keyword_is_refused(make_mw, param, line, hint):
    with pytest.raises(ConfigError, match=hint) as err:
        make_mw(**{param: ["set-var(txn.a) int(1)", line]})
    assert f"{param}[1]" in str(err.value)


@pytest.mark.parametrize("path", ["spoe-stats", "", 7])
def test_a_stats_path_that_can_never_match_is_refused(make_mw, path):
    with pytest.raises(ConfigError, match="stats_path must be a path starting with '/'"):
        make_mw(stats_path=path)


def test_the_rules_protect_the_stats_endpoint(make_mw):
    # before: the endpoint was answered before the rules ran, deny or not
    mw = make_mw(stats_path="/spoe-stats", http_request=[
        "deny deny_status 403 if { path /spoe-stats } !{ req.hdr(x-admin) -m str yes }"])
    with serve(mw) as port:
        refused = get(port, "/spoe-stats")
        allowed = get(port, "/spoe-stats", {"x-admin": "yes"})
    assert refused.status == 403 and b"spoe_processed_total" not in refused.body
    assert allowed.status == 200 and b"spoe_processed_total" in allowed.body


def test_stats_are_served_at_the_path_a_rule_rewrote_to(make_mw):
    mw = make_mw(stats_path="/spoe-stats", http_request=["set-path /spoe-stats if { path /m }"])
    with serve(mw) as port:
        assert b"spoe_processed_total" in get(port, "/m").body


def test_each_deny_is_logged_with_the_rule_that_fired(make_mw, tmp_path):
    lines: list[str] = []
    logger.enable("spoe_sync")
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        mw = make_mw(http_request=["set-var(txn.a) int(1)",
                                   "deny deny_status 403 if { req.hdr(x-action) -m str deny }",
                                   "redirect location /elsewhere if { path /r }",
                                   "return status 204 if { path /ret }"])
        with serve(mw) as port:
            assert get(port, "/", {"x-action": "deny"}).status == 403
            assert get(port, "/r").status == 302
            assert get(port, "/ret").status == 204
            assert get(port, "/").status == 200
    finally:
        logger.remove(sink)
        logger.disable("spoe_sync")
    fired = [line for line in lines if "rule http_request[" in line]
    assert len(fired) == 3, lines
    assert "http_request[1] 'deny deny_status 403 if" in fired[0] and "answered 403" in fired[0]
    assert "http_request[2]" in fired[1] and "redirected (302)" in fired[1]
    assert "http_request[3]" in fired[2] and "answered 204" in fired[2]


def test_a_haproxy_cfg_rule_is_logged_with_its_file_and_line(agent, tmp_path):
    from spoe_sync.wsgi import SpoeMiddleware

    (tmp_path / "spoe.conf").write_text(CONF)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        frontend www
            filter spoe engine test config spoe.conf
            http-request deny if {{ req.hdr(x-action) -m str deny }}
        backend agents
            server a1 {agent.address}
        """))
    lines: list[str] = []
    logger.enable("spoe_sync")
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    mw = SpoeMiddleware.from_haproxy_cfg(echo_app, cfg, "www")
    try:
        with serve(mw) as port:
            assert get(port, "/", {"x-action": "deny"}).status == 403
    finally:
        mw.close(timeout=1)
        logger.remove(sink)
        logger.disable("spoe_sync")
    assert any(f"[{cfg}:3] 'http-request deny if" in line and "answered 403" in line
               for line in lines), lines


def test_enable_before_import_is_not_undone_by_the_import():
    code = textwrap.dedent("""\
        import sys
        from loguru import logger
        logger.remove()
        logger.add(sys.stdout, format="{name}:{message}", level="DEBUG")
        logger.enable("spoe_sync")
        import spoe_sync.engine.log as log
        import spoe_sync.wsgi
        log.debug("visible")
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert "visible" in out.stdout, (out.stdout, out.stderr)


def test_the_library_stays_quiet_by_default():
    code = textwrap.dedent("""\
        import sys
        from loguru import logger
        logger.remove()
        logger.add(sys.stdout, format="{message}", level="DEBUG")
        import spoe_sync.engine.log as log
        log.debug("hidden")
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert "hidden" not in out.stdout
