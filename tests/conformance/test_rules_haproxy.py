"""Sample expressions and ACL conditions against HAProxy 2.6 (SPOE.txt §2.3 ``args``,
configuration.txt §7; agent-ecosystem.md §2-3: types, NULL vs empty, req.hdrs/req.hdrs_bin).

For one SPOE message with many args and a set of raw HTTP requests, HAProxy's NOTIFY (decoded by
spoe_sync.protocol.decode_frame) and spoe_sync's evaluation of the same expressions on the same
bytes, served by gevent.pywsgi, must agree on names, order, types and values (ports and ids
aside); the same for response args (``status``, ``res.*``) sent from ``http-response
send-spoe-group`` for raw server responses.  Then ACL conditions: ``http-request set-var(...) if
<cond>`` in HAProxy vs ``Condition.evaluate``; TCP samples from ``tcp-request content``
(``TCPSamples``, ports included).  Last, config-time checks: where a fetch may run
(``unavailable_at``) and parse errors, against ``haproxy -c``.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.protocol import Notify, data_type_of, decode_frame
from spoe_sync.rules import AclRegistry, EvalContext, parse_condition, parse_sample

from .harness import NOTIFY, free_port, run_haproxy
from .rules_support import EvalServer, raw_exchange, raw_requests

pytestmark = pytest.mark.timeout(60)

# (arg name, expression).  Ports differ between the two servers and are compared by type only.
ARGS: list[tuple[str, str]] = [
    ("ip", "src"), ("dst", "dst"), ("sport", "src_port"), ("dport", "dst_port"),
    ("path", "path"), ("pathq", "pathq"), ("query", "query"), ("url", "url"),
    ("method", "method"), ("ver", "req.ver"), ("host", "req.hdr(host)"), ("hdr", "hdr(Host)"),
    ("list_last", "req.hdr(x-list)"), ("list_first", "req.hdr(x-list,1)"),
    ("list_m2", "req.hdr(x-list,-2)"), ("list_3", "req.hdr(x-list,3)"),
    ("list_9", "req.hdr(x-list,9)"), ("fhdr", "req.fhdr(x-list)"),
    ("fhdr1", "req.fhdr(x-list,1)"), ("ua", "req.fhdr(user-agent)"),
    ("spaces", "req.fhdr(x-spaces)"), ("missing", "req.hdr(x-missing)"),
    ("hdr_cnt", "req.hdr_cnt(x-list)"), ("fhdr_cnt", "req.fhdr_cnt(x-list)"),
    ("hdr_names", "req.hdr_names"), ("cook", "req.cook(sid)"), ("cook_other", "req.cook(other)"),
    ("cook_empty", "req.cook(empty)"), ("cook_missing", "req.cook(nope)"),
    ("cook_cnt", "req.cook_cnt(sid)"), ("hdrs", "req.hdrs"), ("hdrs_bin", "req.hdrs_bin"),
    ("body", "req.body"), ("body_size", "req.body_size"), ("body_len", "req.body_len"),
    ("uid", "unique-id"), ("ssl", "ssl_fc"), ("t", "always_true"), ("f", "always_false"),
    ("http", "req.proto_http"), ("base", "base"), ("urlp", "url_param(x)"),
    ("urlp_missing", "url_param(nope)"),
    ("ip6", "ipv6(2001:db8::1)"), ("ip4", "ipv4(10.1.2.3)"), ("bin", "bin(deadbeef)"),
    ("str", "str(hello)"), ("empty_str", "str()"), ("str_noparen", "str"), ("neg", "int(-5)"), ("zero", "int(0)"),
    ("max", "int(9223372036854775807)"), ("min", "int(-9223372036854775808)"),
    ("b1", "bool(true)"), ("b0", "bool(0)"),
    ("var_s", "var(txn.s)"), ("var_i", "var(txn.i)"), ("var_unset", "var(txn.nope)"),
    ("var_default", "var(txn.nope,dflt)"),
    ("lower", "req.hdr(host),lower"), ("upper", "path,upper"), ("b64", "str(hello),base64"),
    ("hex", "bin(00ff10),hex"), ("length", "path,length"), ("json", "req.fhdr(x-list),json"),
    ("url_dec", "path,url_dec"), ("url_dec_q", "url,url_dec"),
    ("regsub", "path,regsub(/,_,g)"), ("regsub1", "path,regsub(/,_)"),
    ("field", "path,field(2,/)"), ("word", "path,word(1,/)"), ("bytes", "str(hello),bytes(1,3)"),
    ("add", "int(40),add(2)"), ("sub_var", "int(50),sub(txn.i)"), ("div0", "int(7),div(0)"),
    ("mod", "int(-7),mod(3)"), ("bool_c", "int(3),bool"), ("not_c", "int(3),not"),
    ("ipmask", "src,ipmask(24)"), ("src_str", "src,upper"), ("int_str", "int(12),lower"),
    ("sha1", "str(abc),sha1,hex"), ("crc32", "str(abc),crc32"), ("djb2", "str(abc),djb2"),
    ("ltrim", "str(xxaxx),ltrim(x)"), ("rtrim", "str(xxaxx),rtrim(x)"),
    ("hex2i", "str(ff),hex2i"), ("neg_c", "int(5),neg"), ("cpl", "int(5),cpl"),
    ("iif", "bool(1),iif(yes,no)"), ("concat", "str(a),concat(<,txn.s,>)"),
    ("doc_f1", "str(f1_f2_f3__f5),field(-2,_,3)"), ("doc_f2", "str(f1_f2_f3__f5),field(2,_,0)"),
    ("doc_w1", "str(f1_f2_f3__f5),word(-2,_,3)"), ("doc_w2", "str(f1_f2_f3__f5),word(3,_,2)"),
    ("doc_w3", "str(f1_f2_f3__f5),word(9,_)"), ("doc_f3", "str(a),field(-5,_)"),
    ("doc_w4", "str(a),word(-5,_)"), ("doc_w5", "str(__),word(1,_)"),
    ("urldec_bad", "str(%zz),url_dec"), ("urldec_form", "str(a+b),url_dec(1)"),
    ("urldec_plus_path", "str(a+b),url_dec"), ("urldec_q", "str(/a+b?c+d),url_dec"),
    ("regsub_i", "str(ABC),regsub(b,x,i)"), ("regsub_gi", "str(aBab),regsub(b,x,gi)"),
    ("ltrim_multi", "str(xyxa),ltrim(xy)"), ("b64_bin", "bin(00ff),base64"),
    ("b64dec_bad", "str(!!),b64dec"), ("hex_str", "str(Az),hex"), ("hex2i_neg", "str(-1f),hex2i"),
    ("hex2i_zz", "str(zz),hex2i"), ("hex2i_empty", "str(),hex2i"),
    ("hex2i_long", "str(ffffffffffffffffff),hex2i"),
    ("len_bin", "bin(0001),length"), ("ipmask_v6", "ipv6(2001:db8::1),ipmask(24,32)"),
    ("str_add", "str(12abc),add(1)"), ("empty_add", "str(),add(1)"),
    ("mul_ovf", "int(9223372036854775807),mul(2)"), ("add_ovf", "int(9223372036854775807),add(1)"),
    ("sub_ovf", "int(-9223372036854775808),sub(1)"), ("div_neg", "int(-7),div(2)"),
    ("neg_min", "int(-9223372036854775808),neg"), ("bool_str", "str(7),bool"),
    ("upper_bin", "bin(61ff),upper"), ("ipv4_str", "ipv4(1.2.3.4),upper"),
    ("lower_bool", "bool(1),lower"), ("src_hex", "src,hex"), ("int_hex", "int(10),hex"),
    ("bool_hex", "bool(1),hex"), ("ip6_hex", "ipv6(::1),hex"), ("neg_hex", "int(-2),hex"),
    ("int_b64", "int(1),base64"), ("ip_sha1", "src,sha1,hex"),
    ("crc32_av", "str(abc),crc32(1)"), ("djb2_av", "str(abc),djb2(1)"), ("sdbm_av", "str(abc),sdbm(1)"),
    ("wt6", "str(abc),wt6"), ("wt6_av", "str(abc),wt6(1)"), ("crc32c", "str(abc),crc32c"),
    ("crc32c_av", "str(abc),crc32c(1)"), ("wt6_path", "path,wt6"),
    ("digest", "str(abc),digest(sha256),hex"), ("digest_md5", "str(abc),digest(MD5),hex"),
    ("hmac", "str(abc),hmac(sha256,c2VjcmV0),hex"), ("htonl", "int(258),htonl,hex"),
    ("be2dec", "bin(01020304050607),be2dec(:,2)"), ("be2dec_t", "bin(01020304050607),be2dec(-,2,1)"),
    ("be2dec_ip", "bin(7f000001),be2dec(.,1)"), ("be2hex", "bin(01020304050607),be2hex"),
    ("be2hex_s", "bin(01020304050607),be2hex(:,2)"), ("be2hex_t", "bin(0102030405060708),be2hex(,3,1)"),
    ("host_only", "req.hdr(host),host_only"), ("port_only", "req.hdr(host),port_only"),
    ("host_only_v6", "str([::1]:80),host_only"), ("port_only_v6", "str([::1]:80),port_only"),
    ("utime", "int(1700000000),utime(%Y-%m-%dT%H:%M:%S)"),
    ("utime_off", "int(1700000000),utime(%H:%M,3600)"),
    ("ltime", "int(1700000000),ltime(%Y%m%d%H%M%S)"),
    ("http_date", "int(1700000000),http_date"), ("http_date_off", "int(0),http_date(86400)"),
    ("http_date_ms", "int(1700000000123),http_date(0,ms)"),
    ("http_date_us", "int(1700000000000042),http_date(0,us)"),
    ("http_date_ms2", "int(1700000000012),http_date(0,ms)"),
    ("field_neg", "path,field(-1,/)"), ("field_all", "path,field(2,/,0)"),
    ("word_neg", "path,word(-1,/)"), ("sdbm", "str(abc),sdbm"), ("ub64", "str(ab?),ub64enc"),
    ("ub64dec", "str(YWI_),ub64dec"), ("b64dec", "str(YWJj),b64dec"),
    ("sha2", "str(abc),sha2,hex"), ("url_enc", "url,url_enc"), ("strcmp", "str(deny),strcmp(txn.s)"),
    ("json_ascii", "req.fhdr(x-utf8),json(ascii)"), ("json_utf8s", "req.fhdr(x-latin),json(utf8s)"),
    ("json_utf8p", "req.fhdr(x-latin),json(utf8p)"), ("json_utf8", "req.fhdr(x-latin),json"),
    ("latin_len", "req.fhdr(x-latin),length"), ("utf8_upper", "req.fhdr(x-utf8),upper"),
    ("xor", "int(12),xor(10)"), ("odd", "int(3),odd"), ("len_hdrs", "req.hdrs,length"),
    ("cook_any", "req.cook"), ("hdr_any", "req.hdr"), ("fhdr_any", "req.fhdr"),
    ("hdr_cnt_all", "req.hdr_cnt"), ("urlp_any", "url_param"), ("cook_val", "req.cook_val(other)"),
    ("hdr_val", "req.hdr_val(content-length)"), ("fhdr_cnt_all", "req.fhdr_cnt"),
    ("baseq", "baseq"), ("base32", "base32"), ("base32src", "base32+src"), ("url32", "url32"),
    ("url32src", "url32+src"), ("url_ip", "url_ip"), ("url_port", "url_port"),
    ("body_param", "req.body_param(b)"), ("body_param_any", "req.body_param"),
    ("hdr_ip", "req.hdr_ip(x-ip)"), ("hdr_ip_bad", "req.hdr_ip(x-list)"), ("env", "env(HOME)"),
    ("env_missing", "env(SPOE_SYNC_SURELY_UNSET)"), ("hostname", "hostname"),
    ("", "src"), ("unnamed", "str(last)"),
]

PORT_ARGS = {"sport", "dport"}


def spoe_conf(args: list[tuple[str, str]]) -> str:
    lines = ["[conf]", "spoe-agent conf", "    groups grp", "    option var-prefix conf",
             "    timeout hello 2s", "    timeout idle 30s", "    timeout processing 2s",
             "    use-backend agents", "spoe-message all", "    event on-frontend-http-request"]
    lines += [f"    args {name}={expr}" if name else f"    args {expr}" for name, expr in args]
    lines += ["spoe-group grp", "    messages all", ""]
    return "\n".join(lines)


def haproxy_cfg(http_port: int, agent_port: int) -> str:
    return f"""\
