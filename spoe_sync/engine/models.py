"""Value objects the engine's connection side hands out (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import Ack, AgentHello

__all__ = ["FrameOutcome", "HealthCheckResult", "PoolMetrics", "ServerMetrics"]


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    """How one NOTIFY ended (:meth:`AppletPool.process`).

    :attr status: the stream status (SPOE.txt §2.2 "set-on-error"): 0 success,
        1 processing timeout, 2 no agent connection could be had, 3 too big and
        not fragmentable, 4 the agent aborted a fragmented NOTIFY, 256+N a
        connection-level failure with SPOP status N (the agent's DISCONNECT code,
        or ours: 1 I/O error, 2 timeout, 4 invalid frame, 12 frame-id not
        found, ...).
    :attr ack: the agent's ACK (actions not yet applied) when status is 0.
    :attr queue_ms: HAProxy's ``qT``: from the call to the NOTIFY's last byte
        written, or -1 if it was never written.
    :attr wait_ms: HAProxy's ``wT``: from written to ACK received, or -1.
    :attr total_ms: the whole call.
    :attr error: what went wrong, in words (None on success).
    :attr server: the agent server that took the frame, when one did.
    """

    status: int
    ack: Ack | None = None
    queue_ms: int = -1
    wait_ms: int = -1
    total_ms: int = 0
    error: str | None = None
    server: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True, slots=True)
class ServerMetrics:
    """One agent server as the pool sees it."""

    name: str
    address: str
    up: bool
    connections: int
    ready: int
    connect_attempts: int
    connect_errors: int
    last_error: str | None
    last_status: int | None
    backoff_remaining: float


@dataclass(frozen=True, slots=True)
class PoolMetrics:
    """SPOE.txt §4 counters of one engine's applets, plus per-server detail.

    :attr applets: applets alive (connecting included, as HAProxy counts them
        from their initialisation).
    :attr idles: applets through their handshake that can take one more frame
        (HAProxy's "idle": able to take more, not "nothing in flight").
    :attr nb_sending: frames queued or not yet fully written.
    :attr nb_waiting: frames written and waiting for their ACK.
    """

    applets: int
    idles: int
    nb_sending: int
    nb_waiting: int
    servers: tuple[ServerMetrics, ...] = ()
    connections_opened: int = 0
    frames_sent: int = 0
    acks_received: int = 0


@dataclass(frozen=True, slots=True)
class HealthCheckResult:
    """What one SPOP health check saw (:func:`spoe_sync.healthcheck`).

    :attr ok: the agent answered a valid AGENT-HELLO (HAProxy's L7OK).
    :attr status: 0 when ok, else the SPOP status of the failure (the agent's
        DISCONNECT code, or the code HAProxy would have sent: 8 unsupported
        version, ...); -1 when no SPOP exchange happened (connection refused,
        timeout).
    :attr reason: HAProxy's check text ("SPOA server is ok", or the reason).
    :attr version/max_frame_size/capabilities: what the agent announced.
    """

    address: str
    ok: bool
    status: int
    reason: str
    version: str | None = None
    max_frame_size: int | None = None
    capabilities: tuple[str, ...] = ()
    hello: AgentHello | None = None
    elapsed_ms: int = 0
