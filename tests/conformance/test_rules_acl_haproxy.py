"""ACL conditions against HAProxy 2.6 (configuration.txt §7.1-7.4; SPOE.txt §2.3 ``event ...
if <cond>``): for each raw HTTP request, ``http-request set-var(...) if <cond>`` in HAProxy and
``Condition.evaluate`` in spoe_sync must decide alike, for named ACLs (several lines ORed),
pattern files (``-f``, HAProxy's comment and blank rules), predefined ACLs, every matching
method, flags, operators and condition forms, on typed variables too.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.rules import AclRegistry, EvalContext, parse_condition
from tests.kit import free_port

from . import cfgkit
from .harness import run_haproxy
from .rules_support import VARS, EvalServer, raw_exchange, raw_requests

pytestmark = pytest.mark.timeout(60)

NAMED_ACLS = [
    "api path_beg /api /some",
    "api path_end .json",
    "localnet src -f ips.lst",
    "is_host hdr(host) -i golden.example",
    "ua_curl req.fhdr(user-agent) -m sub curl",
    "host_file hdr(host) -i -f hosts.lst",
]

PATTERN_FILES = {
    "ips.lst": "# comment in column 0\n  10.0.0.0/8\n \t127.0.0.1\n#127.0.0.2\n\n::2\n",
    # leading blanks are stripped, trailing ones kept: "h " never equals "h"
    "hosts.lst": "  golden.example\n#h\nabs.example:8080\nh \n",
}

CONDITIONS = [
    "if api", "if !api", "unless api", "if TRUE", "if FALSE", "if HTTP", "if HTTP_1.0",
    "if HTTP_1.1", "if HTTP_2.0", "if METH_GET", "if METH_POST", "if METH_DELETE",
    "if HTTP_URL_SLASH", "if HTTP_URL_ABS", "if HTTP_URL_STAR", "if HTTP_CONTENT",
    "if LOCALHOST", "if localnet", "if ! localnet", "if { src -f ips.lst }", "if host_file",
    "if is_host ua_curl", "if is_host || api", "if api or is_host", "if !is_host !api",
    "if { hdr_beg(host) -i golden. }", "if { hdr(x-list) -m str b }",
    "if { hdr(x-list) -m str c,d }", "if { req.hdr(x-list,1) -m str a }",
    "if { req.fhdr(x-list) -m beg a }", "if { hdr_cnt(x-list) gt 1 }",
    "if { req.cook(sid) -m found }", "if { req.cook(sid) -m str abc }",
    "if { req.cook(empty) -m found }", "if { req.cook(empty) -m len 0 }",
    "if { var(txn.s) -m str deny }", "if { var(txn.s) -m str }", "if { var(txn.i) -m int gt 40 }",
    "if { var(txn.i) -m int 100:399 }", "if { var(txn.i) -m bool }",
    "if { var(txn.nope) -m found }", "if !{ var(txn.nope) -m found }",
    "if { var(txn.s) -m bool }", "if { path,url_dec -m reg -i ^/API }", "if { path -m dir some }",
    "if { url -m dom abs }", "if { query -m found }", "if { query -m len 0 }",
    "if { method GET HEAD }", "if { method PURGE }", "if { req.ver 1.1 }",
    "if { url_param(x) -m int eq 1 }", "if { req.body_size gt 5 }",
    "if { req.body -m sub world }", "if { src 127.0.0.0/8 }", "if { src ::ffff:127.0.0.1 }",
    "if { src 10.0.0.0/8 }", "if { dst_port gt 0 }", "if { req.hdrs -m sub x-list }",
    "if { req.hdr(host),lower -m str golden.example }", "if { path_len gt 3 }",
    "if { url_sub ? }", "if { path_reg ^/[a-z]+$ }", "if { hdr_dom(host) -i example }",
    "if { hdr_end(host) .example }", "if { ssl_fc }", "if { always_true } { always_false }",
    "if { src -m ip 127.0.0.1 } || { always_false }", "if { req.hdr(x-empty) -m found }",
    "if { req.hdr(x-empty) -m len 0 }", "if { req.hdr(connection) -m found }",
    "if { req.hdr(x-latin) -m reg caf. }", "if { req.hdr(x-long) -m len ge 300 }",
    "if { url_beg http:// } { hdr(host) -m end :8080 }", "if { path -m end -i /P }",
    "if { req.cook_cnt(sid) eq 2 }", "if { hdr_val(content-length) 11 }",
    # matching methods on typed variables (set in both engines, see ACL_VARS)
    "if { var(txn.e) -m found }", "if { var(txn.e) -m str }", "if { var(txn.e) -m bool }",
    "if { var(txn.e) -m int 0 }", "if { var(txn.one) -m bool }", "if { var(txn.num) -m int 7 }",
    "if { var(txn.s) -m int 0 }", "if { var(txn.i) -m str 42 }", "if { var(txn.i) -m len 2 }",
    "if { var(txn.t) -m int 1 }", "if { var(txn.t) -m str 1 }", "if { var(txn.f) -m bool }",
    "if { var(txn.neg) -m int lt 0 }", "if { var(txn.i) -m int lt 3 eq 42 }",
    "if { var(txn.i) -m int :4 }", "if { var(txn.i) -m int 43: }",
    "if { var(txn.S) -m beg ab }", "if { var(txn.S) -m beg -i ab }",
    "if { var(txn.S) -i -m end BC }", "if { var(txn.S) -m sub -i b }",
    "if { var(txn.ip4) -m ip 10.0.0.0/8 }", "if { var(txn.ip4) -m ip 10.0.0.0/255.255.255.0 }",
    "if { var(txn.ip4) -m ip 10.5 }", "if { var(txn.ip4) -m ip ::ffff:10.0.0.0/104 }",
    "if { var(txn.ip6m) -m ip 10.0.0.0/8 }", "if { var(txn.ip6) -m ip 10.0.0.0/8 }",
    "if { var(txn.ip6) -m ip 2001:db8::/32 }", "if { var(txn.ipstr) -m ip 10.0.0.5 }",
    "if { var(txn.ip4) -m str 10.0.0.5 }", "if { var(txn.bin) -m bin 48656c6c6f }",
    "if { var(txn.bin) -m bin 48656C }", "if { var(txn.bin) -m sub ell }",
    "if { var(txn.url) -m dom .www1 }", "if { var(txn.url) -m dom 80 }",
    "if { var(txn.url) -m dom eu }", "if { var(txn.dir) -m dir png }",
    "if { var(txn.dir) -m dir 32x32 }", "if { var(txn.dash) -m str -- -i }",
    "if { var(txn.s) -m reg -i ^DE }", "if { var(txn.i) -m int ge 42 le 1 }",
    "if { method get }", "if { method -i get }", "if { method -i purge }", "if { method purge }",
    "if { method -m str -i get }", "if { method -m beg GE }",
    # PCRE that Python's re reads differently unless translated (rules/pcre.py)
    "if { path -m reg ^/[[:alpha:]]+$ }", "if { path -m reg [[:digit:]] }",
    "if { path -m reg ^/(?<first>[a-z])[[:alnum:]_]* }", "if { path -m reg \\Q/a.\\E }",
    "if { path -m reg [[:punct:]][[:upper:]] }", "if { var(txn.url) -m reg [[:xdigit:]]{2}x }",
    "if { path -m reg [a-z]\\z }", "if { path -m reg ^/s{,3} }", "if { path -m reg ^/\\h }",
    "if { var(txn.url) -m reg (?<p>[0-9])\\k<p> }",
]

# Variables both engines set before the conditions run.
ACL_VARS = {
    "txn.e": ("str()", ""), "txn.one": ("str(1)", "1"), "txn.num": ("str(7x)", "7x"),
    "txn.t": ("bool(1)", True), "txn.f": ("bool(0)", False), "txn.neg": ("int(-5)", -5),
    "txn.S": ("str(ABC)", "ABC"), "txn.ip4": ("ipv4(10.0.0.5)", IPv4Address("10.0.0.5")),
    "txn.ip6m": ("ipv6(::ffff:10.0.0.5)", IPv6Address("::ffff:10.0.0.5")),
    "txn.ip6": ("ipv6(2001:db8::5)", IPv6Address("2001:db8::5")),
    "txn.ipstr": ("str(10.0.0.5)", "10.0.0.5"), "txn.bin": ("bin(48656c6c6f)", b"Hello"),
    "txn.url": ("str(http://www1.dc-eu.example.com:80/blah)",
                "http://www1.dc-eu.example.com:80/blah"),
    "txn.dir": ("str(/images/png/logo/32x32.png)", "/images/png/logo/32x32.png"),
    "txn.dash": ("str(-i)", "-i"),
}


def acl_haproxy_cfg(http_port: int) -> str:
    fmt = ",".join(f"%[var(txn.r{i})]" for i in range(len(CONDITIONS)))
    return cfgkit.haproxy_cfg(
        http_port, "option http-buffer-request",
        *(f"acl {line}" for line in NAMED_ACLS),
        "http-request set-var(txn.s) str(deny)",
        "http-request set-var(txn.i) int(42)",
        *(f"http-request set-var({name}) {expr}" for name, (expr, _) in ACL_VARS.items()),
        *(f"http-request set-var(txn.r{i}) int(1) {cond}" for i, cond in enumerate(CONDITIONS)),
        f'http-request return status 200 content-type text/plain lf-string "R={fmt};ok"')


@pytest.fixture(scope="module")
def acl_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rules-acl")
    for name, text in PATTERN_FILES.items():
        (workdir / name).write_text(text)
    return workdir


@pytest.fixture(scope="module")
def haproxy_decisions(haproxy_bin, acl_workdir):
    port = free_port()
    out: dict[str, list[bool]] = {}
    with run_haproxy(haproxy_bin, acl_haproxy_cfg(port), acl_workdir, ready_port=port):
        for name, raw in raw_requests():
            response = raw_exchange(port, raw)
            if raw.startswith(b"HEAD "):
                continue  # no body to read the decisions from
            body = response.split(b"\r\n\r\n", 1)[1]
            flags = body.split(b"R=", 1)[1].split(b";", 1)[0].split(b",")
            out[name] = [f == b"1" for f in flags]
    return out


@pytest.fixture(scope="module")
def spoe_sync_decisions(acl_workdir):
    acls = AclRegistry()
    for line in NAMED_ACLS:
        name, *words = line.split()
        acls.add(name, words, base_dir=str(acl_workdir))
    conditions = [parse_condition(c.split(), acls, base_dir=str(acl_workdir)) for c in CONDITIONS]

    variables = {**VARS, **{name: value for name, (_, value) in ACL_VARS.items()}}

    def evaluate(samples):
        ctx = EvalContext(samples, variables)
        return [c.evaluate(ctx) for c in conditions]

    with EvalServer(evaluate) as server:
        return {name: server.request(raw) for name, raw in raw_requests()}


@pytest.mark.parametrize("request_name", [pytest.param(n, id=n) for n, raw in raw_requests()
                                          if not raw.startswith(b"HEAD ")])
def test_conditions_decide_like_haproxy(request_name, haproxy_decisions, spoe_sync_decisions):
    theirs = dict(zip(CONDITIONS, haproxy_decisions[request_name]))
    ours = dict(zip(CONDITIONS, spoe_sync_decisions[request_name]))
    assert len(theirs) == len(CONDITIONS)
    assert ours == theirs
