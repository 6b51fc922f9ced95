"""A ModSecurity v3 SPOA with the OWASP Core Rule Set, on the PyPI agent library ``spoe-forge``.

It is the shape of HAProxy's historical ``contrib/modsecurity`` agent: the message
``check-request`` carries ``unique-id method path query req.ver req.hdrs_bin req.body_size
req.body``, the agent runs a ModSecurity transaction (libmodsecurity from PyPI, the rules of
Debian's ``modsecurity-crs``) and answers ``set-var(txn.<prefix>.code)``: the HTTP status
ModSecurity asks for, 0 when the request may pass.  Nothing of spoe_sync is imported: it is a
third-party agent, run by the interop interpreter (Python 3.12, asyncio).

    python waf_agent.py PORT RECORD_FILE

Every NOTIFY is appended to RECORD_FILE as one JSON line (the arguments as the agent decoded
them, keyed by the request's ``x-case`` header), so that tests can compare what two engines sent.
"""

from __future__ import annotations

import base64
import glob
import json
import sys

from libmodsecurity import ModSecurity, RulesSet, Transaction
from spoe_forge import ActionScope, SetVarAction, SpoeForge

CRS_SETUP = "/etc/modsecurity/crs/crs-setup.conf"
CRS_RULES = "/usr/share/modsecurity-crs/rules"
# ModSecurity's recommended base (modsecurity.conf-recommended), trimmed to what a request
# check needs: the engine on, request bodies read, XML and JSON bodies parsed.
BASE = r"""SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 131072
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction ProcessPartial
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
"""


def load_rules() -> RulesSet:
    # 910 (IP reputation) needs GeoIP, which the PyPI build of libmodsecurity leaves out.
    files = [CRS_SETUP] + [p for p in sorted(glob.glob(f"{CRS_RULES}/*.conf")) if "-910-" not in p]
    rules = RulesSet()
    if rules.load(BASE + "".join(f"Include {p}\n" for p in files)) < 0:
        raise SystemExit(f"ModSecurity rules: {rules.get_parser_error()}")
    return rules


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = buf[pos]
    pos += 1
    if value < 240:
        return value, pos
    shift = 4
    while True:
        b = buf[pos]
        pos += 1
        value += b << shift
        shift += 7
        if b < 128:
            return value, pos


def headers_of(block: bytes) -> list[tuple[str, str]]:
    """``req.hdrs_bin``: varint-prefixed name/value pairs ended by two empty strings."""
    out, pos = [], 0
    while pos < len(block):
        n, pos = read_varint(block, pos)
        name = block[pos:pos + n]
        pos += n
        n, pos = read_varint(block, pos)
        value = block[pos:pos + n]
        pos += n
        if not name:
            break
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    return out


def jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def main() -> None:
    port, record = int(sys.argv[1]), sys.argv[2]
    modsec = ModSecurity()
    modsec.set_log_callback(lambda _line: None)  # the verdict is what matters, not the log
    rules = load_rules()
    # spoe-forge offers 4 KiB frames by default: too small for request bodies, so take HAProxy's
    # default (tune.bufsize - 4); a larger NOTIFY fails with status 3 (too big) on both engines.
    agent = SpoeForge(name="modsecurity", max_frame_size=16380)

    @agent.message("check-request")
    def check(ctx):  # type: ignore[no-untyped-def]
        args = ctx.get_args()
        headers = headers_of(args.get("req.hdrs_bin") or b"")
        case = next((v for k, v in headers if k.lower() == "x-case"), "")
        with open(record, "a") as out:
            out.write(json.dumps({"case": case,
                                  "args": {k: jsonable(v) for k, v in args.items()}}) + "\n")
        path, query = args.get("path") or "/", args.get("query")
        uri = path + ("?" + query if query is not None else "")
        tx = Transaction(modsec, rules)
        tx.process_connection("192.0.2.1", 40000, "127.0.0.1", 80)
        tx.process_uri(uri, args.get("method") or "GET", str(args.get("req.ver") or "1.1"))
        for name, value in headers:
            tx.add_request_header(name, value)
        tx.process_request_headers()
        verdict = tx.intervention()
        if verdict is None or not verdict.disruptive:
            tx.append_request_body(args.get("req.body") or b"")
            tx.process_request_body()
            verdict = tx.intervention()
        code = verdict.status if verdict is not None and verdict.disruptive else 0
        return [SetVarAction(scope=ActionScope.TRANSACTION, name="code", value=code)]

    agent.run("127.0.0.1", port)


if __name__ == "__main__":
    main()