global
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{http_port}
    option http-buffer-request
    filter spoe engine conf config spoe.conf
    http-request set-var(txn.s) str(deny)
    http-request set-var(txn.i) int(42)
    http-request send-spoe-group conf grp
    http-request return status 200 content-type text/plain string ok
backend agents
    mode tcp
    server a1 127.0.0.1:{agent_port}
"""


VARS = {"txn.s": "deny", "txn.i": 42}


def _typed(args):
    return [(name, data_type_of(value).name, value) for name, value in args]


def _without_ports(rows):
    return [(n, t, None if n in PORT_ARGS else v) for n, t, v in rows]


@pytest.fixture(scope="module")
def haproxy_notifies(haproxy_bin, tmp_path_factory):
    """Every request of raw_requests() sent through HAProxy; the decoded message args."""
    from .harness import RecordingAgent

    workdir = tmp_path_factory.mktemp("rules-args")
    port = free_port()
    out: dict[str, list[tuple[str, object]]] = {}
    with RecordingAgent() as agent, run_haproxy(
            haproxy_bin, haproxy_cfg(port, agent.port), workdir,
            files={"spoe.conf": spoe_conf(ARGS)}, ready_port=port):
        for i, (name, raw) in enumerate(raw_requests(), 1):
            assert b" 200 " in raw_exchange(port, raw).split(b"\r\n", 1)[0]
            frame = decode_frame(agent.wait_for(NOTIFY, i)[i - 1].data)
            assert isinstance(frame, Notify)
            (message,) = frame.messages
            assert message.name == "all"
            out[name] = list(message.args)
    return out


@pytest.fixture(scope="module")
def spoe_sync_args():
    exprs = [(name, parse_sample(expr)) for name, expr in ARGS]

    def evaluate(samples):
        ctx = EvalContext(samples, VARS)
        return [(name, expr.evaluate(ctx)) for name, expr in exprs]

    with EvalServer(evaluate) as server:
        return {name: server.request(raw) for name, raw in raw_requests()}


@pytest.mark.parametrize("request_name", [pytest.param(n, id=n) for n, _ in raw_requests()])
def test_message_args_match_haproxy(request_name, haproxy_notifies, spoe_sync_args):
    theirs = _typed(haproxy_notifies[request_name])
    ours = _typed(spoe_sync_args[request_name])
    assert [r[0] for r in ours] == [r[0] for r in theirs]
    assert _without_ports(ours) == _without_ports(theirs)


# --------------------------------------------------------------------------- ACL conditions

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
    acls = "\n".join(f"    acl {line}" for line in NAMED_ACLS)
    rules = "\n".join(f"    http-request set-var(txn.r{i}) int(1) {cond}"
                      for i, cond in enumerate(CONDITIONS))
    fmt = ",".join(f"%[var(txn.r{i})]" for i in range(len(CONDITIONS)))
    setvars = "\n".join(f"    http-request set-var({name}) {expr}"
                        for name, (expr, _) in ACL_VARS.items())
    return f"""\
