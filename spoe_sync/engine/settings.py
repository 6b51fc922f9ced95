"""What the applets need from ``spoe-agent`` and its backend, resolved once.

Config objects are duck-typed on the attribute names of
:class:`spoe_sync.config.AgentConfig` and :class:`spoe_sync.config.Backend`, so a
pool can also be built from plain objects or a list of addresses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.connection import DEFAULT_MAX_ACK_ACTIONS, DEFAULT_MAX_ACK_SIZE

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_HELLO_TIMEOUT", "DEFAULT_MAX_CONNECTING",
           "DEFAULT_WRITE_TIMEOUT", "PoolSettings", "servers_of"]

#: ``timeout hello`` when the configuration sets none (HAProxy would wait forever).
DEFAULT_HELLO_TIMEOUT = 5.0
#: ``timeout connect`` when the backend sets none.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: TCP+SPOP handshakes in progress at once, pool-wide.
DEFAULT_MAX_CONNECTING = 8
#: The deadline of one write to an agent when neither ``timeout idle`` nor
#: ``timeout processing`` is known (seconds).
DEFAULT_WRITE_TIMEOUT = 10.0


@dataclass(frozen=True)
class PoolSettings:
    """What the applets need from ``spoe-agent`` and its backend, resolved once."""

    max_frame_size: int = 16380
    max_waiting_frames: int = 20
    pipelining: bool = True
    async_: bool = True
    send_frag_payload: bool = True
    maxconnrate: int = 0
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    hello_timeout: float = DEFAULT_HELLO_TIMEOUT
    idle_timeout: float | None = None
    idle_status: int = 2
    #: how long one write may block (an agent that stopped reading): ``timeout
    #: idle``, else ``timeout processing``, else :data:`DEFAULT_WRITE_TIMEOUT`
    write_timeout: float = DEFAULT_WRITE_TIMEOUT
    #: the largest payload a fragmented ACK may reassemble to, and the most actions of one ACK
    #: decoded: what one ACK may cost is bounded whatever the agent sends
    max_ack_size: int = DEFAULT_MAX_ACK_SIZE
    max_ack_actions: int = DEFAULT_MAX_ACK_ACTIONS

    @classmethod
    def from_config(cls, agent: Any, backend: Any, *, processing: float | None = None,
                    max_ack_size: int = DEFAULT_MAX_ACK_SIZE,
                    max_ack_actions: int = DEFAULT_MAX_ACK_ACTIONS) -> PoolSettings:
        """:param processing: the ``timeout processing`` in force, when the
            caller overrides the configuration's.
        :param max_ack_size: bytes a fragmented ACK may reassemble to.
        :param max_ack_actions: actions of one ACK decoded."""
        for name, value in (("max_ack_size", max_ack_size), ("max_ack_actions", max_ack_actions)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        timeouts = getattr(agent, "timeouts", None)
        hello = getattr(timeouts, "hello", None)
        idle = getattr(timeouts, "idle", None)
        idle_status = 2
        # Backend ``timeout server`` shorter than ``timeout idle`` ends idle
        # connections first, with an I/O error (docs/explanation/haproxy-behaviour.md §3.1).
        server_timeout = getattr(backend, "timeout_server", None)
        if server_timeout is not None and (idle is None or server_timeout < idle):
            idle, idle_status = server_timeout, 1
        connect = getattr(backend, "timeout_connect", None)
        if processing is None:
            processing = getattr(timeouts, "processing", None)
        write = idle if idle is not None else processing
        return cls(
            max_frame_size=int(getattr(agent, "max_frame_size", 16380)),
            max_waiting_frames=max(int(getattr(agent, "max_waiting_frames", 20)), 1),
            pipelining=bool(getattr(agent, "pipelining", True)),
            async_=bool(getattr(agent, "async_", True)),
            send_frag_payload=bool(getattr(agent, "send_frag_payload", True)),
            maxconnrate=int(getattr(agent, "maxconnrate", 0) or 0),
            connect_timeout=connect if connect is not None else DEFAULT_CONNECT_TIMEOUT,
            hello_timeout=hello if hello is not None else DEFAULT_HELLO_TIMEOUT,
            idle_timeout=idle,
            idle_status=idle_status,
            write_timeout=write if write else DEFAULT_WRITE_TIMEOUT,
            max_ack_size=max_ack_size,
            max_ack_actions=max_ack_actions,
        )


def servers_of(backend: Any) -> tuple[Sequence[Any], str, str]:
    if isinstance(backend, str):
        return (backend,), "roundrobin", "backend"
    if isinstance(backend, Sequence):
        return tuple(backend), "roundrobin", "backend"
    return (tuple(backend.servers), getattr(backend, "balance", "roundrobin") or "roundrobin",
            getattr(backend, "name", "backend"))
