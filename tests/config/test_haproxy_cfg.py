"""Reusing an existing haproxy.cfg (docs/howto/haproxy-cfg.md): backends with their servers, defaults,
``filter spoe`` lines, and rule lines kept for later layers."""

from __future__ import annotations

import pytest

from spoe_sync.config import Server, load_haproxy_cfg, parse_haproxy_cfg
from spoe_sync.errors import ConfigError

CFG = """\
global
    nbthread 1
    tune.bufsize 65536
defaults
    mode http
    timeout connect 5s
    timeout server 30s
    default-server inter 3s
frontend www
    bind :80
    filter spoe engine ip-reputation config spoe-ip-reputation.conf
    filter compression
    acl api path_beg /api
    tcp-request content reject if { var(sess.iprep.ip_score) -m int lt 20 }
    http-request send-spoe-group ip-reputation grp1 if { path_beg /api }
    default_backend http-servers
backend http-servers
    server http 10.0.0.5:80
backend iprep-servers
    mode tcp
    balance leastconn
    option spop-check
    timeout connect 1s
    server iprep1 10.0.0.1:12345 check inter 500ms rise 3 fall 4 weight 10 maxconn 8
    server iprep2 ipv6@[::1]:12345 ssl verify none disabled
    server iprep3 unix@/run/spoa.sock
listen both
    bind :81
    filter spoe config "other.conf"
"""


def test_backends_and_servers():
    cfg = parse_haproxy_cfg(CFG, filename="/etc/haproxy/haproxy.cfg")
    be = cfg.backends["iprep-servers"]
    assert (be.mode, be.balance, be.spop_check, be.timeout_connect, be.timeout_server) == (
        "tcp", "leastconn", True, 1.0, 30.0)
    assert (be.filename, be.lineno) == ("/etc/haproxy/haproxy.cfg", 19)
    assert cfg.bufsize == 65536 and parse_haproxy_cfg("global\n").bufsize == 16384
    s1, s2, s3 = be.servers
    assert s1 == Server("10.0.0.1:12345", name="iprep1", weight=10, maxconn=8, check=True,
                        inter=0.5, rise=3, fall=4)
    assert (s2.family, s2.host, s2.disabled, s2.inter) == ("ipv6", "::1", True, 3.0)
    assert (s3.family, s3.path) == ("unix", "/run/spoa.sock")
    assert cfg.backends["http-servers"].mode == "http"
    assert set(cfg.backends) == {"http-servers", "iprep-servers", "both"}


def test_filters_and_rules():
    cfg = parse_haproxy_cfg(CFG, filename="/etc/haproxy/haproxy.cfg")
    f1, f2 = cfg.filters
    assert (f1.proxy, f1.proxy_kind, f1.engine, f1.config, f1.lineno) == (
        "www", "frontend", "ip-reputation", "spoe-ip-reputation.conf", 11)
    assert f1.path == "/etc/haproxy/spoe-ip-reputation.conf"
    assert (f2.proxy_kind, f2.engine, f2.config) == ("listen", None, "other.conf")
    rules = cfg.proxies["www"].rules
    assert [(r.lineno, r.words[:3]) for r in rules] == [
        (14, ("tcp-request", "content", "reject")),
        (15, ("http-request", "send-spoe-group", "ip-reputation"))]
    assert [(a.lineno, a.words) for a in cfg.proxies["www"].acls] == [(13, ("acl", "api", "path_beg", "/api"))]
    assert rules[1].words[-5:] == ("if", "{", "path_beg", "/api", "}")


