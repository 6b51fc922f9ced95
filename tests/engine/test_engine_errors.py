"""Errors, timeouts and error options through real sockets (SPOE.txt §3.5 "Errors &
timeouts", §2.2 "timeout processing", "option continue-on-error", "maxerrrate",
"option set-on-error" codes; docs/explanation/haproxy-behaviour.md §5): every status reached
for real, fail-open results, SPOE disabled after an error."""

from __future__ import annotations

import gevent
import pytest

from spoe_sync import EngineClosed, ProcessingTimeout
from spoe_sync.errors import MessageTooLarge, ProcessingError
from spoe_sync.testing import FakeAgent
from tests.kit import closed_address, wait_until

from .enginekit import EVENT, make_engine, samples, set_score


def test_timeout_processing_gives_status_1_and_the_late_ack_is_ignored():
    with FakeAgent({"*": set_score(9)}, delays={"m-first": 0.4}) as agent, make_engine(
            agent.address, "option continue-on-error", processing="150ms") as engine:
        stream = engine.new_stream(samples())
        result = engine.process_event(stream, EVENT)
        assert result.status == 1 and not result.ok
        # gevent timers run on the loop's cached clock and may fire a few ms early
        assert 120 <= result.timings.process < 400
        with pytest.raises(ProcessingTimeout) as info:
            result.raise_for_status()
        assert info.value.status == 1 and info.value.result is result
        # the next NOTIFY of the stream has a new frame id: the late ACK (frame 1)
        # arrives while it waits and must not be taken for its answer
        group = engine.send_group(stream, "grp")
        assert group.ok
        assert [n.frame_id for n in agent.notifies] == [1, 2]
        assert wait_until(lambda: agent.acks_sent == 2)
        gevent.sleep(0.05)
        assert stream.vars.get("txn.test.ip_score") == 9  # from the group's own ACK
        assert stream.frames_sent == 2


@pytest.mark.parametrize(("fault", "status"), [
    pytest.param("close", 257, id="agent-closes-257"),
    pytest.param("reset", 257, id="agent-resets-257"),
    pytest.param("disconnect", 256 + 99, id="agent-disconnect-99"),
    pytest.param("garbage", 256 + 4, id="invalid-frame-260"),
    pytest.param("overlong", 256 + 3, id="frame-too-big-259"),
])
def test_connection_failures_end_the_frame_with_256_plus_n(fault, status):
    with FakeAgent(fault=fault, capabilities="pipelining") as agent, \
            make_engine(agent.address) as engine:
        result = engine.process_event(engine.new_stream(samples()), EVENT)
        assert result.status == status
        t = result.timings
        assert t.queue >= 0 and t.response == -1
        assert t.wait >= 0  # as HAProxy: wT stops when a waiting frame's connection is lost
        with pytest.raises(ProcessingError) as info:
            result.raise_for_status()
        assert info.value.status == status


def test_no_agent_reachable_gives_status_2():
    with make_engine(closed_address()) as engine:
        result = engine.process_event(engine.new_stream(samples()), EVENT)
        assert result.status in (2, 257)  # refused: no applet could be had
        assert result.timings.wait == -1


def test_too_big_without_fragmentation_gives_status_3_and_opens_nothing():
    big = "x" * 20000
    with FakeAgent() as agent, make_engine(agent.address, "no option send-frag-payload") as engine:
        stream = engine.new_stream(samples(host=big))
        result = engine.process_event(stream, EVENT)
        assert result.status == 3
        t = result.timings
        assert (t.request, t.queue, t.wait, t.response) == (-1, -1, -1, -1) and t.process >= 0
        with pytest.raises(MessageTooLarge):
            result.raise_for_status()
        gevent.sleep(0.05)
        assert agent.connections == 0


def test_a_fragmented_notify_is_sent_and_an_aborting_agent_gives_status_4():
    big = "y" * 3000
    with FakeAgent({"*": set_score(1)}, capabilities="pipelining,fragmentation") as agent, \
            make_engine(agent.address, "max-frame-size 1024") as engine:
        stream = engine.new_stream(samples(host=big))
        assert engine.process_event(stream, EVENT).ok
        assert dict(agent.notifies[0].messages[0].args)["host"] == big
    with FakeAgent(capabilities="pipelining,fragmentation", fault="abort") as agent, \
            make_engine(agent.address, "max-frame-size 1024") as engine:
        result = engine.process_event(engine.new_stream(samples(host=big)), EVENT)
        assert result.status == 4


