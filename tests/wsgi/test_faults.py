"""Bad input around SpoeMiddleware (issue 7 "Bad input"; SPOE.txt §2.2 "set-on-error"): an
agent that is down or stalls (requests still served or denied by the rules, never hung),
malformed rules and ACLs refused at construction with the rule text, and the stats endpoint
(Prometheus text format)."""

from __future__ import annotations

import re
import time

import pytest

from spoe_sync.errors import ConfigError
from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware
from tests.kit import closed_address

from .support import CONF, echo_app, example_handler, get, parse_echo, serve


@pytest.mark.parametrize("fail_closed", [pytest.param(False, id="fail-open"),
                                         pytest.param(True, id="fail-closed")])
def test_agent_down(fail_closed):
    rules = ["deny deny_status 500 if { var(txn.test.error) -m int gt 0 }"] if fail_closed else []
    mw = SpoeMiddleware(echo_app, CONF, "test", {"agents": [closed_address()]},
                        http_request=rules)
    try:
        with serve(mw) as port:
            start = time.monotonic()
            r = get(port, "/")
            elapsed = time.monotonic() - start
    finally:
        mw.close(timeout=1)
    assert elapsed < 3.0  # timeout processing is 300ms; generous for a loaded CI machine
    if fail_closed:
        assert r.status == 500
    else:
        seen = parse_echo(r.body)
        assert r.status == 200 and int(seen["txn.test.error"]) > 0


@pytest.mark.parametrize("fault", ["stall", "silent", "garbage", "close"])
def test_misbehaving_agent_never_hangs_a_request(fault):
    with FakeAgent({"*": example_handler}, fault=fault) as agent:
        mw = SpoeMiddleware(echo_app, CONF, "test", {"agents": [agent.address]})
        try:
            with serve(mw) as port:
                start = time.monotonic()
                r = get(port, "/")
                elapsed = time.monotonic() - start
        finally:
            mw.close(timeout=1)
    assert r.status == 200 and elapsed < 3.0  # processing 300ms; slack for a loaded CI
    assert parse_echo(r.body)["txn.test.error"] != "None"


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"http_request": ["frob"]}, "but got 'frob'", id="unknown-action"),
    pytest.param({"http_request": ["deny deny_status 999"]}, "Unexpected status code '999'",
                 id="bad-status"),
    pytest.param({"http_request": ["return status 200 string x"]},
                 "a content type must be defined", id="return-without-content-type"),
    pytest.param({"http_request": ["set-var(foo.a) str(a)"]}, "invalid variable name 'foo.a'",
                 id="bad-scope"),
    pytest.param({"http_request": ["set-var(txn.a) res.hdr(x)"]}, "fetch method 'res.hdr'",
                 id="response-fetch-in-request"),
    pytest.param({"http_request": ["deny if nosuch"]}, "no such ACL : 'nosuch'",
                 id="unknown-acl"),
    pytest.param({"http_request": ["deny foo"]}, "expects either 'if' or 'unless'",
                 id="junk-after-action"),
    pytest.param({"http_request": ["set-header X %[nosuch]"]}, "unknown fetch method 'nosuch'",
                 id="bad-log-format"),
    pytest.param({"http_request": ["redirect location /x code 304"]},
                 "unsupported HTTP code '304'", id="bad-redirect-code"),
    pytest.param({"http_response": ["tarpit"]}, "but got 'tarpit'", id="tarpit-in-response"),
    pytest.param({"http_after_response": ["deny"]}, "but got 'deny'", id="deny-after-response"),
    pytest.param({"http_request": ['deny if { hdr(x) -m str "a }']}, "unmatched quote",
                 id="unmatched-quote"),
    pytest.param({"acls": ["bad hdr(x) -m nosuch a"]}, "acl 'bad'", id="bad-acl"),
])
def test_malformed_rules_fail_at_construction(agent, kwargs, message):
    with pytest.raises(ConfigError) as err:
        SpoeMiddleware(echo_app, CONF, "test", {"agents": [agent.address]}, **kwargs)
    assert message in str(err.value)
    assert agent.connections == 0


def test_named_acls(make_mw):
    mw = make_mw(acls=["is_denied var(txn.test.action) -m str deny",
                       "is_denied var(txn.test.action) -m str block"],
                 http_request=["deny if is_denied"])
    with serve(mw) as port:
        assert [get(port, "/", {"x-action": a}).status for a in ("deny", "block", "ok")] == \
            [403, 403, 200]


def test_stats_endpoint(make_mw):
    mw = make_mw(stats_path="/spoe-stats", http_request=["send-spoe-group test grp-path"])
    with serve(mw) as port:
        for _ in range(3):
            assert get(port, "/").status == 200
        r = get(port, "/spoe-stats")
    text = r.body.decode()
    assert r.status == 200 and r.header("content-type").startswith("text/plain")
    processed = mw.engines[0].metrics().nb_processed
    # 3 requests: on-client-session, on-frontend-http-request, the group, on-http-response;
    # the scrape itself goes through the request events and rules before it is answered
    # (its on-http-response comes after the counters were read)
    found = re.search(r'spoe_processed_total\{agent="test-agent",engine="test"\} (\d+)\.0', text)
    assert found and 12 <= int(found.group(1)) < processed
    assert 'spoe_applets{agent="test-agent",engine="test"} 1.0' in text
    assert ('spoe_processing_seconds_count{engine="test",kind="group",name="grp-path",'
            'status="0"} 4.0') in text  # the scrape's own group included


def test_unknown_backend_fails_at_construction():
    with pytest.raises(ConfigError, match="agents"):
        SpoeMiddleware(echo_app, CONF, "test", {"elsewhere": ["127.0.0.1:1"]})
