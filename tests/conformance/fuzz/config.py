"""The SPOE file and haproxy.cfg of the fuzz tier: every fetch and converter spoe_sync registers,
at an event where it is valid, on the request's own (fuzzed) data; ACL-guarded messages with every
matching method; a group sent by ``send-spoe-group``; an ``on-http-response`` message."""

from __future__ import annotations

import re

from .. import cfgkit

__all__ = ["ACL_MESSAGES", "FILES", "MESSAGES", "RES_MESSAGES", "haproxy_cfg", "spoe_conf"]

# HAProxy 2.6 shares the patterns of one file between the map converters naming it (the
# first one's matching method wins): one file per converter
_MAP_INPUT = {"str": "req.hdr(x-a)", "beg": "path", "sub": "path", "end": "path", "dir": "path",
              "reg": "path", "dom": "req.hdr(host)", "ip": "req.hdr_ip(x-ip)", "int": "req.hdr(x-n)"}
_MAP_KEYS = {"str": ["abc", "ABC", "1", "42"], "beg": ["/api", "/a", "/"], "sub": ["a;", "%2", "."],
             "end": [".json", "/", "a"], "dir": ["api", "a", "some"], "reg": ["^/[a-z]+/", "%2F"],
             "dom": ["golden", "example", "Golden.Example"],
             "ip": ["127.0.0.0/8", "10.0.0.0/8", "::1"], "int": ["1", "42", "-3", "5:9"]}
_MAP_VALUES = {"str": "v{}", "int": "{}", "ip": "10.0.0.{}"}
MAP_FILES: dict[str, str] = {}
MAP_ARGS: list[tuple[str, str]] = [("map", "req.hdr(x-a),map(map.map,none)")]
MAP_FILES["map.map"] = "abc x\nABC y\n"
for _m, _expr in _MAP_INPUT.items():
    for _o, _suffix in (("str", ""), ("int", "_int"), ("ip", "_ip")):
        _name = f"map_{_m}{_suffix}"
        MAP_FILES[f"{_name}.map"] = "".join(
            f"{key} {_MAP_VALUES[_o].format(i + 1)}\n" for i, key in enumerate(_MAP_KEYS[_m]))
        MAP_ARGS.append((_name, f"{_expr},{_name}({_name}.map)"))
MAP_ARGS.append(("map_dflt", "req.hdr(x-a),map_str_int(map_str_int.map,7)"))

