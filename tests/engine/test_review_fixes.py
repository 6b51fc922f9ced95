"""Engine and pool edges (SPOE.txt §2.2, §3.1; docs/explanation/haproxy-behaviour.md §2.4,
§3.2, §3.4): backoff only after a failed connect or handshake, a default
``timeout processing`` (never a hang), the type of ``samples``, a backend without
server, the one "too big" limit, the variables engines of one transaction
share (HAProxy's filters of a stream share its variables), the shared result of
a processing with nothing to send; real sockets against FakeAgent."""

from __future__ import annotations

import time
import warnings

import gevent
import pytest

from spoe_sync import Engine, load_config
from spoe_sync.config import Timeouts
from spoe_sync.engine.engine import DEFAULT_TIMEOUT_PROCESSING
from spoe_sync.errors import ConfigError
from spoe_sync.protocol import Message
from spoe_sync.protocol.codec import encode_messages
from spoe_sync.protocol.constants import FRAME_HDR_SIZE
from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, samples, set_score
from .poolkit import assert_consistent, burst, make_pool, statuses

pytestmark = pytest.mark.timeout(20)

#: No ``timeout processing`` line: HAProxy only warns, and a silent agent hangs the stream.
NO_PROCESSING = """\
[test]
spoe-agent test-agent
    messages m-first
    option var-prefix test
    timeout hello 500ms
    timeout idle 10s
    use-backend agents
spoe-message m-first
    args ip=src
    event on-frontend-http-request
"""


def engine_without_processing_timeout(address: str | None, **options: object) -> Engine:
    """An engine for NO_PROCESSING (the configuration warning is expected);
    ``address`` None gives its backend no server."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = load_config(NO_PROCESSING, "test")
    servers = [] if address is None else [address]
    return Engine(config, backends={"agents": servers}, **options)  # type: ignore[arg-type]


def test_a_bad_ack_on_a_working_connection_does_not_back_the_server_off() -> None:
    """Sync mode, an ACK with an unknown frame-id on a connection that already
    worked (its first ACK matched): that frame gets 256+12; the next stream
    opens a new connection at once instead of inheriting 268.  (A connection
    whose *first* ACK is wrong never worked: its server backs off, see
    test_agent_faults.py.)"""
    with FakeAgent(capabilities="", fault="unknown-frame-id", fault_after=2,
                   fault_connections=1) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.5, idle=None, processing=1.0))
        assert statuses(burst(pool, 1, first_sid=100)) == {0: 1}
        assert statuses(burst(pool, 1)) == {256 + 12: 1}
        assert statuses(burst(pool, 1, first_sid=2)) == {0: 1}
        assert agent.connections == 2
        assert pool.metrics().servers[0].backoff_remaining == 0
        assert_consistent(pool)
        pool.close(1)


def test_a_failed_handshake_still_backs_off() -> None:
    """The other side of the rule: a refused handshake backs the server off and
    the next stream fails at once with its status, without a new connection."""
    with FakeAgent(hello="no-version") as agent:
        pool = make_pool(agent.address)
        assert statuses(burst(pool, 1)) == {256 + 5: 1}
        assert statuses(burst(pool, 1, first_sid=2)) == {256 + 5: 1}
        assert agent.connections == 1
        pool.close(1)


@pytest.mark.parametrize(("override", "expected"), [
    pytest.param(None, DEFAULT_TIMEOUT_PROCESSING, id="default"),
    pytest.param(0.25, 0.25, id="override"),
])
def test_timeout_processing_always_has_a_value(override: float | None, expected: float) -> None:
    with FakeAgent() as agent:
        engine = engine_without_processing_timeout(agent.address, timeout_processing=override)
        assert engine.timeout_processing == expected
        engine.close(0)


def test_a_silent_agent_without_timeout_processing_does_not_hang_the_stream() -> None:
    with FakeAgent(fault="silent") as agent:
        engine = engine_without_processing_timeout(agent.address, timeout_processing=0.3)
        stream = engine.new_stream(samples())
        start = time.monotonic()
        result = gevent.with_timeout(5.0, engine.process_event, stream, EVENT)
        assert result.status == 1
        assert 0.25 <= time.monotonic() - start < 1.0
        start = time.monotonic()
        engine.close(timeout=None)  # nothing left in flight: returns at once
        assert time.monotonic() - start < 1.0


def test_timeout_processing_override_must_be_positive() -> None:
    with FakeAgent() as agent, pytest.raises(ConfigError, match="timeout processing"):
        engine_without_processing_timeout(agent.address, timeout_processing=0)


@pytest.mark.parametrize("bad", [
    pytest.param(None, id="none"),
    pytest.param({"src": "192.0.2.1"}, id="dict"),
    pytest.param("192.0.2.1", id="str"),
])
def test_new_stream_refuses_what_is_not_a_sample_source(bad: object) -> None:
    """Anything else made every processing end with 255: a WAF failing open."""
    with FakeAgent() as agent:
        engine = engine_without_processing_timeout(agent.address)
        with pytest.raises(TypeError, match="SampleSource"):
            engine.new_stream(bad)  # type: ignore[arg-type]
        assert engine.streams == 0
        engine.close(0)


def test_a_backend_without_server_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="backend 'agents' has no server"):
        engine_without_processing_timeout(None)


def test_one_too_big_limit_for_the_pool_and_the_engine() -> None:
    """max-frame-size minus HAProxy's FRAME_HDR_SIZE, for both (§2.4): a payload
    of exactly that size goes out, one byte more fails with 3 and nothing sent."""
    with FakeAgent() as agent:
        pool = make_pool(agent.address, send_frag_payload=False)
        limit = pool.max_payload
        assert limit == pool.settings.max_frame_size - FRAME_HDR_SIZE
        head = len(encode_messages([Message("check-client-ip", (("d", b""),))]))

        def payload(size: int) -> bytes:
            """A LIST-OF-MESSAGES of exactly ``size`` bytes (the varint of the
            value's length takes 3 bytes here)."""
            data = encode_messages([Message("check-client-ip", (("d", b"z" * (size - head - 2)),))])
            assert len(data) == size
            return data

        now = time.monotonic()
        assert pool.process(1, 1, payload(limit), now + 1.0).status == 0
        too_big = pool.process(2, 1, payload(limit + 1), now + 1.0)
        assert too_big.status == 3 and too_big.queue_ms == -1
        assert agent.frames == 1
        assert pool.unsendable(limit + 1, head) is not None
        assert pool.unsendable(limit) is None
        pool.close(1)


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


def test_a_processing_with_nothing_to_send_returns_one_shared_result() -> None:
    """Every condition false: no frame; the result is the same immutable object
    each time (nothing in it differs between calls)."""
    with FakeAgent() as agent:
        config = load_config(SHARED.replace("on-frontend-http-request",
                                            "on-frontend-http-request if FALSE"), "shared")
        engine = Engine(config, backends={"agents": [agent.address]})
        first = engine.process_event(engine.new_stream(samples()), EVENT)
        second = engine.process_event(engine.new_stream(samples()), EVENT)
        assert first is second and first.skipped and first.status == 0
        assert first.timings.process == -1 and not first.vars_set
        with pytest.raises(TypeError):
            first.vars_set["x"] = 1  # type: ignore[index]
        assert agent.frames == 0 and engine.nb_processed == 2
        engine.close(0)
