"""Agent backends (SPOE.txt §2.2 ``use-backend``, docs/howto/haproxy-cfg.md): HAProxy address forms,
the ways users give servers, and the startup check of the agent's backend."""

from __future__ import annotations

import pytest

from spoe_sync import load_config
from spoe_sync.config import Backend, Server, check_backend, normalize_backends, parse_address
from spoe_sync.errors import ConfigError


@pytest.mark.parametrize(("address", "parsed"), [
    pytest.param("10.0.0.1:12345", ("ipv4", "10.0.0.1", 12345, None), id="ipv4"),
    pytest.param("ipv4@10.0.0.1:1", ("ipv4", "10.0.0.1", 1, None), id="ipv4-prefix"),
    pytest.param("agent.local:12345", ("ipv4", "agent.local", 12345, None), id="hostname"),
    pytest.param("ipv6@agent.local:12345", ("ipv6", "agent.local", 12345, None), id="hostname-v6"),
    pytest.param("[::1]:12345", ("ipv6", "::1", 12345, None), id="ipv6-brackets"),
    pytest.param("ipv6@[::1]:12345", ("ipv6", "::1", 12345, None), id="ipv6-prefix"),
    pytest.param("ipv6@::1:12345", ("ipv6", "::1", 12345, None), id="ipv6-last-colon"),
    pytest.param("unix@/run/spoa.sock", ("unix", None, None, "/run/spoa.sock"), id="unix"),
    pytest.param("/run/spoa.sock", ("unix", None, None, "/run/spoa.sock"), id="unix-path"),
    pytest.param("abns@spoa", ("unix", None, None, "\0spoa"), id="abstract"),
])
def test_address_forms(address, parsed):
    assert parse_address(address) == parsed
    server = Server(address)
    assert (server.family, server.host, server.port, server.path) == parsed


@pytest.mark.parametrize(("address", "message"), [
    pytest.param("10.0.0.1", "missing port", id="no-port"),
    pytest.param("10.0.0.1:0", "invalid port '0'", id="port-0"),
    pytest.param("10.0.0.1:70000", "invalid port '70000'", id="port-big"),
    pytest.param("[::1:80", "invalid address", id="bracket"),
    pytest.param("ipv4@[::1]:80", "does not match 'ipv4@'", id="family-mismatch"),
    pytest.param("sctp@1.2.3.4:5", "unknown address family 'sctp'", id="family"),
    pytest.param("unix@", "missing socket path", id="unix-empty"),
])
def test_bad_addresses(address, message):
    with pytest.raises(ConfigError, match=message):
        Server(address, name="s1")


def test_server_defaults_follow_haproxy():
    s = Server("127.0.0.1:1")
    assert (s.weight, s.maxconn, s.check, s.inter, s.rise, s.fall, s.disabled) == (1, 0, False, 2.0, 2, 3, False)
    assert Server("127.0.0.1:1", name="a").label == "a" and s.label == "127.0.0.1:1"
    with pytest.raises(ConfigError, match="weight"):
        Server("127.0.0.1:1", weight=300)


def test_normalize_backends_forms():
    explicit = Backend("b", [Server("127.0.0.1:2", name="x")], balance="leastconn")
    result = normalize_backends({"a": ["127.0.0.1:1", Server("unix@/s", name="u")], "b": explicit})
    assert result["b"] is explicit and isinstance(explicit.servers, tuple)
    assert [(s.name, s.address) for s in result["a"].servers] == [("srv1", "127.0.0.1:1"), ("u", "unix@/s")]
    assert result["a"].balance == "roundrobin"
    assert normalize_backends([explicit]) == {"b": explicit}
    assert normalize_backends(None) == {}
    with pytest.raises(TypeError, match="not a string"):
        normalize_backends({"a": "127.0.0.1:1"})
    with pytest.raises(ConfigError, match="given twice"):
        normalize_backends([explicit, explicit])
    with pytest.raises(ConfigError, match="unknown balance algorithm"):
        Backend("c", (), balance="fastest")


def test_check_backend():
    cfg = load_config("spoe-agent a\n    use-backend agents\n    timeout hello 1\n    timeout idle 1\n"
                      "    timeout processing 1\n    messages m\nspoe-message m\n    event on-client-session\n")
    agents = Backend("agents", (Server("127.0.0.1:1"),))
    assert check_backend(cfg, {"agents": agents}) is agents
    with pytest.raises(ConfigError) as info:
        check_backend(cfg, {})
    assert info.value.message == "unknown backend 'agents' used by SPOE agent 'a' declared at <string>:1."
    assert (info.value.filename, info.value.lineno) == ("<string>", 1)
    http = Backend("agents", (Server("127.0.0.1:1"),), mode="http")
    with pytest.raises(ConfigError, match="does not support HTTP mode"):
        check_backend(cfg, {"agents": http})
    assert check_backend(cfg, {"agents": Backend("agents", (), mode="spop")}).mode == "spop"