global
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{http_port}
    option http-buffer-request
{acls}
    http-request set-var(txn.s) str(deny)
    http-request set-var(txn.i) int(42)
{setvars}
{rules}
    http-request return status 200 content-type text/plain lf-string "R={fmt};ok"
"""


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


# --------------------------------------------------------------------------- config-time checks


def check_cfg(kind: str, agent_port: int) -> str:
    """A frontend, listen or backend proxy carrying the SPOE filter (haproxy -c only)."""
    filt = "    filter spoe engine conf config spoe.conf\n"
    head = ("global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n"
            "    timeout client 5s\n    timeout server 5s\n")
    agents = f"backend agents\n    mode tcp\n    server a1 127.0.0.1:{agent_port}\n"
    if kind == "listen":
        return head + "listen px\n    bind 127.0.0.1:1\n" + filt + \
            "    server s 127.0.0.1:2\n" + agents
    if kind == "frontend":
        return head + "frontend px\n    bind 127.0.0.1:1\n" + filt + \
            "    default_backend be\nbackend be\n    server s 127.0.0.1:2\n" + agents
    return head + "frontend fe\n    bind 127.0.0.1:1\n    default_backend px\nbackend px\n" + \
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


# --------------------------------------------------------------------------- response side

RES_ARGS: list[tuple[str, str]] = [
    ("status", "status"), ("ver", "res.ver"), ("hdrs", "res.hdrs"), ("hdrs_bin", "res.hdrs_bin"),
    ("last", "res.hdr(x-list)"), ("first", "res.hdr(x-list,1)"), ("full", "res.fhdr(x-list)"),
    ("pad", "res.hdr(x-pad)"), ("cnt", "res.hdr_cnt(set-cookie)"), ("names", "res.hdr_names"),
    ("cook_s", "res.cook(s)"), ("cook_t", "res.cook(t)"), ("cook_path", "res.cook(Path)"),
    ("cook_cnt", "res.cook_cnt(s)"), ("body", "res.body"), ("body_len", "res.body_len"),
    ("body_size", "res.body_size"), ("latin", "res.fhdr(x-latin)"), ("conn", "res.hdr(connection)"),
    ("loc", "shdr(location)"), ("ver2", "resp_ver"),
]


def res_spoe_conf() -> str:
    lines = ["[conf]", "spoe-agent conf", "    groups grp", "    timeout hello 2s",
             "    timeout idle 30s", "    timeout processing 2s", "    use-backend agents",
             "spoe-message res", "    event on-http-response"]
    lines += [f"    args {name}={expr}" for name, expr in RES_ARGS]
    lines += ["spoe-group grp", "    messages res", ""]
    return "\n".join(lines)


def res_haproxy_cfg(http_port: int, agent_port: int, server_port: int) -> str:
    return f"""\
