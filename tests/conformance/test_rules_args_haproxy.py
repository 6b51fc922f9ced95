"""Sample expressions against HAProxy 2.6 (SPOE.txt §2.3 ``args``, configuration.txt §7;
docs/explanation/agents.md §2-3: types, NULL vs empty, req.hdrs/req.hdrs_bin).

For one SPOE message with many args and a set of raw HTTP requests, HAProxy's NOTIFY (decoded by
spoe_sync.protocol.decode_frame) and spoe_sync's evaluation of the same expressions on the same
bytes, served by gevent.pywsgi, must agree on names, order, types and values (ports and ids
aside); the same for response args (``status``, ``res.*``) sent from ``http-response
send-spoe-group`` for raw server responses, TCP samples from ``tcp-request content``
(``TCPSamples``, ports included), the request body cut at HAProxy's buffer size, TLS
ClientHello fetches and the ``map*`` converters.  ACL conditions are in
test_rules_acl_haproxy.py, config-time checks in test_rules_config_haproxy.py.
"""

from __future__ import annotations

import pytest

from spoe_sync.protocol import Notify, data_type_of, decode_frame
from spoe_sync.rules import EvalContext, parse_sample
from tests.kit import free_port

from . import cfgkit
from .harness import NOTIFY, run_haproxy
from .rules_support import VARS, EvalServer, raw_exchange, raw_requests

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
    ("uid", "unique-id"), ("ssl", "ssl_fc"), ("sni", "ssl_fc_sni"), ("has_sni", "ssl_fc_has_sni"),
    ("t", "always_true"), ("f", "always_false"),
    ("http", "req.proto_http"), ("base", "base"), ("urlp", "url_param(x)"),
    ("urlp_missing", "url_param(nope)"),
    ("ip6", "ipv6(2001:db8::1)"), ("ip4", "ipv4(10.1.2.3)"), ("bin", "bin(deadbeef)"),
    ("mask_mapped", "ipv6(::ffff:1.2.3.4),ipmask(24,64)"),
    ("mask_compat", "ipv6(::1.2.3.4),ipmask(24,64)"),
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
    return cfgkit.haproxy_cfg(
        http_port, "option http-buffer-request", "filter spoe engine conf config spoe.conf",
        "http-request set-var(txn.s) str(deny)", "http-request set-var(txn.i) int(42)",
        "http-request send-spoe-group conf grp",
        "http-request return status 200 content-type text/plain string ok",
        agent_port=agent_port)


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
    return cfgkit.haproxy_cfg(
        http_port, "filter spoe engine conf config spoe.conf",
        "http-response wait-for-body time 1s", "http-response send-spoe-group conf grp",
        "default_backend app",
        tail=cfgkit.section("backend app", f"server s 127.0.0.1:{server_port}"),
        agent_port=agent_port)


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
    ("sni", "ssl_fc_sni"), ("has_sni", "ssl_fc_has_sni"),
    ("uid", "unique-id"), ("t", "always_true"), ("rlen", "req_len"), ("pl", "payload(1,2)"),
]
TCP_PAYLOAD = b"\x16\x03\x01\x00\x05hello\r\n\x00tail"


def tcp_haproxy_cfg(port: int, agent_port: int) -> str:
    return cfgkit.haproxy_cfg(
        port, "tcp-request inspect-delay 3s", "filter spoe engine conf config spoe.conf",
        f"tcp-request content send-spoe-group conf grp if {{ req.len ge {len(TCP_PAYLOAD)} }}",
        "tcp-request content reject",
        mode="tcp", name="ft", agent_port=agent_port)


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
