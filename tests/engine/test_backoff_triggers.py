"""What backs an agent server off, through real sockets against FakeAgent
(docs/explanation/haproxy-behaviour.md §3.2): a failed connect or handshake does; a bad ACK on
a connection that already worked does not (the policy itself: test_backoff.py)."""

from __future__ import annotations

from spoe_sync.config import Timeouts
from spoe_sync.testing import FakeAgent

from .poolkit import assert_consistent, burst, make_pool, statuses


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