global
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{http_port}
    filter spoe engine conf config spoe.conf
    http-response wait-for-body time 1s
    http-response send-spoe-group conf grp
    default_backend app
backend app
    server s 127.0.0.1:{server_port}
backend agents
    mode tcp
    server a1 127.0.0.1:{agent_port}
"""


@pytest.fixture(scope="module")
def haproxy_res_notifies(haproxy_bin, tmp_path_factory):
    from .harness import RecordingAgent
    from .rules_support import RAW_RESPONSES, RawResponder

    workdir = tmp_path_factory.mktemp("rules-res")
    port = free_port()
    out = {}
    with RecordingAgent() as agent, RawResponder() as app, run_haproxy(
            haproxy_bin, res_haproxy_cfg(port, agent.port, app.port), workdir,
            files={"spoe.conf": res_spoe_conf()}, ready_port=port):
        for i, name in enumerate(RAW_RESPONSES, 1):
            raw_exchange(port, f"GET /{name} HTTP/1.1\r\nHost: h\r\n"
                         "Connection: close\r\n\r\n".encode(), timeout=3)
            frame = decode_frame(agent.wait_for(NOTIFY, i)[i - 1].data)
            (message,) = frame.messages
            out[name] = list(message.args)
    return out


@pytest.mark.parametrize("name", ["redirect", "http10", "empty-404", "teapot-custom-reason"])
def test_response_args_match_haproxy(name, haproxy_res_notifies):
    from spoe_sync.rules import ResponseInfo, SampleSource

    from .rules_support import RAW_RESPONSES, parse_raw_response

    status, version, headers, body = parse_raw_response(RAW_RESPONSES[name])
    ctx = EvalContext(SampleSource(response=ResponseInfo(status, headers, body, version)))
    ours = [(n, parse_sample(e).evaluate(ctx)) for n, e in RES_ARGS]
    assert _typed(ours) == _typed(haproxy_res_notifies[name])


# --------------------------------------------------------------------------- TCP samples

TCP_ARGS: list[tuple[str, str]] = [
    ("ip", "src"), ("dst", "dst"), ("sport", "src_port"), ("dport", "dst_port"),
    ("len", "req.len"), ("head", "req.payload(0,3)"), ("rest", "req.payload(4,0)"),
    ("past", "req.payload(10,100)"), ("hex", "req.payload(0,2),hex"), ("ssl", "ssl_fc"),
    ("uid", "unique-id"), ("t", "always_true"), ("rlen", "req_len"), ("pl", "payload(1,2)"),
]
TCP_PAYLOAD = b"\x16\x03\x01\x00\x05hello\r\n\x00tail"


def tcp_haproxy_cfg(port: int, agent_port: int) -> str:
    return f"""\
