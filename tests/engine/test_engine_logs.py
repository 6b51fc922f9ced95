"""Timings, counters and the SPOE log line of real processings (SPOE.txt §4 "Logging";
docs/explanation/haproxy-behaviour.md §3.5 counters, §5.4 timings, §6 logging): notice/warning,
dontlog-normal, the agent's `log` targets, no `log` line = no SPOE log."""

from __future__ import annotations

import socket

import pytest

from spoe_sync.testing import FakeAgent
from tests.kit import loguru_records

from ..conformance.cfgkit import SPOE_LINE_RE as LINE_RE
from .enginekit import EVENT, make_engine, samples


@pytest.fixture
def loguru_lines():
    with loguru_records() as lines:
        yield lines


def _recv(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None


def test_the_log_line_of_a_success(udp_receiver):
    port = udp_receiver.getsockname()[1]
    with FakeAgent() as agent, make_engine(agent.address, f"log 127.0.0.1:{port} local0 info") \
            as engine:
        stream = engine.new_stream(samples())
        ok = engine.process_event(stream, EVENT)
        first = _recv(udp_receiver)
    assert first is not None and first.startswith(b"<133>")  # local0.notice
    line = LINE_RE.search(first.decode().rstrip("\n"))
    assert line, first
    assert (line["agent"], line["kind"], line["name"], int(line["sid"]), int(line["st"])) == (
        "test-agent", "EVENT", EVENT, stream.id, 0)
    assert line["t"] == str(ok.timings)
    assert [int(line[k]) for k in ("applets", "sending", "waiting", "errors", "processed")] == [
        1, 0, 0, 0, 1]


def test_an_error_logs_at_warning_with_the_timings_it_reached(udp_receiver):
    port = udp_receiver.getsockname()[1]
    with FakeAgent(fault="silent") as agent, make_engine(
            agent.address, f"log 127.0.0.1:{port} local0 info", processing="100ms") as engine:
        stream = engine.new_stream(samples())
        result = engine.send_group(stream, "grp")
        datagram = _recv(udp_receiver)
    assert result.status == 1
    assert datagram is not None and datagram.startswith(b"<132>")  # local0.warning
    line = LINE_RE.search(datagram.decode().rstrip("\n"))
    assert line and line["kind"] == "GROUP" and line["name"] == "grp" and line["st"] == "1"
    req, q, w, res, p = (int(x) for x in line["t"].split("/"))
    assert req >= 0 and q >= 0 and (w, res) == (-1, -1) and p >= 90
    assert (line["errors"], line["processed"]) == ("1", "1")


@pytest.mark.parametrize(("options", "status", "logged"), [
    pytest.param((), 0, True, id="normal"),
    pytest.param(("option dontlog-normal",), 0, False, id="dontlog-normal-success"),
    pytest.param(("option dontlog-normal",), 1, True, id="dontlog-normal-error"),
])
def test_dontlog_normal_drops_only_successes(udp_receiver, options, status, logged):
    port = udp_receiver.getsockname()[1]
    fault = "silent" if status else None
    with FakeAgent(fault=fault) as agent, make_engine(
            agent.address, f"log 127.0.0.1:{port} format raw local0", *options,
            processing="100ms") as engine:
        result = engine.process_event(engine.new_stream(samples()), EVENT)
        assert int(result.status) == status
        udp_receiver.settimeout(0.3)
        datagram = _recv(udp_receiver)
    assert (datagram is not None) == logged
    if logged:
        assert LINE_RE.match(datagram.decode().rstrip("\n"))["st"] == str(status)


def test_no_log_line_means_no_spoe_log(loguru_lines):
    with FakeAgent() as agent, make_engine(agent.address) as engine:
        assert engine.process_event(engine.new_stream(samples()), EVENT).ok
    assert not [m for _, m in loguru_lines if m.startswith("SPOE: [test-agent] <")]


def test_log_global_goes_to_the_applications_loguru_sinks(loguru_lines):
    with FakeAgent(fault="close", fault_connections=1) as agent, make_engine(
            agent.address, "log global", "option continue-on-error") as engine:
        stream = engine.new_stream(samples())
        engine.process_event(stream, EVENT)
    spoe = [(level, m) for level, m in loguru_lines if m.startswith("SPOE: [test-agent] <")]
    assert len(spoe) == 1
    assert spoe[0][0] == "WARNING" and " st=257 " in spoe[0][1]


def test_skipped_processings_are_not_logged(loguru_lines):
    with FakeAgent() as agent, make_engine(agent.address, "log global") as engine:
        assert engine.process_event(engine.new_stream(samples()), "on-http-response").skipped
    assert not [m for _, m in loguru_lines if m.startswith("SPOE:")]


def test_dropped_names_go_to_the_debug_log(loguru_lines):
    from spoe_sync.protocol import SetVar, VarScope
    with FakeAgent({"*": lambda _m: [SetVar(VarScope.TXN, "b-ad", 1)]}) as agent, \
            make_engine(agent.address) as engine:
        result = engine.process_event(engine.new_stream(samples()), EVENT)
    assert result.dropped_vars
    assert any(level == "DEBUG" and "txn.test.b-ad" in m for level, m in loguru_lines)


def test_timings_of_a_success_are_all_reached():
    with FakeAgent(delays=0.05) as agent, make_engine(agent.address) as engine:
        t = engine.process_event(engine.new_stream(samples()), EVENT).timings
    assert min(t.request, t.queue, t.wait, t.response, t.process) >= 0
    assert t.wait >= 45
    assert t.process >= t.request + t.queue + t.wait + t.response - 1


def test_counters_count_processings_and_errors():
    with FakeAgent(fault="silent", fault_after=3) as agent, make_engine(
            agent.address, processing="100ms") as engine:
        results = [engine.process_event(engine.new_stream(samples()), EVENT) for _ in range(4)]
        m = engine.metrics()
    assert [int(r.status) for r in results] == [0, 0, 1, 1]
    assert (m.nb_processed, m.nb_errors, m.submitted, m.nb_skipped) == (4, 2, 4, 0)
    assert m.applets == 1 and m.servers[0].connections == 1
