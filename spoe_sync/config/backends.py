"""Agent backends: the servers a ``spoe-agent``'s ``use-backend`` names.

HAProxy takes them from haproxy.cfg; spoe_sync takes them from Python
(``{"name": ["host:port", ...]}`` or :class:`Backend`/:class:`Server` objects) or from
an existing haproxy.cfg (:mod:`.haproxy_cfg`). Addresses use HAProxy's forms:
``host:port``, ``ipv4@host:port``, ``ipv6@[::1]:port`` (or ``[::1]:port``),
``unix@/path`` (or ``/path``), ``abns@name``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from .model import SpoeConfig

__all__ = ["BALANCE_ALGORITHMS", "Backend", "Server", "check_backend", "normalize_backends",
           "parse_address"]

BALANCE_ALGORITHMS = ("roundrobin", "static-rr", "leastconn", "first", "random", "source")


def parse_address(address: str) -> tuple[str, str | None, int | None, str | None]:
    """Split an HAProxy address into ``(family, host, port, path)``.

    :raises ValueError: with a message saying what is wrong.
    """
    text = address.strip()
    prefix, at, rest = text.partition("@")
    if not at:
        prefix, rest = "", text
    if prefix in ("unix",) or (not prefix and rest.startswith("/")):
        if not rest:
            raise ValueError(f"missing socket path in '{address}'")
        return "unix", None, None, rest
    if prefix == "abns":
        if not rest:
            raise ValueError(f"missing socket name in '{address}'")
        return "unix", None, None, "\0" + rest
    if prefix not in ("", "ipv4", "ipv6", "tcp", "tcp4", "tcp6"):
        raise ValueError(f"unknown address family '{prefix}' in '{address}'")
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0 or rest[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid address '{address}' (expected [ipv6]:port)")
        host, port_text = rest[1:close], rest[close + 2 :]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            raise ValueError(f"missing port in '{address}'")
    if not host:
        raise ValueError(f"missing host in '{address}'")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid port '{port_text}' in '{address}'")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if ":" in host:
            raise ValueError(f"invalid address '{host}' in '{address}'") from None
        family = "ipv6" if prefix in ("ipv6", "tcp6") else "ipv4"  # a name, resolved later
    else:
        family = "ipv6" if ip.version == 6 else "ipv4"
        if (prefix in ("ipv4", "tcp4") and family != "ipv4") or \
                (prefix in ("ipv6", "tcp6") and family != "ipv6"):
            raise ValueError(f"address '{host}' does not match '{prefix}@' in '{address}'")
    return family, host, int(port_text), None


@dataclass(frozen=True)
class Server:
    """One agent server (HAProxy ``server`` line).

    :attr address: as written (``"10.0.0.1:12345"``, ``"unix@/run/spoa.sock"``...).
    :attr inter: health-check interval in seconds (``check`` with ``option spop-check``).
    :attr family: ``"ipv4"``, ``"ipv6"`` or ``"unix"`` (a host name counts as ``ipv4``
        unless written ``ipv6@name:port``).
    """

    address: str
    name: str | None = None
    weight: int = 1
    maxconn: int = 0
    check: bool = False
    inter: float = 2.0
    rise: int = 2
    fall: int = 3
    disabled: bool = False
    family: str = field(init=False)
    host: str | None = field(init=False)
    port: int | None = field(init=False)
    path: str | None = field(init=False)

    def __post_init__(self) -> None:
        try:
            family, host, port, path = parse_address(self.address)
        except ValueError as exc:
            raise ConfigError(f"server {self.name or self.address}: {exc}") from None
        if not 0 <= self.weight <= 256:
            raise ConfigError(f"server {self.name or self.address}: weight must be in [0, 256]")
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "path", path)

    @property
    def label(self) -> str:
        """The name if any, else the address (for messages and logs)."""
        return self.name or self.address


@dataclass(frozen=True)
class Backend:
    """A backend of agent servers (HAProxy ``backend`` section, ``mode tcp``/``spop``)."""

    name: str
    servers: tuple[Server, ...]
    balance: str = "roundrobin"
    timeout_connect: float | None = None
    timeout_server: float | None = None
    spop_check: bool = False
    mode: str = "tcp"
    filename: str | None = None
    lineno: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", tuple(self.servers))
        if self.balance not in BALANCE_ALGORITHMS:
            raise ConfigError(f"backend '{self.name}': unknown balance algorithm "
                              f"'{self.balance}'", self.filename, self.lineno)


def _server(item: str | Server, index: int) -> Server:
    if isinstance(item, Server):
        return item
    if isinstance(item, str):
        return Server(item, name=f"srv{index}")
    raise TypeError(f"a server is a 'host:port' string or a Server, not {type(item).__name__}")


def normalize_backends(
    backends: Mapping[str, Sequence[str | Server] | Backend] | Sequence[Backend] | None,
) -> dict[str, Backend]:
    """Turn the ways users give backends into ``{name: Backend}``.

    Accepts ``{"name": ["host:port", Server(...)]}``, ``{"name": Backend(...)}`` or a
    sequence of :class:`Backend`. A bare string is refused (it would be read as a list
    of one-character addresses).
    """
    if backends is None:
        return {}
    result: dict[str, Backend] = {}
    if isinstance(backends, Mapping):
        for name, value in backends.items():
            if isinstance(value, Backend):
                result[name] = value
            elif isinstance(value, str):
                raise TypeError(f"backend '{name}': give a list of addresses, not a string")
            else:
                servers = tuple(_server(s, i) for i, s in enumerate(value, start=1))
                result[name] = Backend(name, servers)
        return result
    for backend in backends:
        if not isinstance(backend, Backend):
            raise TypeError(f"expected Backend objects, got {type(backend).__name__}")
        if backend.name in result:
            raise ConfigError(f"backend '{backend.name}' given twice", backend.filename,
                              backend.lineno)
        result[backend.name] = backend
    return result


def check_backend(config: SpoeConfig, backends: Mapping[str, Backend]) -> Backend:
    """The backend of ``config``'s agent, checked as HAProxy does at startup.

    :raises ConfigError: ``unknown backend 'x' used by SPOE agent ...`` or a backend that
        is not ``mode tcp``/``spop`` (HAProxy 2.6: "does not support HTTP mode").
    """
    agent = config.agent
    declared = f"{agent.filename}:{agent.lineno}"
    backend = backends.get(agent.use_backend)
    if backend is None:
        raise ConfigError(f"unknown backend '{agent.use_backend}' used by SPOE agent "
                          f"'{agent.name}' declared at {declared}.", agent.filename, agent.lineno)
    if backend.mode not in ("tcp", "spop"):
        raise ConfigError(f"backend '{backend.name}' used by SPOE agent '{agent.name}' declared "
                          f"at {declared} does not support HTTP mode.", agent.filename,
                          agent.lineno)
    return backend