# (message name, [(arg name, expression)]), sent on-frontend-http-request
MESSAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("l4", [
        ("src", "src"), ("dst", "dst"), ("sport", "src_port"), ("dport", "dst_port"),
        ("fe_id", "fe_id"), ("fe_name", "fe_name"), ("ssl", "ssl_fc"), ("sni", "ssl_fc_sni"),
        ("has_sni", "ssl_fc_has_sni"), ("uid", "unique-id"), ("http", "req.proto_http"),
        ("t", "always_true"), ("f", "always_false"), ("len", "req.len"),
        ("payload", "req.payload(0,4)"), ("hello", "req.ssl_hello_type"), ("sslv", "req.ssl_ver"),
        ("ssni", "req.ssl_sni"), ("alpn", "req.ssl_alpn"), ("ec", "req.ssl_ec_ext"),
        ("st", "req.ssl_st_ext"), ("cap", "capture.req.hdr(0)"),
    ]),
    ("target", [
        ("method", "method"), ("path", "path"), ("pathq", "pathq"), ("query", "query"),
        ("url", "url"), ("ver", "req.ver"), ("base", "base"), ("baseq", "baseq"),
        ("base32", "base32"), ("base32src", "base32+src"), ("url32", "url32"),
        ("url32src", "url32+src"), ("url_ip", "url_ip"), ("url_port", "url_port"),
        ("urlp_any", "url_param"), ("urlp_a", "url_param(a)"), ("urlp_b", "urlp(b)"),
        ("urlp_semi", "url_param(a,;)"), ("urlp_amp", "url_param(b,&)"), ("urlp_n", "urlp(n)"),
        ("urlp_empty", "url_param()"), ("urlp_q", "url_param(c)"),
        ("path_dec", "path,url_dec"), ("query_dec", "query,url_dec(1)"),
        ("url_enc", "path,url_enc"), ("url_enc_q", "url,url_enc(query)"),
        ("path_len", "path,length"), ("path_lower", "path,lower"), ("path_upper", "path,upper"),
        ("path_field", "path,field(2,/)"), ("path_word", "path,word(1,/)"),
        ("path_word_neg", "path,word(-1,/)"), ("path_field0", "path,field(2,/,0)"),
        ("path_regsub", "path,regsub(/+,_,g)"), ("path_json", "path,json(utf8s)"),
        ("path_jsonp", "path,json(utf8p)"), ("path_jsona", "path,json(ascii)"),
        ("path_bytes", "path,bytes(1,3)"), ("path_hex", "path,hex"), ("path_b64", "path,base64"),
        ("path_ub64", "path,ub64enc"),
    ]),
    ("hdr", [
        ("host", "req.hdr(host)"), ("hdr_host", "hdr(Host)"), ("a_last", "req.hdr(x-a)"),
        ("a_first", "req.hdr(x-a,1)"), ("a_neg", "req.hdr(x-a,-2)"), ("a_full", "req.fhdr(x-a)"),
        ("a_full1", "req.fhdr(x-a,1)"), ("a_cnt", "req.hdr_cnt(x-a)"),
        ("a_fcnt", "req.fhdr_cnt(x-a)"), ("cnt_all", "req.hdr_cnt"), ("fcnt_all", "req.fhdr_cnt"),
        ("names", "req.hdr_names"), ("names_semi", "req.hdr_names(;)"), ("hdr_any", "req.hdr"),
        ("fhdr_any", "req.fhdr"), ("empty", "req.hdr(x-empty)"), ("ua", "req.fhdr(user-agent)"),
        ("xff", "req.hdr(x-forwarded-for)"), ("ip", "req.hdr_ip(x-ip)"),
        ("ip1", "hdr_ip(x-ip,1)"), ("ip_xff", "req.hdr_ip(x-forwarded-for)"),
        ("cl", "req.hdr(content-length)"), ("te", "req.hdr(transfer-encoding)"),
        ("expect", "req.hdr(expect)"), ("conn", "req.hdr(connection)"),
        ("host_only", "req.hdr(host),host_only"), ("port_only", "req.hdr(host),port_only"),
    ]),
    ("cook", [
        ("a", "req.cook(a)"), ("b", "cook(b)"), ("empty_name", "req.cook()"),
        ("any", "req.cook"), ("cnt", "req.cook_cnt"), ("cnt_a", "req.cook_cnt(a)"),
        ("val_n", "req.cook_val(n)"), ("val_a", "cook_val(a)"), ("cookie_alias", "cookie(sid)"),
        ("d", "req.cook(d)"), ("e", "req.cook(e)"),
    ]),
    ("ints", [
        ("val", "req.hdr_val(x-n)"), ("val1", "hdr_val(x-n,1)"), ("cl", "req.hdr_val(content-length)"),
        ("add", "req.hdr(x-n),add(1)"), ("sub", "req.hdr(x-n),sub(1)"), ("mul", "req.hdr(x-n),mul(2)"),
        ("div", "req.hdr(x-n),div(3)"), ("mod", "req.hdr(x-n),mod(3)"), ("and", "req.hdr(x-n),and(6)"),
        ("or", "req.hdr(x-n),or(1)"), ("xor", "req.hdr(x-n),xor(5)"), ("neg", "req.hdr(x-n),neg"),
        ("cpl", "req.hdr(x-n),cpl"), ("bool", "req.hdr(x-n),bool"), ("not", "req.hdr(x-n),not"),
        ("odd", "req.hdr(x-n),odd"), ("even", "req.hdr(x-n),even"), ("htonl", "req.hdr(x-n),htonl"),
        ("hex2i", "req.hdr(x-n),hex2i"), ("hex2i_c", "req.hdr(x-c),hex2i"),
        ("http_date", "req.hdr(x-n),http_date"), ("utime", "req.hdr(x-n),utime(%Y-%m-%d)"),
        ("ltime", "req.hdr(x-n),ltime(%H,0)"),
        ("iif", "req.hdr(x-n),bool,iif(yes,no)"), ("var_i", "var(txn.i)"),
        ("add_var", "req.hdr(x-n),add(txn.i)"), ("strcmp", "req.hdr(x-a),strcmp(txn.s)"),
        ("urlp_val", "urlp_val(n)"), ("b_len", "req.body_len"), ("b_size", "req.body_size"),
    ]),
    ("maps", MAP_ARGS),
    ("conv", [
        ("word", "req.hdr(x-c),word(1,;)"), ("word2", "req.fhdr(x-c),word(2,;,2)"),
        ("word_neg", "req.fhdr(x-c),word(-1,;)"), ("field", "req.fhdr(x-c),field(2,;)"),
        ("field1", "req.fhdr(x-c),field(1,;)"), ("field_neg", "req.fhdr(x-c),field(-1,;)"),
        ("ub64dec", "req.hdr(x-c),ub64dec"), ("b64dec", "req.hdr(x-c),b64dec"),
        ("json", "req.fhdr(x-c),json"), ("json_u", "req.fhdr(x-c),json(utf8s)"),
        ("json_p", "req.fhdr(x-c),json(utf8p)"), ("json_a", "req.fhdr(x-c),json(ascii)"),
        ("url_dec", "req.fhdr(x-c),url_dec"), ("ltrim", "req.fhdr(x-c),ltrim(a)"),
        ("rtrim", "req.fhdr(x-c),rtrim(c)"), ("cut", "req.fhdr(x-c),cut_crlf"),
        ("concat", "req.hdr(x-c),concat(<,txn.s,>)"), ("regsub", "req.fhdr(x-c),regsub([a-c],X,gi)"),
        ("lower", "req.fhdr(x-c),lower"), ("upper", "req.fhdr(x-c),upper"),
        ("len", "req.fhdr(x-c),length"), ("bytes", "req.fhdr(x-c),bytes(2)"),
        ("sha1", "req.fhdr(x-c),sha1,hex"), ("sha2", "req.fhdr(x-c),sha2(512),base64"),
        ("digest", "req.fhdr(x-c),digest(md5),hex"), ("hmac", "req.fhdr(x-c),hmac(sha1,a2V5),hex"),
        ("crc32", "req.fhdr(x-c),crc32"), ("crc32c", "req.fhdr(x-c),crc32c(1)"),
        ("djb2", "req.fhdr(x-c),djb2"), ("sdbm", "req.fhdr(x-c),sdbm(1)"), ("wt6", "req.fhdr(x-c),wt6"),
        ("be2dec", "req.fhdr(x-c),be2dec(:,2)"), ("be2hex", "req.fhdr(x-c),be2hex(:,2,1)"),
        ("ipmask", "req.hdr_ip(x-ip),ipmask(24,64)"),
        ("lit", "str(x),upper"), ("lit_int", "int(-3),neg"), ("lit_bin", "bin(00ff),hex"),
        ("lit_ip4", "ipv4(10.1.2.3),ipmask(8)"), ("lit_ip6", "ipv6(::1),hex"), ("lit_bool", "bool(1)"),
        ("env", "env(SPOE_SYNC_FUZZ_ENV)"), ("hostname", "hostname,length"),
        ("rand", "rand(1)"), ("uuid", "uuid,length"), ("date", "date(0),div(100000000)"),
        # debug with no argument writes its defaults into the argument list HAProxy 2.6 shares
        # between every keyword written without parentheses: a bare url_param then looks
        # for a parameter named "debug" (found by this tier; not something to imitate)
        ("var_dflt", "var(txn.nope,dflt)"), ("debug", "req.hdr(x-a),debug(fz)"),
    ]),
]

