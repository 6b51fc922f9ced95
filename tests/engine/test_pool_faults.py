"""Faults, with real sockets against scripted FakeAgents: every AGENT-HELLO failure
of docs/explanation/haproxy-behaviour.md §1.2 with HAProxy's status, agents that close,
reset, stall, send garbage or an over-long length prefix, AGENT-DISCONNECT at
hello and mid-flight, unknown frame-ids per mode (§2.3), ABORT, refused
connections (§3.6, §5.1).  In every case: the right status on every affected
frame, no hang, no exception out of the pool, the applet replaced, counters
consistent; and (issue 5 points 1, 3, 5) no reconnect storm, fast failure with
the real status when the cause is known."""

from __future__ import annotations

import time

import gevent
import pytest

from spoe_sync.config import Timeouts
from spoe_sync.protocol import FLAG_FIN, Ack, AgentDisconnect, AgentHello, Message, UInt32
from spoe_sync.protocol.codec import encode_frame, encode_messages
from spoe_sync.testing import BAD_HELLOS, FakeAgent
from tests.kit import closed_address, wait_until

from .poolkit import (
    PAYLOAD,
    assert_consistent,
    burst,
    make_pool,
    settle,
    statuses,
)

pytestmark = pytest.mark.timeout(20)

CAPS = ("capabilities", "pipelining,async")
MFS = ("max-frame-size", UInt32(16380))


def hello(*items: tuple[str, object], flags: int = FLAG_FIN, stream_id: int = 0) -> AgentHello:
    return AgentHello(tuple(items), flags=flags, stream_id=stream_id)  # type: ignore[arg-type]


# (hello script, stream status, status of our HAPROXY-DISCONNECT or None when HAProxy sends none)
HELLO_FAILURES = [
    pytest.param("unsupported-version", 256 + 8, 8, id="unsupported-version"),
    pytest.param("unparsable-version", 256 + 8, 8, id="unparsable-version"),
    pytest.param("no-version", 256 + 5, 5, id="no-version"),
    pytest.param("no-max-frame-size", 256 + 6, 6, id="no-max-frame-size"),
    pytest.param("max-frame-size-too-small", 256 + 9, 9, id="max-frame-size-too-small"),
    pytest.param("max-frame-size-too-big", 256 + 9, 9, id="max-frame-size-too-big"),
    pytest.param(hello(("version", "2.0"), ("max-frame-size", UInt32(16381)), CAPS), 256 + 9, 9,
                 id="max-frame-size-just-over-ours"),
    pytest.param("version-not-a-string", 256 + 4, 4, id="version-not-a-string"),
    pytest.param("no-fin", 256 + 10, 10, id="no-fin"),
    pytest.param("non-zero-ids", 256 + 4, 4, id="non-zero-ids"),
    pytest.param("not-an-agent-hello", 256 + 4, 4, id="not-an-agent-hello"),
    pytest.param(encode_frame(Ack(0, 0)), 256 + 4, 4, id="an-ack-instead"),
    pytest.param("garbage", 256 + 4, 4, id="garbage"),
    pytest.param("over-long-length-prefix", 256 + 3, 3, id="over-long-length-prefix"),
    pytest.param(AgentDisconnect.make(42, "go away"), 256 + 42, None, id="agent-disconnect"),
    pytest.param("close", 256 + 1, None, id="close"),
    pytest.param("reset", 256 + 1, None, id="reset"),
    pytest.param("stall", 256 + 2, None, id="stall-hello-timeout"),
]


def test_every_bad_hello_preset_is_tested() -> None:
    tested = {p.values[0] for p in HELLO_FAILURES if isinstance(p.values[0], str)}
    assert set(BAD_HELLOS) <= tested


