"""Events and groups through real sockets (SPOE.txt §3.3 "Events & Messages", §2.3
"event", §2.4 "spoe-group"; docs/explanation/haproxy-behaviour.md §2.1 ids, one processing at
a time per stream): what is sent, in which order, in how many NOTIFY frames."""

from __future__ import annotations

import time
from ipaddress import IPv4Address

import gevent
import pytest

from spoe_sync import ConfigError, Engine, load_config
from spoe_sync.engine.result import ProcessingResult
from spoe_sync.testing import FakeAgent
from tests import kit

from .enginekit import CONF, EVENT, conf_text, make_engine, run_all, samples, set_score


def test_an_event_sends_its_messages_in_the_agents_order_in_one_notify():
    with FakeAgent() as agent, make_engine(agent.address) as engine:
        stream = engine.new_stream(samples(host="a.example", x_send="1"))
        result = engine.process_event(stream, EVENT)
        assert result.ok and not result.skipped
        assert agent.frames == 1
        notify = agent.notifies[0]
        assert [m.name for m in notify.messages] == ["m-first", "m-second"]
        first, second = notify.messages
        assert first.args == (("ip", IPv4Address("192.0.2.7")), ("n", 7), ("host", "a.example"),
                              ("", IPv4Address("192.0.2.7")))
        assert second.args == (("path", "/login"),)
        assert (notify.stream_id, notify.frame_id) == (stream.id, 1)


def test_a_message_whose_condition_is_false_is_left_out_and_a_failed_fetch_is_null():
    with FakeAgent() as agent, make_engine(agent.address) as engine:
        result = engine.process_event(engine.new_stream(samples()), EVENT)
        assert result.ok
        (message,) = agent.notifies[0].messages
        assert message.name == "m-first"
        assert dict(message.args)["host"] is None  # no Host header: NULL


def test_nothing_to_send_means_no_frame_no_log_but_counts_as_processed():
    """All conditions false: no NOTIFY, no log, no variable; HAProxy 2.6 still
    counts it in nb_processed (see tests/conformance/test_engine_haproxy.py)."""
    text = CONF.replace("    event on-frontend-http-request\n", "    event on-frontend-http-request"
                        " if {{ req.hdr(x-first) -m found }}\n", 1)
    text = text.format(processing="1s", agent="    log global\n")
    with FakeAgent() as agent:
        engine = Engine(load_config(text, "test"), backends={"agents": [agent.address]})
        with engine:
            result = engine.process_event(engine.new_stream(samples()), EVENT)
            assert result.skipped and result.ok and result.timings.process == -1
            m = engine.metrics()
            assert (m.nb_processed, m.nb_errors, m.nb_skipped, m.applets) == (1, 0, 0, 0)
            # the next such processing answers with the same (immutable) result, equal
            # to the one a skip of that reason is made as
            again = engine.process_event(engine.new_stream(samples()), EVENT)
            assert again is result
            assert again == ProcessingResult("event", EVENT, skipped=True,
                                             error="no message to send")
            assert engine.metrics().nb_processed == 2
        assert agent.connections == 0 and agent.frames == 0


def test_an_event_without_messages_sends_nothing_and_an_unknown_event_is_refused():
    with FakeAgent() as agent, make_engine(agent.address) as engine:
        stream = engine.new_stream(samples())
        assert engine.process_event(stream, "on-http-response").skipped
        with pytest.raises(ValueError, match="unknown SPOE event"):
            engine.process_event(stream, "on-nothing")
        assert agent.frames == 0


def test_a_group_sends_its_messages_in_the_groups_order_each_under_its_own_condition():
    with FakeAgent() as agent, make_engine(agent.address, "register-var-names known") as engine:
        engine.proc_vars.set("proc.test.known", 5)
        stream = engine.new_stream(samples(x_group="1"))
        assert engine.send_group(stream, "grp").ok
        assert [m.name for m in agent.notifies[0].messages] == ["g-two", "g-one"]
        assert agent.notifies[0].messages[0].args == (("b", "two"), ("c", 5))
        plain = engine.new_stream(samples())
        assert engine.send_group(plain, "grp").ok
        assert [m.name for m in agent.notifies[1].messages] == ["g-two"]
        with pytest.raises(ValueError, match="no group"):
            engine.send_group(plain, "other")


def test_send_group_runs_any_number_of_times_with_new_frame_ids():
    with FakeAgent({"*": set_score()}) as agent, make_engine(agent.address) as engine:
        stream = engine.new_stream(samples())
        results = [engine.send_group(stream, "grp") for _ in range(5)]
        assert all(r.ok for r in results)
        assert [n.frame_id for n in agent.notifies] == [1, 2, 3, 4, 5]
        assert {n.stream_id for n in agent.notifies} == {stream.id}
        assert stream.vars.get("txn.test.ip_score") == 42


def test_stream_ids_are_unique_per_engine():
    with FakeAgent() as agent, make_engine(agent.address) as engine:
        streams = [engine.new_stream(samples()) for _ in range(20)]
        run_all([lambda s=s: engine.process_event(s, EVENT) for s in streams])
        assert len({n.stream_id for n in agent.notifies}) == 20
        assert {n.stream_id for n in agent.notifies} == {s.id for s in streams}


