"""Choosing the server of a new applet: the agent backend's ``balance``
(roundrobin, leastconn, first, random), servers down / disabled / backing off /
at maxconn skipped (docs/explanation/haproxy-behaviour.md §3.1)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from spoe_sync.config import Server
from spoe_sync.engine.balance import Balancer, ServerState, parse_address


def states(*specs: Server) -> list[ServerState]:
    return [ServerState(s) for s in specs]


@pytest.mark.parametrize(("text", "family", "sockaddr"), [
    pytest.param("127.0.0.1:12345", "ipv4", ("127.0.0.1", 12345), id="ipv4"),
    pytest.param("[::1]:80", "ipv6", ("::1", 80), id="ipv6"),
    pytest.param("ipv4@localhost:9", "ipv4", ("localhost", 9), id="ipv4-prefix"),
    pytest.param("unix@/run/agent.sock", "unix", "/run/agent.sock", id="unix-prefix"),
    pytest.param("/run/agent.sock", "unix", "/run/agent.sock", id="unix-path"),
])
def test_parse_address(text: str, family: str, sockaddr: object) -> None:
    assert parse_address(text) == (family, sockaddr)


@pytest.mark.parametrize("text", ["nohost", "host:", "host:99999", ":80"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_roundrobin_respects_weights() -> None:
    servers = states(Server("127.0.0.1:1", "a", weight=3), Server("127.0.0.1:2", "b", weight=1))
    balancer = Balancer(servers, "roundrobin")
    picks = Counter(balancer.choose().name for _ in range(40))  # type: ignore[union-attr]
    assert picks == {"a": 30, "b": 10}


def test_leastconn_picks_fewest_applets() -> None:
    servers = states(Server("127.0.0.1:1", "a"), Server("127.0.0.1:2", "b"))
    servers[0].connections, servers[0].ready = 5, 5
    servers[1].connections, servers[1].ready = 2, 2
    assert Balancer(servers, "leastconn").choose() is servers[1]


def test_first_fills_the_first_server_up_to_maxconn() -> None:
    servers = states(Server("127.0.0.1:1", "a", maxconn=2), Server("127.0.0.1:2", "b"))
    balancer = Balancer(servers, "first")
    servers[0].ready = 1
    assert balancer.choose() is servers[0]
    servers[0].connections = 2
    assert balancer.choose() is servers[1]


def test_random_only_returns_usable_servers() -> None:
    servers = states(Server("127.0.0.1:1", "a"), Server("127.0.0.1:2", "b"))
    servers[0].up = False
    balancer = Balancer(servers, "random", rng=random.Random(1))
    assert {balancer.choose().name for _ in range(20)} == {"b"}  # type: ignore[union-attr]


def test_down_disabled_backing_off_and_probing_servers_are_skipped() -> None:
    servers = states(Server("127.0.0.1:1", "down"), Server("127.0.0.1:2", "disabled", disabled=True),
                     Server("127.0.0.1:3", "failing"), Server("127.0.0.1:4", "probing"))
    servers[0].up = False
    servers[2].record_failure(258, "timeout hello", 0.0)
    servers[3].connecting, servers[3].connections = 1, 1
    assert Balancer(servers, "roundrobin").choose() is None
    assert not servers[1].up


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unsupported balance algorithm"):
        Balancer(states(Server("127.0.0.1:1")), "source")


def test_a_bare_address_is_a_server_line_with_its_defaults() -> None:
    # the defaults of a ``server`` line live in one place: spoe_sync.config.Server
    state = ServerState("127.0.0.1:9")
    assert state.server == Server("127.0.0.1:9")
    assert (state.name, state.weight, state.maxconn, state.up) == ("127.0.0.1:9", 1, 0, True)