global
    nbthread 1
defaults
    mode tcp
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend ft
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 3s
    filter spoe engine conf config spoe.conf
    tcp-request content send-spoe-group conf grp if {{ req.len ge {len(TCP_PAYLOAD)} }}
    tcp-request content reject
backend agents
    server a1 127.0.0.1:{agent_port}
"""


def test_tcp_args_match_haproxy(haproxy_bin, tmp_path):
    import socket

    from spoe_sync.rules import TCPSamples

    from .harness import RecordingAgent

    conf = spoe_conf(TCP_ARGS).replace("spoe-message all\n    event on-frontend-http-request\n",
                                       "spoe-message all\n")
    port = free_port()
    with RecordingAgent() as agent, run_haproxy(haproxy_bin, tcp_haproxy_cfg(port, agent.port),
                                                tmp_path, files={"spoe.conf": conf},
                                                ready_port=port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(TCP_PAYLOAD)
            frame = decode_frame(agent.wait_for(NOTIFY, 1)[0].data)
            ctx = EvalContext(TCPSamples(client.getsockname(), client.getpeername(), TCP_PAYLOAD))
    (message,) = frame.messages
    ours = [(n, parse_sample(e).evaluate(ctx)) for n, e in TCP_ARGS]
    assert _typed(ours) == _typed(list(message.args))


# --------------------------------------------------------------------------- body buffer limit

BODY_ARGS = [("blen", "req.body_len"), ("bsize", "req.body_size"),
             ("digest", "req.body,sha1,hex"), ("tail", "req.body,bytes(15000)")]


def big_body_requests() -> list[tuple[str, bytes]]:
    out = []
    for name, pad, size in (("small", 0, 1000), ("just-over", 0, 15300), ("large", 0, 100000),
                            ("large-headers", 4000, 40000)):
        body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        out.append((name, (f"POST /big?{name} HTTP/1.1\r\nHost: h\r\nX-Pad: {'p' * pad}\r\n"
                           f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode() + body))
    return out


def test_req_body_is_cut_where_haproxy_cuts_it(haproxy_bin, tmp_path):
    from .harness import RecordingAgent

    port = free_port()
    theirs = {}
    with RecordingAgent() as agent, run_haproxy(haproxy_bin, haproxy_cfg(port, agent.port),
                                                tmp_path, files={"spoe.conf": spoe_conf(BODY_ARGS)},
                                                ready_port=port):
        for i, (name, raw) in enumerate(big_body_requests(), 1):
            raw_exchange(port, raw, timeout=3)
            frame = decode_frame(agent.wait_for(NOTIFY, i)[i - 1].data)
            theirs[name] = list(frame.messages[0].args)
    exprs = [(n, parse_sample(e)) for n, e in BODY_ARGS]
    with EvalServer(lambda s: [(n, x.evaluate(EvalContext(s))) for n, x in exprs]) as server:
        ours = {name: server.request(raw) for name, raw in big_body_requests()}
    for name, _ in big_body_requests():
        assert _typed(ours[name]) == _typed(theirs[name]), name


def client_hello(sni: str | None, alpn: list[str] | None) -> bytes:
    """A real ClientHello from Python's ssl module (memory BIOs, no socket)."""
    import ssl

    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


