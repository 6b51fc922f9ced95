"""What an Engine makes of its configuration and options (SPOE.txt §2.2, §3.1;
docs/explanation/haproxy-behaviour.md §2.4, §3.4), through real sockets against FakeAgent: a
default ``timeout processing`` (never a hang), the type of ``samples``, a backend without
server, the one "too big" limit of the pool and the engine."""

from __future__ import annotations

import time
import warnings

import gevent
import pytest

from spoe_sync import Engine, load_config
from spoe_sync.engine.engine import DEFAULT_TIMEOUT_PROCESSING
from spoe_sync.errors import ConfigError
from spoe_sync.protocol import Message
from spoe_sync.protocol.codec import encode_messages
from spoe_sync.protocol.constants import FRAME_HDR_SIZE
from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, samples
from .poolkit import make_pool

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


@pytest.mark.parametrize("kind", ["http", "tcp", "udp"])
def test_new_stream_equals_the_stream_of_init(kind: str) -> None:
    """Engine.new_stream's Stream and Vars: every slot what Stream(...) and Vars(...) with the
    engine's proc variables and limits give, and a bad kind refused the same way."""
    from spoe_sync.engine.stream import Stream
    from spoe_sync.engine.vars import Vars
    with FakeAgent() as agent:
        engine = engine_without_processing_timeout(agent.address)
        try:
            src, session = samples(), engine.new_session()
            if kind not in ("http", "tcp"):
                with pytest.raises(ValueError, match="stream kind") as fast_exc:
                    engine.new_stream(src, session, kind=kind)
                with pytest.raises(ValueError, match="stream kind") as init_exc:
                    Stream(engine, 1, src, Vars(session), kind)
                assert str(fast_exc.value) == str(init_exc.value)
                return
            fast = engine.new_stream(src, session, kind=kind)
            vars = Vars(session, engine.proc_vars, limits=engine.var_limits)
            general = Stream(engine, fast.id, src, vars, kind)

            def slots(obj: object) -> dict[str, object]:
                return {name: getattr(obj, name) for cls in type(obj).__mro__
                        for name in getattr(cls, "__slots__", ())}
            got, want = slots(fast), slots(general)
            assert got.pop("_vars") is not want.pop("_vars")  # a store of its own each
            got_ctx, want_ctx = got.pop("_ctx"), want.pop("_ctx")
            assert got == want and type(fast) is Stream
            assert type(got_ctx) is type(want_ctx) and got_ctx.samples is want_ctx.samples
            assert got_ctx.vars is fast.vars and want_ctx.vars is general.vars
            assert slots(fast.vars) == slots(general.vars)
            assert fast.session is general.session is session
        finally:
            engine.close(0)