@pytest.mark.parametrize(("script", "status", "our_disconnect"), HELLO_FAILURES)
def test_every_hello_failure_fails_every_frame_fast_with_its_status(
        script: object, status: int, our_disconnect: int | None) -> None:
    """Point 1: HAProxy 2.6 reconnects 400-1000 times in 500 ms and ends with st=1."""
    with FakeAgent(hello=script) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.3, idle=None, processing=5))
        start = time.monotonic()
        outcomes = burst(pool, 200, timeout=5.0)
        elapsed = time.monotonic() - start
        assert statuses(outcomes) == {status: 200}
        assert elapsed < 2.0, elapsed  # far from the 5 s processing timeout
        assert agent.connections <= 2, agent.connections
        gevent.sleep(0.05)
        assert [d.status_code for d in agent.disconnects] == ([our_disconnect] if our_disconnect else [])
        m = pool.metrics()
        assert m.servers[0].connect_errors == agent.connections
        assert m.servers[0].last_status == status
        assert_consistent(pool)
        pool.close(1)


def test_refused_connections_fail_with_2_without_a_storm() -> None:
    pool = make_pool(closed_address())
    start = time.monotonic()
    outcomes = burst(pool, 300, timeout=5.0)
    assert statuses(outcomes) == {2: 300}
    assert time.monotonic() - start < 2.0  # far from the 5 s deadline
    # A second of steady traffic costs a handful of attempts (backoff 0.2 s doubling).
    end = time.monotonic() + 1.0
    sid = 1000
    while time.monotonic() < end:
        outcome = pool.process(sid, 1, PAYLOAD, time.monotonic() + 5)
        # not queued until the backoff ends (0.2 s and more): failed at once
        assert outcome.status == 2 and outcome.total_ms < 1000
        sid += 1
        gevent.sleep(0.01)
    attempts = pool.metrics().servers[0].connect_attempts
    assert 2 <= attempts <= 5, attempts
    assert_consistent(pool)
    pool.close(1)


def test_service_resumes_after_the_backoff_when_the_agent_recovers() -> None:
    with FakeAgent(hello=AgentDisconnect.make(13), fault_connections=1) as agent:
        pool = make_pool(agent.address)
        assert statuses(burst(pool, 50)) == {256 + 13: 50}
        gevent.sleep(0.5)  # past the first backoff step (0.2 s + jitter)
        assert agent.connections == 1  # no retry within the backoff
        assert statuses(burst(pool, 50, first_sid=100, timeout=3.0)) == {0: 50}
        # The refused one, then as many as the 50 frames need at 20 per
        # connection: 1 to 3, depending on how fast the first handshake is.
        assert 2 <= agent.connections <= 1 + 3, agent.connections
        pool.close(1)


def test_slow_hello_within_the_hello_timeout_is_fine() -> None:
    with FakeAgent(hello_delay=0.15) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.5, idle=None, processing=2))
        assert statuses(burst(pool, 20)) == {0: 20}
        pool.close(1)


def test_slow_hello_beyond_the_hello_timeout_fails_with_258() -> None:
    with FakeAgent(hello_delay=0.4) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.1, idle=None, processing=5))
        outcomes = burst(pool, 20, timeout=5.0)
        assert statuses(outcomes) == {256 + 2: 20}
        assert max(o.total_ms for o in outcomes) < 2000  # the hello timeout, not the processing one
        pool.close(1)


# (fault, capabilities, stream status of the frames in flight, our DISCONNECT)
MIDFLIGHT = [
    pytest.param("close", "pipelining", 256 + 1, None, id="close"),
    pytest.param("reset", "pipelining", 256 + 1, None, id="reset"),
    pytest.param("disconnect", "pipelining", 256 + 42, None, id="agent-disconnect"),
    pytest.param("garbage", "pipelining", 256 + 4, 4, id="garbage"),
    pytest.param("overlong", "pipelining", 256 + 3, 3, id="over-long-length-prefix"),
    pytest.param("close", "", 256 + 1, None, id="close-sync"),
    pytest.param("unknown-frame-id", "", 256 + 12, 12, id="unknown-frame-id-sync"),
    pytest.param("close", "pipelining,async", 256 + 1, None, id="close-async"),
    pytest.param("disconnect", "pipelining,async", 256 + 42, None, id="agent-disconnect-async"),
]


