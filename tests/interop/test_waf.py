"""A real WAF behind spoe_sync: OWASP ModSecurity v3 (``libmodsecurity`` from PyPI) with the
OWASP Core Rule Set (Debian's ``modsecurity-crs``), as a SPOA on the PyPI library
``spoe-forge`` (``waf_agent.py``, nothing of spoe_sync in it).

The set-up is the one users copy from HAProxy's ModSecurity agent: a haproxy.cfg frontend with
``option http-buffer-request``, ``filter spoe``, and ``http-request deny if { var(txn.modsec.code)
-m int gt 0 }``, read by ``SpoeMiddleware.from_haproxy_cfg``.  A corpus of attacks (SQL
injection, XSS, LFI, RCE, PHP, shellshock, scanners; in the query, the headers and the body) and
of benign requests (forms, JSON, XML, cookies) must be blocked and passed as the CRS decides, and,
with HAProxy 2.6 installed, exactly as HAProxy 2.6 in front of the same agent decides, the agent
seeing the same arguments from both.

Opt-in like the other interop tests: ``SPOE_SYNC_INTEROP_PYTHON`` names an interpreter with
``spoe-forge`` and ``libmodsecurity`` (``tox -e interop``); the CRS must be installed
(``apt-get install modsecurity-crs``).  With ``SPOE_SYNC_REQUIRE_WAF=1`` (set by ``.ci/run``) a
missing piece of the interop environment fails instead of skipping.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gevent import socket as gsocket
from gevent.pywsgi import WSGIServer

from spoe_sync.wsgi import SpoeMiddleware, SpoeWSGIHandler
from tests.kit import free_port, read_until_eof, stop_process

from ..conformance.harness import run_haproxy
from ..conformance.rules_support import RawResponder, exchange

PYTHON = os.environ.get("SPOE_SYNC_INTEROP_PYTHON")
CRS = Path("/usr/share/modsecurity-crs/rules")
HERE = Path(__file__).parent

pytestmark = pytest.mark.timeout(120)


def _missing() -> str | None:
    if not CRS.is_dir():
        return "the OWASP CRS is not installed (apt-get install modsecurity-crs)"
    probe = subprocess.run([PYTHON, "-c", "import libmodsecurity, spoe_forge"],
                           capture_output=True, timeout=60)
    if probe.returncode:
        return f"{PYTHON} lacks libmodsecurity or spoe-forge"
    return None


@pytest.fixture(scope="module")
def waf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """``(port, record file)`` of the ModSecurity agent, in its own process, stopped by PID."""
    if not PYTHON:  # the suite's own environments: the interop environment runs these
        pytest.skip("SPOE_SYNC_INTEROP_PYTHON is not set")
    why = _missing()
    if why:
        if os.environ.get("SPOE_SYNC_REQUIRE_WAF") == "1":
            pytest.fail(f"SPOE_SYNC_REQUIRE_WAF=1 but {why}")
        pytest.skip(why)
    record = tmp_path_factory.mktemp("waf") / "notify.jsonl"
    port = free_port()
    proc = subprocess.Popen([str(PYTHON), str(HERE / "waf_agent.py"), str(port), str(record)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the WAF agent exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the WAF agent did not listen within 30 s")
                time.sleep(0.05)
        yield port, record
    finally:
        stop_process(proc, timeout=5)


SPOE_CONF = """\
[modsecurity]
spoe-agent modsecurity-agent
    messages check-request
    option var-prefix modsec
    option set-on-error error
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend spoe-modsecurity

spoe-message check-request
    args method=method path=path query=query req.ver=req.ver req.hdrs_bin=req.hdrs_bin req.body_size=req.body_size req.body=req.body
    event on-frontend-http-request
"""


def haproxy_cfg(port: int, app_port: int, agent_port: int) -> str:
    return f"""\
global
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend www
    bind 127.0.0.1:{port}
    option http-buffer-request
    filter spoe engine modsecurity config spoe-modsecurity.conf
    http-request deny deny_status 403 if {{ var(txn.modsec.code) -m int gt 0 }}
    http-request deny deny_status 500 if {{ var(txn.modsec.error) -m int gt 0 }}
    default_backend app
backend app
    server app1 127.0.0.1:{app_port}