def test_one_processing_at_a_time_per_stream():
    with FakeAgent(delays=0.1) as agent, make_engine(agent.address) as engine:
        stream = engine.new_stream(samples())
        start = time.monotonic()
        results = run_all([lambda: engine.process_event(stream, EVENT),
                           lambda: engine.send_group(stream, "grp")])
        elapsed = time.monotonic() - start
        assert all(r.ok for r in results)
        assert elapsed >= 0.2  # the second waited for the first one's ACK
        assert [n.frame_id for n in agent.notifies] == [1, 2]


def test_different_streams_run_concurrently():
    with FakeAgent(delays=0.2) as agent, make_engine(agent.address) as engine:
        streams = [engine.new_stream(samples()) for _ in range(10)]
        start = time.monotonic()
        assert all(r.ok for r in run_all([lambda s=s: engine.process_event(s, EVENT)
                                          for s in streams]))
        assert time.monotonic() - start < 1.0
        assert agent.frames == 10


def test_no_io_until_the_first_processing():
    with FakeAgent() as agent:
        engine = make_engine(agent.address)
        stream = engine.new_stream(samples())
        gevent.sleep(0.05)
        assert agent.connections == 0
        assert engine.process_event(stream, EVENT).ok
        assert agent.connections == 1
        engine.close()


@pytest.mark.parametrize("capabilities", [
    pytest.param("", id="sync"),
    pytest.param("pipelining", id="pipelining"),
    pytest.param("pipelining,async", id="async"),
])
def test_every_exchange_mode_sets_the_agents_variables(capabilities):
    with FakeAgent({"m-first": set_score(87)}, capabilities=capabilities) as agent, \
            make_engine(agent.address) as engine:
        streams = [engine.new_stream(samples()) for _ in range(30)]
        results = run_all([lambda s=s: engine.process_event(s, EVENT) for s in streams])
        assert [r.status for r in results] == [0] * 30
        assert all(s.vars.get("txn.test.ip_score") == 87 for s in streams)


def test_an_unknown_use_backend_is_a_config_error_at_creation():
    config = load_config(conf_text(), "test")
    with pytest.raises(ConfigError, match="unknown backend 'agents'"):
        Engine(config, backends={"other": ["127.0.0.1:1"]})
    with pytest.raises(ConfigError):
        Engine(config)


def test_from_file(tmp_path):
    path = tmp_path / "spoe.conf"
    path.write_text(conf_text())
    with FakeAgent() as agent:
        engine = Engine.from_file(str(path), engine="test", backends={"agents": [agent.address]})
        with engine:
            assert engine.process_event(engine.new_stream(samples()), EVENT).ok
            assert engine.name == "test-agent" and engine.events == (EVENT,)
            assert engine.groups == ("grp",)



def test_a_processing_with_nothing_to_send_returns_one_shared_result() -> None:
    """Every condition false: no frame; the result is the same immutable object
    each time (nothing in it differs between calls)."""
    # m-first's event gets a false condition; m-second's needs an x-send header samples() lacks
    text = conf_text().replace("    event on-frontend-http-request\n",
                               "    event on-frontend-http-request if FALSE\n")
    with FakeAgent() as agent, kit.make_engine(text, "test", agent.address) as engine:
        first = engine.process_event(engine.new_stream(samples()), EVENT)
        second = engine.process_event(engine.new_stream(samples()), EVENT)
        assert first is second and first.skipped and first.status == 0
        assert first.timings.process == -1 and not first.vars_set
        with pytest.raises(TypeError):
            first.vars_set["x"] = 1  # type: ignore[index]
        assert agent.frames == 0 and engine.nb_processed == 2


THREE = """\
[three]
spoe-agent three
    groups trio
    option var-prefix three
    timeout hello 500ms
    timeout idle 10s
    timeout processing 2s
    use-backend agents
spoe-message t-one
    args a=str(one)
spoe-message t-two
    args b=str(two)
    event on-backend-http-request if { req.hdr(x-two) -m found }
spoe-message t-three
    args c=str(three) d=int(3)
spoe-group trio
    messages t-one t-two t-three
"""


@pytest.mark.parametrize("headers, sent", [
    ({}, ["t-one", "t-three"]),
    ({"x_two": "1"}, ["t-one", "t-two", "t-three"]),
])
def test_every_message_of_a_notify_is_sent_in_order_whatever_their_number(headers, sent):
    """One NOTIFY carries each message whose condition holds, in the group's
    order, with its arguments (the payload is built from one, two or more)."""
    from tests import kit

    with FakeAgent() as agent, kit.make_engine(THREE, "three", agent.address) as engine:
        assert engine.send_group(engine.new_stream(samples(**headers)), "trio").ok
        (notify,) = agent.notifies
        assert [m.name for m in notify.messages] == sent
        assert notify.messages[-1].args == (("c", "three"), ("d", 3))