TLS_ARGS = [("type", "req.ssl_hello_type"), ("ver", "req.ssl_ver"), ("sni", "req.ssl_sni"),
            ("alpn", "req.ssl_alpn"), ("ec", "req.ssl_ec_ext"), ("st", "req.ssl_st_ext"),
            ("old_sni", "req_ssl_sni")]


@pytest.mark.parametrize(("sni", "alpn"), [
    pytest.param("sni.example", ["h2", "http/1.1"], id="sni-alpn"),
    pytest.param("other.test", None, id="sni-only"),
])
def test_tls_client_hello_fetches_match_haproxy(sni, alpn, haproxy_bin, tmp_path):
    import socket

    from spoe_sync.rules import TCPSamples

    from .harness import RecordingAgent

    hello = client_hello(sni, alpn)
    conf = spoe_conf(TLS_ARGS).replace("spoe-message all\n    event on-frontend-http-request\n",
                                       "spoe-message all\n")
    cfg = tcp_haproxy_cfg(free_port(), 0)
    port = free_port()
    with RecordingAgent() as agent:
        cfg = tcp_haproxy_cfg(port, agent.port).replace(
            f"req.len ge {len(TCP_PAYLOAD)}", "req.ssl_hello_type 1")
        with run_haproxy(haproxy_bin, cfg, tmp_path, files={"spoe.conf": conf}, ready_port=port):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(hello)
                frame = decode_frame(agent.wait_for(NOTIFY, 1)[0].data)
    ctx = EvalContext(TCPSamples(("127.0.0.1", 1), ("127.0.0.1", 2), hello))
    ours = [(n, parse_sample(e).evaluate(ctx)) for n, e in TLS_ARGS]
    assert _typed(ours) == _typed(list(frame.messages[0].args))