# body-reading samples: sent as a group by ``http-request send-spoe-group`` (a NOTIFY of their
# own, so that large bodies and header blocks do not crowd the event's frame)
GROUP_MESSAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("body", [
        ("body", "req.body"), ("param_a", "req.body_param(a)"), ("param_b", "req.body_param(b)"),
        ("param_any", "req.body_param"), ("len", "req.body_len"), ("size", "req.body_size"),
        ("hdrs", "req.hdrs"), ("hdrs_bin", "req.hdrs_bin"),
    ] + [(f"v_{scope}", f"var({scope}.fz.v)") for scope in ("sess", "txn", "req", "res")]),
]

RES_MESSAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("res", [
        ("status", "status"), ("ver", "res.ver"), ("ver2", "resp_ver"), ("hdrs", "res.hdrs"),
        ("hdrs_bin", "res.hdrs_bin"), ("ct", "res.hdr(content-type)"), ("list", "res.hdr(x-list)"),
        ("list1", "res.hdr(x-list,1)"), ("flist", "res.fhdr(x-list)"), ("cnt", "res.hdr_cnt"),
        ("fcnt", "res.fhdr_cnt(x-list)"), ("names", "res.hdr_names"), ("val", "res.hdr_val(x-n)"),
        ("cook_s", "res.cook(s)"), ("cook_t", "scook(t)"), ("cook_any", "res.cook"),
        ("cook_cnt", "res.cook_cnt"), ("cook_cnt_s", "res.cook_cnt(s)"),
        ("cook_val", "res.cook_val(n)"), ("shdr", "shdr(x-list)"), ("body", "res.body"),
        ("body_len", "res.body_len"), ("body_size", "res.body_size"), ("len", "res.len"),
        ("payload", "res.payload(0,4)"),
        *[(f"v_{scope}", f"var({scope}.fz.v)") for scope in ("sess", "txn", "req", "res")],
    ]),
]

