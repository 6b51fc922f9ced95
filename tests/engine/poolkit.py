"""Shared helpers of the engine tests: configs, pools against FakeAgents, bursts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

import gevent

from spoe_sync.config import AgentConfig, Backend, Server, Timeouts
from spoe_sync.engine import AppletPool, FrameOutcome
from spoe_sync.protocol import Message
from spoe_sync.protocol.codec import encode_messages

PAYLOAD = encode_messages([Message("check-client-ip", (("ip", "192.0.2.1"),))])


def agent_config(**overrides: object) -> AgentConfig:
    """A spoe-agent with small timeouts, so that fault tests stay fast."""
    timeouts = overrides.pop("timeouts", Timeouts(hello=0.5, idle=None, processing=1.0))
    values: dict[str, object] = dict(name="test-agent", var_prefix="test", use_backend="agents",
                                     messages=("check-client-ip",), groups=(), timeouts=timeouts)
    values.update(overrides)
    return AgentConfig(**values)  # type: ignore[arg-type]


def backend(*addresses: str, **overrides: object) -> Backend:
    servers = tuple(Server(address=a, name=f"srv{i + 1}") for i, a in enumerate(addresses))
    values: dict[str, object] = dict(name="agents", servers=servers, timeout_connect=0.5)
    values.update(overrides)
    return Backend(**values)  # type: ignore[arg-type]


def make_pool(*addresses: str, backend_overrides: dict | None = None, **agent_overrides: object) -> AppletPool:
    return AppletPool(agent_config(**agent_overrides), backend(*addresses, **(backend_overrides or {})),
                      backoff=(0.2, 2.0))


def burst(pool: AppletPool, count: int, timeout: float = 1.0, first_sid: int = 1,
          frame_id: int = 1) -> list[FrameOutcome]:
    """``count`` concurrent streams, one frame each; every greenlet is bounded."""
    deadline = time.monotonic() + timeout
    greenlets = [gevent.spawn(pool.process, sid, frame_id, PAYLOAD, deadline)
                 for sid in range(first_sid, first_sid + count)]
    gevent.joinall(greenlets, timeout=timeout + 5)
    assert all(g.dead for g in greenlets), "a stream hung"
    for g in greenlets:
        if g.exception is not None:
            raise AssertionError(f"an exception escaped the pool: {g.exception!r}")
    return [g.value for g in greenlets]


def statuses(outcomes: Iterable[FrameOutcome]) -> Counter[int]:
    return Counter(o.status for o in outcomes)


def settle(pool: AppletPool, timeout: float = 2.0) -> None:
    """Wait (bounded) until the pool has no frame in flight."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = pool.metrics()
        if m.nb_sending == 0 and m.nb_waiting == 0:
            return
        gevent.sleep(0.01)


def assert_consistent(pool: AppletPool) -> None:
    """Counters agree with each other once nothing is in flight."""
    m = pool.metrics()
    assert m.nb_sending == 0 and m.nb_waiting == 0, m
    assert m.applets == sum(s.connections for s in m.servers), m
    assert m.idles <= m.applets
    assert len(pool.table) == 0
    pool.state.check()  # the bookkeeping's own invariants (poolstate.py)