@pytest.mark.parametrize(("line", "message"), [
    pytest.param("filter spoe engine e1", "'spoe' : missing config file"),
    pytest.param("filter spoe config", "'spoe' : 'config' option without value"),
    pytest.param("filter spoe config a.conf foo", "unknown keyword 'foo'"),
    pytest.param("server s1", "'server' expects <name> and <addr>[:<port>] as arguments."),
    pytest.param("server s1 10.0.0.1", "missing port"),
    pytest.param("server s1 10.0.0.1:1 weight x", "'weight' expects an integer argument"),
    pytest.param("balance fastest", "unknown balance algorithm 'fastest'"),
    pytest.param("args 'x", "unmatched quote"),
])
def test_errors(line, message):
    with pytest.raises(ConfigError) as info:
        parse_haproxy_cfg(f"backend b\n    mode tcp\n    {line}\n")
    assert message in info.value.message and info.value.lineno == 3


def test_load_from_file(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(CFG)
    cfg = load_haproxy_cfg(path)
    assert cfg.filename == str(path) and cfg.filters[0].path == str(tmp_path / "spoe-ip-reputation.conf")


def test_load_filters(tmp_path):
    (tmp_path / "spoe.conf").write_text(
        "[e1]\nspoe-agent a\n    use-backend agents\n    max-frame-size 30000\n    messages m\n"
        "    timeout hello 1s\n    timeout idle 1s\n    timeout processing 1s\n"
        "spoe-message m\n    args path\n    event on-backend-http-request\n")
    (tmp_path / "haproxy.cfg").write_text(
        "global\n    tune.bufsize 32768\nlisten li\n    filter spoe engine e1 config spoe.conf\n"
        "backend agents\n    mode tcp\n    server a 127.0.0.1:1\n")
    ((flt, config),) = load_haproxy_cfg(tmp_path / "haproxy.cfg").load_filters()
    assert (flt.proxy, config.engine_id, config.agent.max_frame_size) == ("li", "e1", 30000)
    assert list(config.events) == ["on-frontend-http-request"]  # a listen proxy is a frontend too


# ---------------------------------------------------------------- one ACL registry builder

def test_acl_builder_reads_every_form_and_ors_one_name():
    from spoe_sync.config.haproxy_cfg import RuleLine, build_acl_registry

    registry = build_acl_registry(["acl a path /x", "a path /y",
                                   RuleLine(("acl", "b", "path", "/z"), 4),
                                   ("c", ["path", "/w"], 9)])
    assert [registry.get(n) is not None for n in ("a", "b", "c")] == [True, True, True]
    assert len(registry.get("a")._exprs) == 2  # two lines of one name are ORed


@pytest.mark.parametrize("line,message", [
    ("bad 'unterminated", "acl 'bad 'unterminated' : "),
    ("lonely", "acl 'lonely' : expects an ACL name and a criterion"),
    ("bad hdr(x) -m nosuch a", "acl 'bad' : "),
    ("b@d path /x", "acl 'b@d' : invalid character '@'"),
])
def test_every_user_of_acls_refuses_a_bad_line_with_one_wording(line, message):
    # before: the middleware let a lexer error or a one-word line escape as a crash, the proxy
    # let non-expression errors escape, and spoe-sync check had its own wording
    from spoe_sync.config.haproxy_cfg import build_acl_registry
    from spoe_sync.errors import ConfigError
    from spoe_sync.proxy import build_acls
    from spoe_sync.wsgi import SpoeMiddleware

    for build in (build_acl_registry, build_acls,
                  lambda lines: SpoeMiddleware(lambda e, s: [], acls=lines)):
        with pytest.raises(ConfigError) as err:
            build([line])
        assert message in str(err.value), (build, str(err.value))


def test_the_acl_builder_can_collect_every_error():
    from spoe_sync.config.haproxy_cfg import RuleLine, build_acl_registry

    errors: list = []
    registry = build_acl_registry([RuleLine(("acl", "x"), 3), RuleLine(("acl", "ok", "path", "/"), 4),
                                   RuleLine(("acl", "y", "nosuch_fetch"), 5)],
                                  filename="h.cfg", errors=errors)
    assert [(e.filename, e.lineno) for e in errors] == [("h.cfg", 3), ("h.cfg", 5)]
    assert registry.get("ok") is not None