# (message name, condition): the message carries one arg; whether it is sent is the verdict
ACL_MESSAGES: list[tuple[str, str]] = [
    ("acl_str", "{ req.hdr(x-a) -m str abc }"), ("acl_str_i", "{ req.hdr(x-a) -i -m str abc }"),
    ("acl_beg", "{ path -m beg /api }"), ("acl_end", "{ path -m end .json }"),
    ("acl_sub", "{ url -m sub ?? }"), ("acl_reg", "{ path -m reg -i ^/(a|api)/ }"),
    ("acl_found", "{ req.hdr(x-empty) -m found }"), ("acl_int", "{ req.hdr_val(x-n) -m int gt 5 }"),
    ("acl_int2", "{ req.hdr(x-n) -m int 42 }"), ("acl_int_rng", "{ url_param(n) -m int 0:10 }"),
    ("acl_ip", "{ req.hdr_ip(x-ip) -m ip 127.0.0.0/8 }"),
    ("acl_ip_xff", "{ req.hdr_ip(x-forwarded-for) 10.0.0.0/8 }"),
    ("acl_ip_str", "{ req.hdr(x-a) -m ip ::1 }"), ("acl_len", "{ req.hdr(x-b) -m len 0 }"),
    ("acl_len_gt", "{ req.fhdr(x-b) -m len gt 3 }"), ("acl_dom", "{ req.hdr(host) -m dom -i golden }"),
    ("acl_dir", "{ path -m dir api }"), ("acl_bin", "{ req.body -m bin 68656c6c6f }"),
    ("acl_cook", "{ req.cook(a) -m found }"), ("acl_cook_len", "{ req.cook(a) -m len 0 }"),
    ("acl_cook_cnt", "{ req.cook_cnt(a) ge 2 }"), ("acl_named", "is_api"),
    ("acl_named_or", "is_api || { req.hdr(x-b) -m sub a }"), ("acl_not", "!is_api !{ query -m found }"),
    ("acl_named_multi", "golden"), ("acl_body_sub", "{ req.body -m sub a=1 }"),
    ("acl_method", "{ method GET HEAD }"), ("acl_meth_get", "METH_GET"), ("acl_http10", "HTTP_1.0"),
    ("acl_url_abs", "HTTP_URL_ABS"), ("acl_content", "HTTP_CONTENT"),
    ("acl_hdr_cnt", "{ req.hdr_cnt(x-a) gt 1 }"), ("acl_param", "{ urlp(a) -m str 1 }"),
    ("acl_param_found", "{ url_param(b) -m found }"), ("acl_var", "{ var(txn.s) -m str deny }"),
    ("acl_conv", "{ req.hdr(x-c),lower -m beg -i y }"), ("acl_ver", "{ req.ver 1.1 }"),
    ("acl_names", "{ req.hdr_names -m sub x-a }"),
]

