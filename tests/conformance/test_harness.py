"""The harness itself against HAProxy 2.6: a default SPOE set-up sends a HELLO and
one NOTIFY per request, and the recording agent's ACK reaches HAProxy
(SPOE.txt §3.2.3 workflow; golden capture a_default)."""

from __future__ import annotations

from tests.kit import free_port

from .harness import ACK, HAPROXY_HELLO, NOTIFY, http_request, run_haproxy, set_var_action

SPOE_CONF = """\
[conf]
spoe-agent conf
    messages check-client-ip
    option var-prefix conf
    option set-on-error err
    timeout hello 2s
    timeout idle 30s
    timeout processing 2s
    use-backend agents
    log global

spoe-message check-client-ip
    args ip=src
    event on-frontend-http-request
"""


def haproxy_cfg(http_port: int, agent_port: int) -> str:
    return f"""\
global
    nbthread 1
    log stdout format raw local0 info
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{http_port}
    filter spoe engine conf config spoe.conf
    http-request return status 200 content-type text/plain lf-string "score=%[var(sess.conf.score)] err=%[var(txn.conf.err)]"
backend agents
    mode tcp
    server a1 127.0.0.1:{agent_port}
"""


def test_haproxy_talks_to_the_recording_agent(haproxy_bin, recording_agent, tmp_path):
    recording_agent.ack_payload = lambda _f: set_var_action(1, "score", b"\x03" + bytes([42]))
    port = free_port()
    with run_haproxy(haproxy_bin, haproxy_cfg(port, recording_agent.port), tmp_path,
                     files={"spoe.conf": SPOE_CONF}, ready_port=port) as haproxy:
        response = http_request(port)
        assert response.status == 200
        assert response.body == b"score=42 err="
        hello = recording_agent.wait_for(HAPROXY_HELLO)[0]
        notify = recording_agent.wait_for(NOTIFY)[0]
        assert hello.data[9:11] == b"\x00\x00"
        assert notify.ids[1] == 1
        line = haproxy.wait_for_output("SPOE: [conf] <EVENT:on-frontend-http-request>")
        assert " st=0 " in line
    assert ACK not in {f.type for f in recording_agent.frames}  # ACKs are ours, never recorded