@pytest.mark.parametrize(("fault", "caps", "status", "our_disconnect"), MIDFLIGHT)
def test_midflight_failure_reaches_every_frame_and_the_applet_is_replaced(
        fault: str, caps: str, status: int, our_disconnect: int | None) -> None:
    """Points 3 and 5: the connection-level status, at once, on every frame that
    was on the connection (async included: no other connection can answer)."""
    with FakeAgent(capabilities=caps, fault=fault, fault_connections=1, disconnect_status=42,
                   delays=0.02) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.5, idle=None, processing=5))
        frames = 1 if caps == "" else 10
        start = time.monotonic()
        outcomes = burst(pool, frames, timeout=5.0)
        assert statuses(outcomes) == {status: frames}
        assert time.monotonic() - start < 2.0  # at once, not at the 5 s processing timeout
        if our_disconnect:
            assert wait_until(lambda: agent.disconnects)
        assert [d.status_code for d in agent.disconnects] == ([our_disconnect] if our_disconnect else [])
        gevent.sleep(0.3)  # the connection never worked: its server backs off 0.2 s
        assert statuses(burst(pool, frames, first_sid=100, timeout=3.0)) == {0: frames}
        assert agent.connections == 2
        assert_consistent(pool)
        pool.close(1)


def test_async_frames_of_a_lost_connection_get_its_status_while_another_lives() -> None:
    """docs/explanation/haproxy-behaviour.md §3.6: in async mode the frames of a lost
    connection may still get their ACK on another connection of the engine, so
    they wait while another lives; HAProxy 2.6 lets them wait out the processing
    timeout (st=1).  The pool waits a short grace only (``ORPHAN_GRACE``) and
    ends them with the lost connection's 256+N, far from the deadline (without
    another connection they fail at once: the close-async case above)."""
    with FakeAgent(capabilities="pipelining,async", fault="close", fault_after=3,
                   fault_connections=1, delays=0.1) as agent:
        pool = make_pool(agent.address, max_waiting_frames=2,
                         timeouts=Timeouts(hello=0.5, idle=None, processing=5))
        assert statuses(burst(pool, 4, timeout=3.0)) == {0: 4}  # two connections, two frames each
        assert agent.connections == 2
        start = time.monotonic()
        outcomes = burst(pool, 2, timeout=5.0, first_sid=100)  # one frame on each
        # The first connection closes on its third NOTIFY: that frame is not
        # timed out (1) but ends with the lost connection's status (257).
        assert sorted(o.status for o in outcomes) == [0, 256 + 1]
        assert time.monotonic() - start < 2.0  # the grace, not the 5 s deadline
        assert agent.connections == 2
        assert_consistent(pool)
        pool.close(1)


@pytest.mark.parametrize("caps", [pytest.param("pipelining", id="pipelining"),
                                  pytest.param("pipelining,async", id="async")])
def test_unknown_frame_id_is_ignored_in_pipelining_and_async(caps: str) -> None:
    with FakeAgent(capabilities=caps, fault="unknown-frame-id", fault_after=2,
                   fault_connections=1) as agent:
        pool = make_pool(agent.address, maxconnrate=1)
        # The connection is up (and its first ACK matched) before the faulty frames.
        assert pool.process(1, 1, PAYLOAD, time.monotonic() + 3).status == 0
        outcomes = burst(pool, 5, timeout=1.0, first_sid=10)
        assert statuses(outcomes) == {1: 5}  # the ACKs match nothing: processing timeout
        assert wait_until(lambda: agent.acks_sent == 1 + 5)
        assert agent.frames == 1 + 5 and agent.connections == 1
        assert not agent.disconnects
        assert_consistent(pool)
        pool.close(1)


def test_abort_on_an_unfragmented_ack_is_ignored() -> None:
    with FakeAgent(fault="abort") as agent:
        pool = make_pool(agent.address)
        assert statuses(burst(pool, 5)) == {0: 5}
        pool.close(1)


def test_abort_on_the_ack_of_a_fragmented_notify_fails_with_4() -> None:
    with FakeAgent(capabilities="pipelining,fragmentation", max_frame_size=256, fault="abort") as agent:
        pool = make_pool(agent.address)
        big = encode_messages([Message("big", (("body", b"y" * 1000),))])
        outcome = pool.process(1, 1, big, time.monotonic() + 1)
        assert outcome.status == 4
        assert pool.process(2, 1, PAYLOAD, time.monotonic() + 1).status == 0
        assert agent.connections == 1
        pool.close(1)


