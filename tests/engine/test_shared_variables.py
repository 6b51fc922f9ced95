"""The variables the engines of one transaction share (HAProxy's filters of a stream share
its variables; docs/explanation/haproxy-behaviour.md §4), through real sockets against
FakeAgent."""

from __future__ import annotations

import pytest

from spoe_sync import Engine, load_config
from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, samples, set_score

pytestmark = pytest.mark.timeout(20)

SHARED = """\
[shared]
spoe-agent test-agent
    messages m-read
    option var-prefix test
    timeout hello 500ms
    timeout idle 10s
    timeout processing 1s
    use-backend agents
spoe-message m-read
    args ip=src seen=var(txn.test.ip_score)
    event on-frontend-http-request
"""


def test_engines_of_one_transaction_share_its_variables() -> None:
    """HAProxy: every filter of a stream shares its variables.  The first
    engine's agent sets txn.test.ip_score; the second engine's message reads it."""
    with FakeAgent({"*": set_score(42)}) as first, FakeAgent() as second:
        engine_a = Engine(load_config(SHARED, "shared"), backends={"agents": [first.address]})
        engine_b = Engine(load_config(SHARED, "shared"), backends={"agents": [second.address]})
        source = samples()
        stream_a = engine_a.new_stream(source)
        stream_b = engine_b.new_stream(source, vars=stream_a.vars)
        assert stream_b.vars is stream_a.vars and stream_b.session is stream_a.session
        assert engine_a.process_event(stream_a, EVENT).status == 0
        assert engine_b.process_event(stream_b, EVENT).status == 0
        assert dict(second.notifies[-1].messages[0].args)["seen"] == 42
        assert dict(first.notifies[-1].messages[0].args)["seen"] is None
        engine_a.close(0)
        engine_b.close(0)


def test_new_stream_checks_the_shared_variables() -> None:
    with FakeAgent() as agent:
        engine = Engine(load_config(SHARED, "shared"), backends={"agents": [agent.address]})
        stream = engine.new_stream(samples())
        with pytest.raises(TypeError, match="Vars"):
            engine.new_stream(samples(), vars={})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="session"):
            engine.new_stream(samples(), engine.new_session(), vars=stream.vars)
        assert engine.new_stream(samples(), stream.session, vars=stream.vars).vars is stream.vars
        engine.close(0)


def test_replacing_a_streams_variables_keeps_its_fetches_in_step() -> None:
    """``stream.vars = other`` (the old way of sharing): what var() reads follows."""
    with FakeAgent() as agent:
        engine = Engine(load_config(SHARED, "shared"), backends={"agents": [agent.address]})
        donor = engine.new_stream(samples())
        donor.vars.set("txn.test.ip_score", 7)
        stream = engine.new_stream(samples())
        stream.vars = donor.vars
        assert stream.session is donor.session
        assert engine.process_event(stream, EVENT).status == 0
        assert dict(agent.notifies[-1].messages[0].args)["seen"] == 7
        engine.close(0)
