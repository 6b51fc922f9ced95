"""The engine's value objects (frozen dataclasses): how a frame ended, the
counters of the pool and of the engine, what a health check saw."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import Ack, AgentHello

__all__ = ["EngineMetrics", "FrameOutcome", "HealthCheckResult", "PoolMetrics", "ServerMetrics"]


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


@dataclass(frozen=True, slots=True)
class EngineMetrics:
    """The SPOE.txt §4 counters of one engine, plus what spoe_sync adds.

    :attr applets: agent connections alive (connecting included).
    :attr idles: connections through their handshake able to take one more frame.
    :attr nb_sending: frames queued or not fully written.
    :attr nb_waiting: frames written and waiting for their ACK.
    :attr nb_processed: events and groups that ran (success, error, or every
        message condition false), HAProxy's ``nb_processed``.
    :attr nb_errors: those of them that ended with a status other than 0.
    :attr nb_skipped: calls that did not run: no message bound to the event,
        SPOE disabled on the stream by an earlier error, or ``maxerrrate`` reached.
    :attr nb_interrupted: processings cut short by the caller (status 5).
    :attr in_progress: events and groups running now.
    :attr submitted: every call of ``process_event``/``send_group`` that got
        past argument checks; once nothing runs it equals ``nb_processed +
        nb_skipped + nb_interrupted`` (none is lost).
    :attr servers: per-server detail of the applet pool.
    """

    applets: int
    idles: int
    nb_sending: int
    nb_waiting: int
    nb_processed: int
    nb_errors: int
    nb_skipped: int = 0
    nb_interrupted: int = 0
    in_progress: int = 0
    submitted: int = 0
    streams: int = 0
    connections_opened: int = 0
    frames_sent: int = 0
    acks_received: int = 0
    servers: tuple[ServerMetrics, ...] = ()

    # HAProxy's log-line names, so a snapshot is a LogCounters too.
    @property
    def sending(self) -> int:
        return self.nb_sending

    @property
    def waiting(self) -> int:
        return self.nb_waiting

    @property
    def processed(self) -> int:
        return self.nb_processed

    @property
    def errors(self) -> int:
        return self.nb_errors

    @classmethod
    def build(cls, pool: PoolMetrics, **counters: int) -> EngineMetrics:
        return cls(applets=pool.applets, idles=pool.idles, nb_sending=pool.nb_sending,
                   nb_waiting=pool.nb_waiting, connections_opened=pool.connections_opened,
                   frames_sent=pool.frames_sent, acks_received=pool.acks_received,
                   servers=pool.servers, **counters)
