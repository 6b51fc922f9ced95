"""ACLs (configuration.txt §7.1, §7.4; SPOE.txt §2.3 ``acl``): every matching method, flags,
integer operators and ranges, IP/CIDR with v4/v6 mapping, pattern files, ACL keywords and
predefined ACLs.  The expected results were observed on HAProxy 2.6.12."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.errors import ExpressionError
from spoe_sync.rules import AclRegistry, EvalContext, RequestInfo, SampleSource, StaticSamples
from spoe_sync.rules.acl import PREDEFINED_ACLS, parse_acl_expr

VARS = {
    "txn.s": "abc", "txn.S": "ABC", "txn.empty": "", "txn.i": 5, "txn.neg": -5, "txn.zero": 0,
    "txn.t": True, "txn.f": False, "txn.ip4": IPv4Address("10.0.0.5"),
    "txn.ip6m": IPv6Address("::ffff:10.0.0.5"), "txn.ip6": IPv6Address("2001:db8::5"),
    "txn.ipstr": "10.0.0.5", "txn.bin": b"Hello", "txn.url": "http://www1.dc-eu.example.com:80/blah",
    "txn.dir": "/images/png/logo/32x32.png", "txn.num": "7x", "txn.one": "1", "txn.dash": "-i",
    "txn.space": "a b", "txn.slash": "/a/",
}


def check(words: str) -> bool:
    expr = parse_acl_expr(words.split(" ") if "\\ " not in words else
                          [w.replace("\\s", " ") for w in words.replace("\\ ", "\\s").split(" ")])
    return expr.evaluate(EvalContext(StaticSamples(), VARS))


@pytest.mark.parametrize(("words", "expected"), [
    # found / bool
    pytest.param("var(txn.empty) -m found", True, id="found-empty-string"),
    pytest.param("var(txn.none) -m found", False, id="found-missing"),
    pytest.param("var(txn.t) -m bool", True, id="bool-true"),
    pytest.param("var(txn.f) -m bool", False, id="bool-false"),
    pytest.param("var(txn.i) -m bool", True, id="bool-int"),
    pytest.param("var(txn.zero) -m bool", False, id="bool-zero"),
    pytest.param("var(txn.one) -m bool", True, id="bool-string-1"),
    pytest.param("var(txn.empty) -m bool", False, id="bool-empty-string"),
    pytest.param("var(txn.s) -m bool", False, id="bool-text"),
    # str and friends
    pytest.param("var(txn.s) -m str abc", True, id="str"),
    pytest.param("var(txn.s) -m str", False, id="str-without-pattern-never-matches"),
    pytest.param("var(txn.empty) -m str", False, id="str-empty-without-pattern"),
    pytest.param("var(txn.s) -m str xyz abc", True, id="str-any-pattern"),
    pytest.param("var(txn.S) -m str abc", False, id="str-case"),
    pytest.param("var(txn.S) -m str -i abc", True, id="str-icase"),
    pytest.param("var(txn.S) -i -m str abc", True, id="str-icase-first"),
    pytest.param("var(txn.i) -m str 5", True, id="str-on-int"),
    pytest.param("var(txn.ip4) -m str 10.0.0.5", True, id="str-on-ip"),
    pytest.param("var(txn.dash) -m str -- -i", True, id="double-dash"),
    pytest.param("var(txn.space) -m str a\\ b", True, id="escaped-space-word"),
    pytest.param("var(txn.S) -m beg ab", False, id="beg-case"),
    pytest.param("var(txn.S) -m beg -i ab", True, id="beg-icase"),
    pytest.param("var(txn.s) -m end bc", True, id="end"),
    pytest.param("var(txn.s) -m sub b", True, id="sub"),
    pytest.param("var(txn.s) -m sub x", False, id="sub-miss"),
    pytest.param("var(txn.s) -m reg ^a.c$", True, id="reg"),
    pytest.param("var(txn.S) -m reg -i ^a.c$", True, id="reg-icase"),
    pytest.param("var(txn.S) -m reg ^a", False, id="reg-case"),
    pytest.param("var(txn.s) -m len 3", True, id="len"),
    pytest.param("var(txn.s) -m len gt 3", False, id="len-gt"),
    pytest.param("var(txn.dir) -m dir images/png", True, id="dir"),
    pytest.param("var(txn.dir) -m dir png", True, id="dir-word"),
    pytest.param("var(txn.dir) -m dir 32x32", False, id="dir-partial"),
    pytest.param("var(txn.dir) -m dir /", False, id="dir-only-delimiter"),
    pytest.param("var(txn.slash) -m dir /", True, id="dir-only-delimiter-trailing"),
    pytest.param("var(txn.url) -m dom .www1", True, id="dom-leading-delim"),
    pytest.param("var(txn.url) -m dom dc-eu.example", True, id="dom"),
    pytest.param("var(txn.url) -m dom 80", True, id="dom-port"),
    pytest.param("var(txn.url) -m dom eu", False, id="dom-partial"),
    pytest.param("var(txn.url) -m dom dc-eu.example:80", False, id="dom-across-com"),
    # bin
    pytest.param("var(txn.bin) -m bin 48656c6c6f", True, id="bin-exact"),
    pytest.param("var(txn.bin) -m bin 48656C", False, id="bin-prefix-no"),
    # int
    pytest.param("var(txn.i) -m int 5", True, id="int"),
    pytest.param("var(txn.i) -m int 3:7", True, id="int-range"),
    pytest.param("var(txn.i) -m int :4", False, id="int-open-low"),
    pytest.param("var(txn.i) -m int 6:", False, id="int-open-high"),
    pytest.param("var(txn.i) -m int eq 5", True, id="int-eq"),
    pytest.param("var(txn.i) -m int ge 6", False, id="int-ge"),
    pytest.param("var(txn.i) -m int gt 4", True, id="int-gt"),
    pytest.param("var(txn.i) -m int le 5", True, id="int-le"),
    pytest.param("var(txn.neg) -m int lt 0", True, id="int-negative"),
    pytest.param("var(txn.i) -m int lt 3 eq 5", True, id="int-operator-switch"),
    pytest.param("var(txn.t) -m int 1", True, id="int-on-bool"),
    pytest.param("var(txn.num) -m int 7", True, id="int-on-string-prefix"),
    pytest.param("var(txn.s) -m int 0", True, id="int-on-text-is-zero"),
    pytest.param("var(txn.empty) -m int 0", False, id="int-on-empty-fails"),
    # ip
    pytest.param("var(txn.ip4) -m ip 10.0.0.0/8", True, id="ip-cidr"),
    pytest.param("var(txn.ip4) -m ip 10.0.0.0/255.0.0.0", True, id="ip-dotted-mask"),
    pytest.param("var(txn.ip4) -m ip 10.0.0.0/255.255.255.0", True, id="ip-dotted-24"),
    pytest.param("var(txn.ip4) -m ip 10.0.0.5", True, id="ip-host"),
    pytest.param("var(txn.ip4) -m ip 10.5", True, id="ip-abbreviated"),
    pytest.param("var(txn.ip4) -m ip 10.0", False, id="ip-abbreviated-other"),
    pytest.param("var(txn.ip6m) -m ip 10.0.0.0/8", True, id="ip-v4-mapped-sample"),
    pytest.param("var(txn.ip4) -m ip ::ffff:10.0.0.0/104", True, id="ip-v4-sample-v6-pattern"),
    pytest.param("var(txn.ip6) -m ip 2001:db8::/32", True, id="ip-v6"),
    pytest.param("var(txn.ip6) -m ip 10.0.0.0/8", False, id="ip-v6-not-mapped"),
    pytest.param("var(txn.ipstr) -m ip 10.0.0.0/8", True, id="ip-on-string"),
    pytest.param("var(txn.s) -m ip 10.0.0.0/8", False, id="ip-on-text"),
])
def test_matching(words, expected):
    assert check(words) is expected


@pytest.mark.parametrize(("words", "message"), [
    pytest.param("var(txn.s)", "matching method must be specified first (using '-m') when "
                 "using a sample fetch of this type ('var').", id="any-needs-m"),
    pytest.param("req.body abc", "matching method must be specified first", id="bin-needs-m"),
    pytest.param("var(txn.i) -m int 1.2", "'1.2' is not a number.", id="int-pattern"),
    pytest.param("var(txn.i) -m int abc", "'abc' is not a number.", id="int-word"),
    pytest.param("var(txn.s) -m nope x", "unknown matching method 'nope'", id="method"),
    pytest.param("var(txn.s) -x a", "'-x' is not a valid ACL option", id="flag"),
    pytest.param("src -m ip nope", "'nope' is not a valid IPv4 or IPv6 address.", id="ip"),
    pytest.param("var(txn.s) -m reg (", "regex '(' is invalid", id="regex"),
    pytest.param("var(txn.s) -m bin abc", "'abc' is not a valid hex string.", id="hex"),
    pytest.param("nope_fetch x", "unknown fetch method 'nope_fetch'", id="fetch"),
    pytest.param("var(txn.s) -m", "'-m' expects an argument", id="m-without-arg"),
    pytest.param("", "missing", id="empty"),
])
def test_acl_errors(words, message):
    with pytest.raises(ExpressionError) as err:
        parse_acl_expr(words.split(" ") if words else [])
    assert message in str(err.value)


REQ = SampleSource(
    client=(IPv4Address("127.0.0.1"), 5000),
    request=RequestInfo("GET", "/api/v1/x.json?q=1", "HTTP/1.1", [
        ("Host", "App1.Example.com"), ("X-List", "a, b"), ("x-list", "c"),
        ("Cookie", "a=1; b=2; a=3"), ("Content-Length", "0")]),
)


@pytest.mark.parametrize(("words", "expected"), [
    pytest.param("hdr_beg(host) -i app1.", True, id="hdr_beg"),
    pytest.param("hdr_beg(host) app1.", False, id="hdr_beg-case"),
    pytest.param("hdr_end(host) .com", True, id="hdr_end"),
    pytest.param("hdr_sub(host) -i example", True, id="hdr_sub"),
    pytest.param("hdr_dom(host) -i example", True, id="hdr_dom"),
    pytest.param("hdr_reg(host) ^App[0-9]", True, id="hdr_reg"),
    pytest.param("hdr_len(host) 16", True, id="hdr_len"),
    pytest.param("hdr(x-list) b", True, id="hdr-iterates-values"),
    pytest.param("hdr(x-list) c", True, id="hdr-iterates-occurrences"),
    pytest.param("req.hdr(x-list,1) b", False, id="hdr-explicit-occurrence"),
    pytest.param("req.hdr(x-list) -m found", True, id="hdr-found"),
    pytest.param("req.hdr(nope) -m found", False, id="hdr-not-found"),
    pytest.param("hdr_cnt(x-list) 3", True, id="hdr_cnt-default-int"),
    pytest.param("cook(a) 1", True, id="cook-iterates"),
    pytest.param("req.cook(a) 3", True, id="cook-last"),
    pytest.param("path_beg /api /v2", True, id="path_beg"),
    pytest.param("path_end .json", True, id="path_end"),
    pytest.param("path_dir v1", True, id="path_dir"),
    pytest.param("path_reg ^/api/v[0-9]+/", True, id="path_reg"),
    pytest.param("path_len gt 10", True, id="path_len"),
    pytest.param("path_sub /v1/", True, id="path_sub"),
    pytest.param("path /api/v1/x.json", True, id="path"),
    pytest.param("url_beg /api", True, id="url_beg"),
    pytest.param("url_sub ?q=", True, id="url_sub"),
    pytest.param("urlp(q) 1", True, id="urlp"),
    pytest.param("urlp_reg(q) ^[0-9]$", True, id="urlp_reg"),
    pytest.param("method GET HEAD", True, id="method"),
    pytest.param("method POST", False, id="method-other"),
    pytest.param("method get", False, id="method-case"),
    pytest.param("method -i get", False, id="method-icase-ignored-for-known"),
    pytest.param("method -m str -i get", True, id="method-as-string"),
    pytest.param("req.ver 1.1", True, id="req.ver"),
    pytest.param("src 127.0.0.0/8", True, id="src-default-ip"),
    pytest.param("src_port 5000", True, id="src_port-default-int"),
    pytest.param("path,upper -m beg /API", True, id="converter-then-method"),
    # a converter after an ACL keyword drops its method: exact match (observed on 2.6)
    pytest.param("path_beg,upper /API", False, id="acl-keyword-with-converter"),
    pytest.param("path_beg,upper /API/V1/X.JSON", True, id="acl-keyword-converter-str"),
    # after an ACL keyword the next words are patterns, even "upper" and "-m"
    pytest.param("path upper -m beg /API", False, id="acl-keyword-no-next-word-converter"),
    pytest.param("path upper -m beg /api/v1/x.json", True, id="acl-keyword-words-are-patterns"),
    # after a plain fetch, a converter name in the next word continues the chain
    pytest.param("req.hdr(host) lower -m beg app1", True, id="fetch-next-word-converter"),
    pytest.param("req.hdr(host),lower app1.example.com", True, id="converter-default-str"),
    pytest.param("always_true", True, id="always_true"),
    pytest.param("always_false", False, id="always_false"),
])
def test_acl_keywords(words, expected):
    assert parse_acl_expr(words.split()).evaluate(EvalContext(REQ)) is expected


@pytest.mark.parametrize(("method", "words", "expected"), [
    pytest.param("PURGE", "method PURGE", True, id="other"),
    pytest.param("PURGE", "method -i purge", True, id="other-icase"),
    pytest.param("PURGE", "method purge", False, id="other-case"),
    pytest.param("purge", "method GET", False, id="other-vs-known"),
    pytest.param("get", "method GET", False, id="lowercase-get-is-other"),
])
def test_method_matching(method, words, expected):
    ctx = EvalContext(SampleSource(request=RequestInfo(method, "/")))
    assert parse_acl_expr(words.split()).evaluate(ctx) is expected


def test_named_acl_lines_are_ored_and_late_lines_count():
    acls = AclRegistry()
    first = acls.add("x", ["path_beg", "/nope"])
    ctx = EvalContext(REQ)
    assert first.evaluate(ctx) is False
    acls.add("x", ["path_end", ".json"])
    assert first.evaluate(ctx) is True
    assert acls.names == ("x",)


@pytest.mark.parametrize(("name", "message"), [
    pytest.param("bad name", "invalid character ' ' in ACL name", id="space"),
    pytest.param("or", "acl name 'or' will never match", id="or"),
    pytest.param("", "missing ACL name", id="empty"),
])
def test_acl_name_errors(name, message):
    with pytest.raises(ExpressionError, match=message):
        AclRegistry().add(name, ["always_true"])


PREDEFINED = SampleSource(
    client=(IPv6Address("::1"), 1),
    request=RequestInfo("GET", "http://h/x", "HTTP/1.0", [("Content-Length", "3")]),
    req_payload=b"abc",
)


@pytest.mark.parametrize(("name", "expected"), [
    pytest.param("TRUE", True, id="TRUE"),
    pytest.param("FALSE", False, id="FALSE"),
    pytest.param("HTTP", True, id="HTTP"),
    pytest.param("HTTP_1.0", True, id="HTTP_1.0"),
    pytest.param("HTTP_1.1", False, id="HTTP_1.1"),
    pytest.param("HTTP_2.0", False, id="HTTP_2.0"),
    pytest.param("HTTP_CONTENT", True, id="HTTP_CONTENT"),
    pytest.param("HTTP_URL_ABS", True, id="HTTP_URL_ABS"),
    pytest.param("HTTP_URL_SLASH", False, id="HTTP_URL_SLASH"),
    pytest.param("HTTP_URL_STAR", False, id="HTTP_URL_STAR"),
    pytest.param("LOCALHOST", True, id="LOCALHOST"),
    pytest.param("METH_GET", True, id="METH_GET"),
    pytest.param("METH_HEAD", False, id="METH_HEAD"),
    pytest.param("METH_POST", False, id="METH_POST"),
    pytest.param("METH_PUT", False, id="METH_PUT"),
    pytest.param("METH_DELETE", False, id="METH_DELETE"),
    pytest.param("METH_OPTIONS", False, id="METH_OPTIONS"),
    pytest.param("METH_TRACE", False, id="METH_TRACE"),
    pytest.param("METH_CONNECT", False, id="METH_CONNECT"),
    pytest.param("REQ_CONTENT", True, id="REQ_CONTENT"),
])
def test_predefined(name, expected):
    acl = AclRegistry().get(name)
    assert acl is not None and acl.evaluate(EvalContext(PREDEFINED)) is expected


def test_every_predefined_acl_parses():
    acls = AclRegistry()
    for name in PREDEFINED_ACLS:
        assert name in acls
    rdp = acls.get("RDP_COOKIE")
    with pytest.raises(ExpressionError, match="not implemented"):
        rdp.evaluate(EvalContext(PREDEFINED))


def test_user_acl_overrides_predefined():
    acls = AclRegistry()
    acls.add("TRUE", ["always_false"])
    assert acls.get("TRUE").evaluate(EvalContext(PREDEFINED)) is False


def test_pattern_file(tmp_path):
    (tmp_path / "ips.lst").write_text("# comment\n  10.0.0.0/8\n\t192.168.1.1\n\n::1\n")
    (tmp_path / "words.lst").write_text("  exact\ntrailing \n#exact2\n #kept\r\n")
    expr = parse_acl_expr(["src", "-f", "ips.lst"], base_dir=str(tmp_path))
    assert [p.text for p in expr.patterns] == ["10.0.0.0/8", "192.168.1.1", "::1"]
    words = parse_acl_expr(["var(txn.s)", "-m", "str", "-f", "words.lst"],
                           base_dir=str(tmp_path))
    # '#' is a comment only in column 0; leading blanks go, trailing ones stay; CR ends a line
    assert [p.text for p in words.patterns] == ["exact", "trailing ", "#kept"]


def test_pattern_file_with_a_bad_ip(tmp_path):
    (tmp_path / "ips.lst").write_text(" # not a comment: a pattern\n")
    with pytest.raises(ExpressionError, match="is not a valid IPv4 or IPv6 address"):
        parse_acl_expr(["src", "-f", "ips.lst"], base_dir=str(tmp_path))


def test_pattern_files_and_words_combine(tmp_path):
    (tmp_path / "a.lst").write_text("10.0.0.0/8\n")
    expr = parse_acl_expr(["src", "-f", str(tmp_path / "a.lst"), "-n", "127.0.0.1"])
    ctx = EvalContext(SampleSource(client=(IPv4Address("127.0.0.1"), 1)))
    assert [p.text for p in expr.patterns] == ["10.0.0.0/8", "127.0.0.1"]
    assert expr.evaluate(ctx) is True


def test_icase_applies_to_later_files_and_words(tmp_path):
    (tmp_path / "a.lst").write_text("ABC\n")
    ctx = EvalContext(StaticSamples(), {"txn.s": "abc"})
    before = parse_acl_expr(["var(txn.s)", "-m", "str", "-f", "a.lst", "-i", "x"],
                            base_dir=str(tmp_path))
    after = parse_acl_expr(["var(txn.s)", "-m", "str", "-i", "-f", "a.lst"],
                           base_dir=str(tmp_path))
    assert (before.evaluate(ctx), after.evaluate(ctx)) == (False, True)


def test_missing_pattern_file(tmp_path):
    with pytest.raises(ExpressionError, match=r"failed to open pattern file <nope\.lst>"):
        parse_acl_expr(["src", "-f", "nope.lst"], base_dir=str(tmp_path))


def test_m_after_patterns_is_an_error(tmp_path):
    (tmp_path / "a.lst").write_text("x\n")
    with pytest.raises(ExpressionError, match="'-m' must only be specified before"):
        parse_acl_expr(["var(txn.s)", "-f", "a.lst", "-m", "str"], base_dir=str(tmp_path))