def test_stalled_agent_with_an_idle_timeout_is_replaced() -> None:
    """The stalled agent reads nothing: our DISCONNECT 2 goes unheard, the frames
    get 258 when ``timeout idle`` fires, before the processing timeout."""
    with FakeAgent(fault="stall", fault_connections=1) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.5, idle=0.2, processing=3))
        outcomes = burst(pool, 5, timeout=3.0)
        assert statuses(outcomes) == {256 + 2: 5}  # the processing timeout would give 1
        assert max(o.total_ms for o in outcomes) < 2000
        settle(pool)
        gevent.sleep(0.3)  # the connection never worked: its server backs off 0.2 s
        assert statuses(burst(pool, 5, first_sid=100)) == {0: 5}
        assert agent.connections == 2
        pool.close(1)


def test_stalled_agent_without_an_idle_timeout_times_frames_out() -> None:
    """Without ``timeout idle`` nothing says the connection is dead (as in
    HAProxy): frames end with the processing timeout and the connection stays."""
    with FakeAgent(fault="stall", fault_connections=1) as agent:
        pool = make_pool(agent.address, timeouts=Timeouts(hello=0.5, idle=None, processing=0.3))
        assert statuses(burst(pool, 5, timeout=0.3)) == {1: 5}
        assert statuses(burst(pool, 5, timeout=0.2, first_sid=100)) == {1: 5}
        assert agent.connections == 1
        assert_consistent(pool)
        pool.close(0.1)


def test_silent_agent_times_out_and_the_connection_is_kept() -> None:
    with FakeAgent(fault="silent", fault_after=2) as agent:
        pool = make_pool(agent.address)
        assert pool.process(1, 1, PAYLOAD, time.monotonic() + 1).status == 0
        assert pool.process(2, 1, PAYLOAD, time.monotonic() + 0.1).status == 1
        assert agent.connections == 1 and pool.metrics().applets == 1
        assert_consistent(pool)
        pool.close(1)


def test_a_failing_server_is_avoided_while_another_serves() -> None:
    with FakeAgent(hello="close") as bad, FakeAgent() as good:
        pool = make_pool(bad.address, good.address)
        outcomes = burst(pool, 100)
        assert statuses(outcomes) == {0: 100}
        assert bad.connections <= 2
        pool.close(1)


def test_no_usable_server_fails_with_2_without_connecting() -> None:
    """docs/explanation/haproxy-behaviour.md §3.2 (observed with ``server ... disabled``):
    st=2 at once, -1 timings, no connection."""
    from spoe_sync.config import Backend, Server
    from spoe_sync.engine import AppletPool

    from .poolkit import agent_config

    with FakeAgent() as agent:
        backend = Backend("agents", (Server(agent.address, "srv1", disabled=True),))
        pool = AppletPool(agent_config(), backend)
        outcome = pool.process(1, 1, PAYLOAD, time.monotonic() + 1)
        assert (outcome.status, outcome.queue_ms, outcome.wait_ms) == (2, -1, -1)
        assert "no server of backend 'agents' is up" in (outcome.error or "")
        assert agent.connections == 0
        pool.close(1)


def test_an_agent_closing_idle_connections_is_not_a_failure() -> None:
    """A connection the agent closes while nothing is in flight (its own idle
    timeout) is no failure, even if it never carried a frame: no backoff, the
    next frame reconnects and succeeds."""
    with FakeAgent(idle_close=0.1, capabilities="pipelining", max_frame_size=256) as agent:
        pool = make_pool(agent.address)
        big = encode_messages([Message("big", (("body", b"z" * 1000),))])
        assert pool.process(1, 1, big, time.monotonic() + 1).status == 3  # connected, sent nothing
        gevent.sleep(0.25)  # the agent closed the unused connection
        m = pool.metrics()
        assert m.applets == 0 and m.servers[0].connect_errors == 0
        assert m.servers[0].backoff_remaining == 0
        assert pool.process(2, 1, PAYLOAD, time.monotonic() + 1).status == 0
        assert agent.connections == 2
        pool.close(1)
