"""``src`` under Flask's test client (issue 12): Werkzeug's test client sets ``REMOTE_ADDR``
and no ``REMOTE_PORT``; the agent must still get the client's address, and a deny rule on
``src`` must fire, through the real middleware and a real agent on 127.0.0.1."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from spoe_sync.protocol import SetVar, VarScope
from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware

flask = pytest.importorskip("flask")

CONF = """[t]
spoe-agent a
    messages check-client
    option var-prefix t
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend agents

spoe-message check-client
    args ip=src port=src_port
    event on-frontend-http-request
"""


def test_src_reaches_the_agent_and_the_deny_rule_without_remote_port():
    seen = []

    def check(message):
        seen.append(dict(message.args))
        return [SetVar(VarScope.TXN, "ip_seen", 1)] if dict(message.args)["ip"] else []

    app = flask.Flask("srcapp")

    @app.route("/")
    def index():
        return "ok"

    with FakeAgent({"check-client": check}) as agent:
        mw = SpoeMiddleware(app.wsgi_app, CONF, "t", {"agents": [agent.address]},
                            http_request=["deny deny_status 403 if { src 10.9.9.9 }",
                                          "deny deny_status 429 if !{ var(txn.t.ip_seen) -m found }"])
        app.wsgi_app = mw
        try:
            client = app.test_client()
            denied = client.get("/", environ_base={"REMOTE_ADDR": "10.9.9.9"})
            allowed = client.get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        finally:
            mw.close(timeout=1)
    assert denied.status_code == 403
    assert allowed.status_code == 200, allowed.data
    # the SPOE event comes before the http-request rules (as in HAProxy): both requests notify
    assert seen == [{"ip": IPv4Address("10.9.9.9"), "port": None},
                    {"ip": IPv4Address("127.0.0.1"), "port": None}]