# --------------------------------------------------------------------------- maps

# One file per matching method: HAProxy 2.6 shares the patterns of one file between the map_*
# converters that use it, and the first converter's matching then wins (a quirk not reproduced).
MAP_FILES = {
    "hosts.map": "# hosts\n  golden.example   backend_a  \nh\tbackend_h\nGolden.Example mixed\n",
    "hosts_dom.map": "example x\n",
    "paths.map": "/some api\n/ root\n",
    "paths_sub.map": "me/p sub\n",
    "paths_end.map": "ath end\n/ slash\n",
    "paths_dir.map": "/some api\n/ root\n",
    "paths_reg.map": "^/s[a-z]+/ reg\n",
    "ips.map": "10.0.0.0/8 ten\n127.0.0.0/8 loop\n127.0.0.1 local\n",
    "ints.map": "1 one\n42 forty-two\n",
    "ports.map": "h 8080\nx 1\n",
    "addrs.map": "h 10.1.1.1\nx ::1\n",
}
MAP_ARGS = [
    ("host", "req.hdr(host),map(hosts.map)"), ("host_d", "req.hdr(host),map(hosts.map,none)"),
    ("host_str", "req.hdr(host),map_str(hosts.map)"), ("lower", "req.hdr(host),lower,map(hosts.map)"),
    ("beg", "path,map_beg(paths.map)"), ("sub", "path,map_sub(paths_sub.map,x)"),
    ("end", "path,map_end(paths_end.map)"), ("dir", "path,map_dir(paths_dir.map)"),
    ("ip", "src,map_ip(ips.map)"), ("int", "var(txn.i),map_int(ints.map)"),
    ("str_int", "req.hdr(host),map_str_int(ports.map)"),
    ("str_int_d", "str(nope),map_str_int(ports.map,7)"),
    ("str_ip", "req.hdr(host),map_str_ip(addrs.map)"), ("reg", "path,map_reg(paths_reg.map)"),
    ("dom", "req.hdr(host),map_dom(hosts_dom.map)"),
]


def test_maps_match_haproxy(haproxy_bin, tmp_path):
    from .harness import RecordingAgent

    port = free_port()
    theirs = {}
    requests = [r for r in raw_requests() if r[0] in ("duplicates-and-case", "no-query-http10",
                                                      "post-body", "absolute-uri")]
    with RecordingAgent() as agent, run_haproxy(
            haproxy_bin, haproxy_cfg(port, agent.port), tmp_path,
            files={"spoe.conf": spoe_conf(MAP_ARGS), **MAP_FILES}, ready_port=port):
        for i, (name, raw) in enumerate(requests, 1):
            raw_exchange(port, raw)
            theirs[name] = list(decode_frame(agent.wait_for(NOTIFY, i)[i - 1].data)
                                .messages[0].args)
    exprs = [(n, parse_sample(e, base_dir=str(tmp_path))) for n, e in MAP_ARGS]
    with EvalServer(lambda s: [(n, x.evaluate(EvalContext(s, VARS))) for n, x in exprs]) as srv:
        ours = {name: srv.request(raw) for name, raw in requests}
    for name, _ in requests:
        assert _typed(ours[name]) == _typed(theirs[name]), name
