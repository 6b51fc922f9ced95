"""Config-time checks of sample expressions and ACLs against ``haproxy -c`` (SPOE.txt §2.3
``args``; docs/explanation/haproxy-behaviour.md §6): where a fetch may run (``unavailable_at``, per event
and proxy kind), parse errors in HAProxy's words, and a bad line of an ACL pattern file
located as HAProxy locates it.
"""

from __future__ import annotations

import pytest

from spoe_sync.rules import parse_sample
from tests.kit import free_port

from .cfgkit import agents_backend, head

pytestmark = pytest.mark.timeout(60)

def check_cfg(kind: str, agent_port: int) -> str:
    """A frontend, listen or backend proxy carrying the SPOE filter (haproxy -c only)."""
    filt = "    filter spoe engine conf config spoe.conf\n"
    agents = agents_backend(agent_port)
    if kind == "listen":
        return head() + "listen px\n    bind 127.0.0.1:1\n" + filt + \
            "    server s 127.0.0.1:2\n" + agents
    if kind == "frontend":
        return head() + "frontend px\n    bind 127.0.0.1:1\n" + filt + \
            "    default_backend be\nbackend be\n    server s 127.0.0.1:2\n" + agents
    return head() + "frontend fe\n    bind 127.0.0.1:1\n    default_backend px\nbackend px\n" + \
        filt + "    server s 127.0.0.1:2\n" + agents


def one_message_conf(expr: str, event: str) -> str:
    return ("[conf]\nspoe-agent conf\n    messages m\n    timeout hello 2s\n"
            "    timeout idle 30s\n    timeout processing 2s\n    use-backend agents\n"
            f"spoe-message m\n    args x={expr}\n    event {event}\n")


AVAILABILITY = [
    ("req.hdr(host)", "on-client-session", "frontend"),
    ("req.hdr(host)", "on-frontend-http-request", "frontend"),
    ("status", "on-frontend-http-request", "frontend"),
    ("status", "on-http-response", "frontend"),
    ("status", "on-http-response", "listen"),
    ("ssl_fc", "on-client-session", "listen"),
    ("ssl_fc", "on-frontend-tcp-request", "listen"),
    ("unique-id", "on-client-session", "frontend"),
    ("res.hdr(x)", "on-backend-http-request", "backend"),
    ("res.hdr(x)", "on-backend-http-request", "listen"),
    ("req.payload(0,1)", "on-tcp-response", "listen"),
    ("req.payload(0,1)", "on-tcp-response", "frontend"),
    ("req.payload(0,1)", "on-tcp-response", "backend"),
    ("res.payload(0,1)", "on-frontend-tcp-request", "frontend"),
    ("status", "on-server-session", "listen"),
    ("req.hdr(x)", "on-server-session", "listen"),
    ("req.body", "on-backend-tcp-request", "backend"),
    ("res.ver", "on-http-response", "backend"),
    ("method", "on-client-session", "listen"),
]


@pytest.mark.parametrize(("expr", "event", "kind"),
                         [pytest.param(*c, id="-".join(c)) for c in AVAILABILITY])
def test_unavailable_at_matches_haproxy(expr, event, kind, haproxy_bin, tmp_path):
    from .harness import haproxy_check

    why = parse_sample(expr).unavailable_at(event, kind)
    code, output = haproxy_check(haproxy_bin, check_cfg(kind, free_port()), tmp_path,
                                 files={"spoe.conf": one_message_conf(expr, event)})
    if why is None:
        assert code == 0 and "none of which is available" not in output, output
    else:
        assert code != 0 and f"spoe.conf:8: {why}" in output, output


BAD_EXPRESSIONS = [
    "foo", "src,foo", "req.hdr(host", "req.hdr(host)x", "req.payload", "req.payload(a,1)",
    "req.payload(1)", "src(1)", "req.hdr(host,1,2)", "req.hdr(host,x)", "int(abc)", "int",
    "ipv4(1.2.3)", "ipv6(zz)", "bool(maybe)", "bin(abc)", "var(foo)", "var()",
    "src,lower(1)", "src,regsub(a)", "src,json(foo)", "str(a,b)", ",lower",
    "str(a),field(0,_)", "str(a),word(0,_)", "str(a),field(1,)",
]


@pytest.mark.parametrize("expr", [pytest.param(e, id=e) for e in BAD_EXPRESSIONS])
def test_parse_errors_match_haproxy(expr, haproxy_bin, tmp_path):
    from spoe_sync.errors import ExpressionError

    from .harness import haproxy_check

    with pytest.raises(ExpressionError) as err:
        parse_sample(expr)
    code, output = haproxy_check(haproxy_bin, check_cfg("frontend", free_port()), tmp_path,
                                 files={"spoe.conf": one_message_conf(expr,
                                                                      "on-frontend-http-request")})
    assert code != 0
    assert f"'args': {err.value.message}." in output, output


# (criterion, pattern file text with one bad line)
BAD_PATTERN_FILES = [
    pytest.param("src", "10.0.0.1\nnot-an-ip\n", id="ip-line-2"),
    pytest.param("req.len", "# sizes\n\n  12\nabc\n", id="int-after-comment-and-blank"),
    pytest.param("src", "\n\n\n10.0.0.0/8\n  10.0.0.300\n", id="ip-after-blanks"),
]


@pytest.mark.parametrize(("criterion", "text"), BAD_PATTERN_FILES)
def test_bad_pattern_file_line_is_located_like_haproxy(criterion, text, haproxy_bin, tmp_path):
    # haproxy -c: "error detected while parsing ACL 'wl' : <reason> at line N of file 'F'."
    from spoe_sync.errors import ExpressionError
    from spoe_sync.rules import AclRegistry

    from .harness import haproxy_check

    cfg = ("defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n"
           "    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:1\n"
           f"    acl wl {criterion} -f wl2.lst\n    http-request deny if wl\n")
    code, output = haproxy_check(haproxy_bin, cfg, tmp_path, files={"wl2.lst": text})
    assert code != 0
    theirs = output.split("error detected while parsing ACL 'wl' : ", 1)[1].splitlines()[0]
    with pytest.raises(ExpressionError) as err:
        AclRegistry().add("wl", [criterion, "-f", "wl2.lst"], base_dir=str(tmp_path))
    assert str(err.value) == theirs