def test_the_callers_timeout_interrupts_with_status_5_and_propagates():
    with FakeAgent(delays=1.0) as agent, make_engine(
            agent.address, "option set-on-error err", "log global", processing="5s") as engine:
        stream = engine.new_stream(samples())
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.1):
            engine.process_event(stream, EVENT)
        assert stream.vars.get("txn.test.err") == 5
        assert stream.disabled_by == 5
        m = engine.metrics()
        assert (m.nb_errors, m.nb_processed, m.nb_interrupted, m.nb_waiting) == (0, 0, 1, 0)
        assert engine.process_event(stream, EVENT).skipped


def test_without_continue_on_error_spoe_is_disabled_for_the_rest_of_the_stream():
    with FakeAgent(fault="close", fault_connections=1) as agent, make_engine(
            agent.address, "option set-on-error err") as engine:
        stream = engine.new_stream(samples())
        assert engine.process_event(stream, EVENT).status == 257
        gevent.sleep(0.3)  # past the server's backoff
        frames = agent.frames
        skipped = engine.send_group(stream, "grp")
        assert skipped.skipped and skipped.ok and stream.disabled
        assert agent.frames == frames
        assert engine.metrics().nb_processed == 1
        # another stream (the next HTTP transaction) is not affected
        assert engine.process_event(engine.new_stream(samples()), EVENT).ok


def test_with_continue_on_error_the_following_events_still_run():
    with FakeAgent(fault="close", fault_connections=1) as agent, make_engine(
            agent.address, "option continue-on-error") as engine:
        stream = engine.new_stream(samples())
        assert engine.process_event(stream, EVENT).status == 257
        gevent.sleep(0.3)
        assert engine.send_group(stream, "grp").ok
        assert not stream.disabled


def test_maxerrrate_skips_processing_silently_over_the_rate():
    with FakeAgent(fault="silent") as agent, make_engine(
            agent.address, "maxerrrate 1", "log global", processing="100ms") as engine:
        first = engine.process_event(engine.new_stream(samples()), EVENT)
        assert first.status == 1
        frames = agent.frames
        results = [engine.process_event(engine.new_stream(samples()), EVENT) for _ in range(3)]
        assert all(r.skipped and r.ok for r in results)
        assert agent.frames == frames
        m = engine.metrics()
        assert (m.nb_processed, m.nb_errors, m.nb_skipped) == (1, 1, 3)


def test_a_closed_engine_refuses_new_work_and_said_goodbye():
    with FakeAgent() as agent:
        engine = make_engine(agent.address)
        stream = engine.new_stream(samples())
        assert engine.process_event(stream, EVENT).ok
        engine.close(timeout=1)
        assert wait_until(lambda: len(agent.disconnects) == 1)
        assert agent.disconnects[0].status_code == 0
        with pytest.raises(EngineClosed):
            engine.process_event(stream, EVENT)
        with pytest.raises(EngineClosed):
            engine.new_stream(samples())
        engine.close()  # twice is fine


def test_close_drains_frames_in_flight():
    with FakeAgent({"*": set_score(3)}, delays=0.2) as agent:
        engine = make_engine(agent.address)
        stream = engine.new_stream(samples())
        g = gevent.spawn(engine.process_event, stream, EVENT)
        assert wait_until(lambda: agent.frames == 1)
        engine.close(timeout=2)
        assert g.get(timeout=2).ok
        assert stream.vars.get("txn.test.ip_score") == 3


def test_timeout_processing_covers_connecting_and_the_handshake():
    with FakeAgent(hello_delay=0.5) as agent, make_engine(agent.address, processing="150ms") \
            as engine:
        result = engine.process_event(engine.new_stream(samples(), kind="tcp"), EVENT)
        assert result.status == 1
        assert result.timings.queue == -1 and result.timings.wait == -1  # never written


def test_a_successful_result_does_not_raise_and_bad_arguments_do():
    with FakeAgent() as agent, make_engine(agent.address) as engine:
        result = engine.process_event(engine.new_stream(samples()), EVENT)
        assert result.raise_for_status() is result
        with pytest.raises(ValueError, match="kind"):
            engine.new_stream(samples(), kind="udp")
        with make_engine(agent.address) as other:
            with pytest.raises(ValueError, match="another engine"):
                other.process_event(engine.new_stream(samples()), EVENT)
