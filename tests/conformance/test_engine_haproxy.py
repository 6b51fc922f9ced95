"""The Engine against HAProxy 2.6 (SPOE.txt §4 "Logging", §3.4 "Actions", §3.5
"Errors & timeouts"; docs/explanation/haproxy-behaviour.md §3.5, §5, §6): for the same SPOE
file and the same agent behaviour (success, processing timeout, the agent closing
the connection), HAProxy's SPOE log line and spoe_sync's agree field by field
(status, kind and name, which timings are -1, counters), and the variables the
agent sets read back the same."""

from __future__ import annotations

import time
from ipaddress import IPv4Address

import pytest

from spoe_sync.samples import StaticSamples
from tests.kit import free_port, make_engine

from . import cfgkit
from .cfgkit import spoe_line_fields, udp_receiver
from .harness import (
    RecordingAgent,
    agent_hello,
    http_request,
    run_haproxy,
    set_var_action,
    spop_string,
    varint,
)

EVENT = "on-frontend-http-request"
TXN = 2


def spoe_conf(log_port: int, processing: str) -> str:
    return f"""\
[e]
spoe-agent iprep
    messages check-ip
    option var-prefix iprep
    timeout hello 2s
    timeout idle 30s
    timeout processing {processing}
    use-backend agents
    log 127.0.0.1:{log_port} format raw local0 info
spoe-message check-ip
    args ip=src
    event {EVENT}
"""


def haproxy_cfg(http_port: int, agent_port: int) -> str:
    return cfgkit.haproxy_cfg(
        http_port, "filter spoe engine e config spoe.conf",
        'http-request return status 200 content-type text/plain lf-string '
        '"score=%[var(txn.iprep.ip_score)] who=%[var(txn.iprep.who)]"',
        agent_port=agent_port)


def _success(_frame) -> bytes:
    return (set_var_action(TXN, "ip_score", b"\x04" + varint(42))
            + set_var_action(TXN, "who", b"\x08" + spop_string("bob")))


def _slow(_frame) -> bytes:
    time.sleep(0.4)
    return b""


def _close(_frame) -> bytes:
    raise OSError("scripted close")  # the harness closes the connection, sends nothing


# (ACK payload, timeout processing, agent capabilities).  The agent closing is
# compared without async: HAProxy 2.6 then keeps async frames waiting for an ACK
# from another connection until they time out (st=1), where the pool fails them
# at once with 257 when no other async connection is left.
BEHAVIOURS = {"success": (_success, "2s", "pipelining,async"),
              "timeout": (_slow, "100ms", "pipelining,async"),
              "close": (_close, "2s", "pipelining")}


def _haproxy_run(haproxy_bin, tmp_path, behaviour: str) -> tuple[dict[str, str], str]:
    handler, processing, capabilities = BEHAVIOURS[behaviour]
    with RecordingAgent(hello=agent_hello(capabilities=capabilities)) as agent, \
            udp_receiver() as logs:
        agent.ack_payload = handler
        port = free_port()
        conf = spoe_conf(logs.getsockname()[1], processing)
        with run_haproxy(haproxy_bin, haproxy_cfg(port, agent.port), tmp_path / "haproxy",
                         files={"spoe.conf": conf}, ready_port=port):
            body = http_request(port).body.decode()
            return spoe_line_fields(logs.recv(65536)), body


def _spoe_sync_run(tmp_path, behaviour: str) -> tuple[dict[str, str], object]:
    handler, processing, capabilities = BEHAVIOURS[behaviour]
    with RecordingAgent(hello=agent_hello(capabilities=capabilities)) as agent, \
            udp_receiver() as logs:
        agent.ack_payload = handler
        with make_engine(spoe_conf(logs.getsockname()[1], processing), "e",
                         agent.address) as engine:
            stream = engine.new_stream(StaticSamples({"src": IPv4Address("127.0.0.1")}))
            result = engine.process_event(stream, EVENT)
            fields = spoe_line_fields(logs.recv(65536))
            assert int(result.status) == int(fields["st"])
            return fields, stream


def _shape(timings: str) -> list[bool]:
    """Which of reqT/qT/wT/resT/pT were reached (not -1)."""
    return [int(x) >= 0 for x in timings.split("/")]


@pytest.mark.parametrize(("behaviour", "status"), [
    pytest.param("success", 0, id="success"),
    pytest.param("timeout", 1, id="timeout"),
    pytest.param("close", 257, id="agent-closes"),
])
def test_log_line_agrees_with_haproxy(haproxy_bin, tmp_path, behaviour, status):
    theirs, body = _haproxy_run(haproxy_bin, tmp_path, behaviour)
    ours, stream = _spoe_sync_run(tmp_path, behaviour)
    assert int(theirs["st"]) == status
    for key in ("agent", "kind", "name", "st"):
        assert ours[key] == theirs[key], key
    assert _shape(ours["t"]) == _shape(theirs["t"]), (ours["t"], theirs["t"])
    for key in ("applets", "idles", "sending", "waiting", "errors", "processed"):
        assert ours[key] == theirs[key], (key, ours, theirs)
    if behaviour == "timeout":
        assert abs(int(ours["t"].split("/")[-1]) - int(theirs["t"].split("/")[-1])) < 60
    # what the agent set reads back the same way (HAProxy prints '' for unset)
    score = stream.vars.get("txn.iprep.ip_score")
    who = stream.vars.get("txn.iprep.who")
    assert body == f"score={'' if score is None else score} who={who or ''}"


def test_nothing_to_send_and_the_counters(haproxy_bin, tmp_path):
    """A request whose message condition is false sends nothing and logs nothing,
    in both; the next processing's nb_processed tells whether it was counted."""
    def conf(log_port: int) -> str:
        return spoe_conf(log_port, "2s").replace(
            f"    event {EVENT}\n", f"    event {EVENT} if {{ req.hdr(x-send) -m found }}\n")

    with RecordingAgent() as agent, udp_receiver() as logs:
        port = free_port()
        with run_haproxy(haproxy_bin, haproxy_cfg(port, agent.port), tmp_path / "haproxy",
                         files={"spoe.conf": conf(logs.getsockname()[1])}, ready_port=port):
            http_request(port)
            http_request(port, headers=[("Host", "x"), ("X-Send", "1")])
            theirs = spoe_line_fields(logs.recv(65536))
        assert len(agent.of_type(3)) == 1
    with RecordingAgent() as agent, udp_receiver() as logs:
        with make_engine(conf(logs.getsockname()[1]), "e", agent.address) as engine:
            skipped = engine.process_event(engine.new_stream(StaticSamples({})), EVENT)
            assert skipped.skipped
            engine.process_event(engine.new_stream(StaticSamples({"req.hdr(x-send)": "1"})), EVENT)
        ours = spoe_line_fields(logs.recv(65536))
    assert (ours["errors"], ours["processed"]) == (theirs["errors"], theirs["processed"])
