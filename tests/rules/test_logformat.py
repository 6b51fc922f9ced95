"""Log-format strings (configuration.txt §8.2.6 "Custom log format") as HAProxy 2.6 renders them
in HTTP rules (set-header, redirect, return lf-string, hdr): %[expr], %%, %{+E} and the %X
variables; NULL and empty samples, each type, the http_encode_map; parse errors; and, when
haproxy is installed, the same strings rendered by haproxy itself (``return lf-string``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from ipaddress import IPv4Address

import pytest

from spoe_sync.errors import ExpressionError
from spoe_sync.rules import EvalContext, StaticSamples, parse_logformat
from tests.kit import read_until_eof


class _Vars(dict):
    def get(self, name, default=None):
        return dict.get(self, name, default)


VARS = _Vars({"txn.i": 42, "txn.neg": -5, "txn.b": True, "txn.bf": False, "txn.e": "",
              "txn.bin": b"AB\x00C", "txn.hi": b"A\xffB", "txn.ip": IPv4Address("10.1.2.3"),
              "txn.crlf": "a\r\nb", "txn.tab": "a\tb", "txn.q": 'a"b]c\\d'})
SAMPLES = StaticSamples({"src": IPv4Address("127.0.0.1"), "src_port": 4242,
                         "url": "/a%20b?x=1", "path": "/a%20b", "method": "GET"})

CASES = [
    ("null=[%[var(txn.nope)]]", "null=[]"),
    ("empty=[%[var(txn.e)]]", "empty=[]"),
    ("int=%[var(txn.i)] neg=%[var(txn.neg)]", "int=42 neg=-5"),
    ("bool=%[var(txn.b)]%[var(txn.bf)]", "bool=10"),
    ("bin=[%[var(txn.bin)]]", "bin=[AB]"),
    ("hi=[%[var(txn.hi)]]", "hi=[A\xffB]"),
    ("ip=%[var(txn.ip)]", "ip=10.1.2.3"),
    ("crlf=%[var(txn.crlf)] tab=%[var(txn.tab)]", "crlf=a%0D%0Ab tab=a\tb"),
    ("pct=%% literal=100%%", "pct=% literal=100%"),
    ("esc=%{+E}[var(txn.q)]", 'esc=a\\"b\\]c\\\\d'),
    ("q=%{+Q}[var(txn.i)]", "q=42"),
    ("conv=%[var(txn.i),add(1)] %[str(abc),upper]", "conv=43 ABC"),
    ("url=/altcha?url=%[url]", "url=/altcha?url=/a%20b?x=1"),
    ("vars=%ci:%cp %HM %HU", "vars=127.0.0.1:4242 GET /a%20b?x=1"),
    ("utf8=%[str(é)]", "utf8=\xc3\xa9"),
    ("", ""),
]


@pytest.mark.parametrize(("fmt", "expected"), [pytest.param(f, e, id=f or "empty")
                                               for f, e in CASES])
def test_render(fmt, expected):
    compiled = parse_logformat(fmt)
    assert compiled.render(EvalContext(SAMPLES, VARS)) == expected
    assert compiled.render_bytes(EvalContext(SAMPLES, VARS)) == expected.encode("latin-1")


def test_log_line_rendering():
    fmt = parse_logformat("%[var(txn.nope)] %{+Q}[var(txn.i)] %{+X}[var(txn.ip)] %[var(txn.e)]",
                          http=False)
    assert fmt.render(EvalContext(SAMPLES, VARS)) == '- "42" 0A010203 -'


def test_static_and_var_refs():
    assert parse_logformat("a%%b").is_static
    fmt = parse_logformat("%[var(txn.a)]-%[var(sess.b),lower]")
    assert not fmt.is_static and fmt.var_refs == ("txn.a", "sess.b")


@pytest.mark.parametrize(("fmt", "message"), [
    pytest.param("%[nosuch]", "unknown fetch method 'nosuch'", id="unknown-fetch"),
    pytest.param("%[src,nosuch]", "unknown converter 'nosuch'", id="unknown-converter"),
    pytest.param("%[src", "missing ']'", id="missing-bracket"),
    pytest.param("%[]", "empty sample expression", id="empty-expr"),
    pytest.param("100%", "no such format variable", id="lone-percent"),
    pytest.param("%zz", "no such format variable 'zz'", id="unknown-variable"),
    pytest.param("%{+Z}[src]", "unknown flag 'Z'", id="unknown-flag"),
    pytest.param("%{+Q[src]", "missing '}'", id="missing-brace"),
])
def test_errors(fmt, message):
    with pytest.raises(ExpressionError) as err:
        parse_logformat(fmt)
    assert message in str(err.value)


def test_fetch_unavailable_at_point():
    with pytest.raises(ExpressionError, match="may not be reliably used here"):
        parse_logformat("%[res.hdr(x)]", point="http-request")
    assert parse_logformat("%[res.hdr(x)]", point="http-response").exprs[0].fetch == "res.hdr"


HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                      if os.path.exists("/usr/sbin/haproxy") else None)


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
@pytest.mark.timeout(30)
def test_same_as_haproxy(tmp_path):
    """The literal/var cases rendered by haproxy 2.6 (``return lf-string``) over a unix socket."""
    cases = [(f, e) for f, e in CASES if f and "%c" not in f and "%H" not in f and "url" not in f
             and "txn.q" not in f]
    sets = ["http-request set-var(txn.i) int(42)", "http-request set-var(txn.neg) int(-5)",
            "http-request set-var(txn.b) bool(1)", "http-request set-var(txn.bf) bool(0)",
            "http-request set-var(txn.e) str()", "http-request set-var(txn.bin) bin(41420043)",
            "http-request set-var(txn.hi) bin(41ff42)", "http-request set-var(txn.ip) ipv4(10.1.2.3)",
            r"http-request set-var(txn.crlf) str(a\r\nb)", r"http-request set-var(txn.tab) str(a\tb)"]
    sock_path = tmp_path / "h.sock"
    lines = ["defaults", "  mode http", "  timeout client 5s", "  timeout server 5s",
             "  timeout connect 5s", "frontend fe", f"  bind unix@{sock_path}"]
    lines += [f"  {s}" for s in sets]
    for i, (fmt, _) in enumerate(cases):
        lines.append(f'  http-request return status 200 content-type text/plain lf-string "{fmt}"'
                     f" if {{ path /{i} }}")
    cfg = tmp_path / "h.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not sock_path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        for i, (fmt, _) in enumerate(cases):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(sock_path))
                s.sendall(f"GET /{i} HTTP/1.0\r\n\r\n".encode())
                data = read_until_eof(s, timeout=5)
            body = data.split(b"\r\n\r\n", 1)[1]
            assert body == parse_logformat(fmt).render_bytes(EvalContext(SAMPLES, VARS)), fmt
    finally:
        proc.terminate()
        proc.wait(timeout=5)