backend spoe-modsecurity
    mode tcp
    server waf 127.0.0.1:{agent_port}
"""


UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
FORM = "application/x-www-form-urlencoded"

#: (case, method, target, extra headers, body, the status: 403 when the CRS at paranoia level 1
#: blocks, 200 when the request passes)
CORPUS: list[tuple[str, str, str, list[tuple[str, str]], bytes, int]] = [
    ("sqli-query", "GET", "/products?id=1%27%20OR%20%271%27%3D%271", [], b"", 403),
    ("sqli-union", "GET", "/search?q=1%20UNION%20SELECT%20username,password%20FROM%20users--",
     [], b"", 403),
    ("sqli-form", "POST", "/login", [("Content-Type", FORM)],
     b"user=admin%27%20OR%201%3D1--&pass=x", 403),
    ("sqli-json", "POST", "/api/login", [("Content-Type", "application/json")],
     b'{"user": "admin\' OR 1=1--", "pass": "x"}', 403),
    ("xss-query", "GET", "/?q=%3Cscript%3Ealert(1)%3C/script%3E", [], b"", 403),
    ("xss-form", "POST", "/comment", [("Content-Type", FORM)],
     b"comment=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E", 403),
    ("xss-xml", "POST", "/api/comment", [("Content-Type", "application/xml")],
     b"<c><t>&lt;script&gt;alert(document.cookie)&lt;/script&gt;</t></c>", 403),
    ("lfi-query", "GET", "/download?file=../../../../etc/passwd", [], b"", 403),
    ("lfi-form", "POST", "/download", [("Content-Type", FORM)], b"file=../../../../etc/passwd",
     403),
    ("rce-query", "GET", "/ping?host=127.0.0.1%3Bcat%20/etc/passwd", [], b"", 403),
    ("rce-form", "POST", "/ping", [("Content-Type", FORM)], b"host=127.0.0.1%3B%20cat%20/etc/passwd",
     403),
    ("php-wrapper", "GET", "/index.php?page=php://filter/convert.base64-encode/resource=index",
     [], b"", 403),
    ("php-form", "POST", "/eval", [("Content-Type", FORM)],
     b"code=%3C%3Fphp%20system(%24_GET%5B%27c%27%5D)%3B%20%3F%3E", 403),
    ("shellshock", "GET", "/cgi-bin/status",
     [("X-Debug", "() { :; }; /bin/bash -c 'cat /etc/passwd'")], b"", 403),
    ("scanner-ua", "GET", "/", [("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")], b"",
     403),
    ("java-form", "POST", "/upload", [("Content-Type", FORM)],
     b"data=java.lang.Runtime.getRuntime().exec(%22id%22)", 403),
    ("benign-root", "GET", "/", [], b"", 200),
    ("benign-query", "GET", "/index.html?lang=en&page=2&sort=price", [], b"", 200),
    ("benign-path", "GET", "/api/v1/users/42/orders", [], b"", 200),
    ("benign-cookie", "GET", "/account", [("Cookie", "session=abc123; theme=dark")], b"", 200),
    ("benign-form", "POST", "/comment", [("Content-Type", FORM)],
     b"name=alice&comment=hello+world%2C+nice+post", 200),
    ("benign-json", "POST", "/api/orders", [("Content-Type", "application/json")],
     b'{"name": "alice", "items": [1, 2, 3], "note": "deliver after 5pm"}', 200),
    ("benign-xml", "POST", "/api/orders", [("Content-Type", "application/xml")],
     b"<order><id>42</id><item>book</item></order>", 200),
    # the CRS's policy (920420): text/plain is not an allowed request content type
    ("policy-content-type", "POST", "/notes", [("Content-Type", "text/plain")],
     b"Meeting notes: ship the release on Friday.", 403),
    ("benign-large-form", "POST", "/survey", [("Content-Type", FORM)],
     b"&".join(b"q%d=answer+number+%d" % (i, i) for i in range(200)), 200),
    # a body past the buffer: the agent sees its first bytes, as many as HAProxy's buffer holds
    ("body-past-buffer", "POST", "/upload", [("Content-Type", FORM)], b"data=" + b"x" * 20000,
     200),
]


def raw_request(case: str, method: str, target: str, extra: list[tuple[str, str]],
                body: bytes) -> bytes:
    headers = [("Host", "shop.example"), ("User-Agent", UA), ("Accept", "*/*"), ("X-Case", case)]
    names = {k.lower() for k, _ in extra}
    headers = [h for h in headers if h[0].lower() not in names] + extra
    if body:
        headers.append(("Content-Length", str(len(body))))
    headers.append(("Connection", "close"))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


def _status(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1."), raw[:200]
    return int(raw.split(b" ", 2)[1])


def _records(record: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for line in record.read_text().splitlines():
        entry = json.loads(line)
        out[entry["case"]] = entry["args"]
    record.write_text("")
    return out


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _run_middleware(tmp_path: Path, agent_port: int) -> dict[str, int]:
    (tmp_path / "spoe-modsecurity.conf").write_text(SPOE_CONF)
    (tmp_path / "haproxy.cfg").write_text(haproxy_cfg(free_port(), free_port(), agent_port))
    app = SpoeMiddleware.from_haproxy_cfg(_app, tmp_path / "haproxy.cfg", frontend="www")
    server = WSGIServer(("127.0.0.1", 0), app, handler_class=SpoeWSGIHandler, log=None,
                        error_log=None)
    server.start()
    try:
        statuses = {}
        for case, method, target, extra, body, _expected in CORPUS:
            with gsocket.create_connection(("127.0.0.1", server.server_port), timeout=10) as s:
                statuses[case] = _status(exchange(s, raw_request(case, method, target, extra,
                                                                 body), 10))
        return statuses
    finally:
        server.stop(timeout=1)
        app.close()


def test_the_crs_blocks_attacks_and_passes_benign_requests_through_the_middleware(
        waf: tuple[int, Path], tmp_path: Path) -> None:
    agent_port, record = waf
    record.write_text("")
    statuses = _run_middleware(tmp_path, agent_port)
    expected = {case: status for case, *_, status in CORPUS}
    assert statuses == expected
    seen = _records(record)
    assert sorted(seen) == sorted(expected), "every request reached the agent once"
    # option http-buffer-request: the agent saw each body whole
    for case, _method, _target, _extra, body, _status in CORPUS:
        sent = seen[case]["req.body"]
        sent = base64.b64decode(sent["b64"]) if isinstance(sent, dict) else (sent or b"")
        assert seen[case]["req.body_size"] == len(body), case
        if len(body) < 15000:
            assert sent == body, case
        else:  # tune.bufsize (16384) less HAProxy's reserve and the request's head
            assert 8192 < len(sent) < 16384 and body.startswith(sent), case


def _haproxy_bin() -> str:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                       else None)
    if not path:
        if os.environ.get("SPOE_SYNC_REQUIRE_HAPROXY") == "1":
            pytest.fail("SPOE_SYNC_REQUIRE_HAPROXY=1 but haproxy is not installed")
        pytest.skip("haproxy is not installed")
    return path


@pytest.mark.conformance
def test_haproxy_and_the_middleware_decide_alike_and_send_the_same_arguments(
        waf: tuple[int, Path], tmp_path: Path) -> None:
    haproxy_bin = _haproxy_bin()
    agent_port, record = waf
    record.write_text("")
    (tmp_path / "ours").mkdir()
    ours = _run_middleware(tmp_path / "ours", agent_port)
    our_args = _records(record)
    port = free_port()
    with RawResponder() as backend, run_haproxy(
            haproxy_bin, haproxy_cfg(port, backend.port, agent_port), tmp_path / "haproxy",
            files={"spoe-modsecurity.conf": SPOE_CONF}, ready_port=port):
        theirs = {}
        for case, method, target, extra, body, _expected in CORPUS:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(raw_request(case, method, target, extra, body))
                data = read_until_eof(s)
            theirs[case] = _status(data)
    their_args = _records(record)
    # RawResponder answers 404 to every path it does not know: "passed" is "neither 403 nor 500"
    # (500: the fail-closed rule, when the check itself fails)
    assert ({c: s if s in (403, 500) else 200 for c, s in ours.items()}
            == {c: s if s in (403, 500) else 200 for c, s in theirs.items()})
    assert our_args == their_args
