"""A snapshot of one engine's counters (:meth:`Engine.metrics`)."""

from __future__ import annotations

from dataclasses import dataclass

from .models import PoolMetrics, ServerMetrics

__all__ = ["EngineMetrics"]


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