# declared in each spoe-message that names them (HAProxy's SPOE messages do not see the
# frontend's ACLs); several lines of one name are ORed
NAMED_ACLS = ["is_api path_beg /api /some", "is_api path_end .json",
              "golden hdr(host) -i golden.example", "golden hdr_end(host) -i .example:8080"]

FILES = MAP_FILES

#: the raw responses the backend gives, picked by the request's ``X-Resp`` header
RESPONSES = {
    "0": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
    "1": (b"HTTP/1.1 302 Found\r\nLocation: /x\r\nSet-Cookie: s=1; Path=/\r\n"
          b"set-cookie: t=2, n=5\r\nX-List: a, b\r\nX-LIST: c\r\nX-N: +7\r\n"
          b"Content-Length: 5\r\n\r\nsayok"),
    "2": (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nSet-Cookie: s=\r\n"
          b"X-N: 1 2\r\nContent-Length: 2\r\n\r\nok"),
    "3": (b"HTTP/1.1 418 I Am A Teapot\r\nX-List:\r\nSet-Cookie: n=42; s=x\r\n"
          b"Content-Length: 4\r\n\r\nteok"),
    "4": (b"HTTP/1.1 200 OK\r\nSet-Cookie: s=a; Expires=Wed, 21 Oct 2015 07:28:00 GMT\r\n"
          b"Set-Cookie: $v=1; t=\"q,r\"\r\nX-N: -12abc\r\nx-list: \"a,b\", c\r\n"
          b"Content-Length: 2\r\n\r\nok"),
}


def _message(name: str, args: list[tuple[str, str]], event: str | None,
             cond: str | None = None) -> list[str]:
    lines = [f"spoe-message {name}"]
    lines += [f"    args {n}={e}" for n, e in args]
    if cond:
        lines += [f"    acl {line}" for line in NAMED_ACLS if line.split()[0] in cond.replace("!", " ").split()]
    if event:
        lines.append(f"    event {event}" + (f" if {cond}" if cond else ""))
    return lines


def spoe_conf(files_dir: str) -> str:
    """The SPOE file; map files are named by absolute path under ``files_dir`` (HAProxy opens
    them from its working directory, spoe_sync from its own: one path for both)."""
    names = [m for m, _ in MESSAGES] + [m for m, _ in ACL_MESSAGES] + [m for m, _ in RES_MESSAGES]
    lines = ["[fz]", "spoe-agent fz", "    messages " + " ".join(names), "    groups grp",
             "    option var-prefix fz", "    timeout hello 2s", "    timeout idle 30s",
             "    timeout processing 3s", "    use-backend agents", "    max-frame-size 16380"]
    for name, args in MESSAGES:
        lines += _message(name, args, "on-frontend-http-request")
    for name, cond in ACL_MESSAGES:
        lines += _message(name, [("v", "bool(1)")], "on-frontend-http-request", cond)
    for name, args in GROUP_MESSAGES:
        lines += _message(name, args, None)
    for name, args in RES_MESSAGES:
        lines += _message(name, args, "on-http-response")
    lines += ["spoe-group grp", "    messages " + " ".join(m for m, _ in GROUP_MESSAGES), ""]
    return re.sub(r"(map\w*\()([\w.]+\.map)", rf"\1{files_dir}/\2", "\n".join(lines))


def haproxy_cfg(port: int, agent_port: int, server_port: int) -> str:
    return cfgkit.haproxy_cfg(
        port, "option http-buffer-request", "filter spoe engine fz config spoe.conf",
        "http-request capture req.hdr(user-agent) len 16",
        "http-request set-var(txn.s) str(deny)", "http-request set-var(txn.i) int(42)",
        "http-request send-spoe-group fz grp", "default_backend app",
        tail=cfgkit.section("backend app", f"server s 127.0.0.1:{server_port}"),
        agent_port=agent_port)
