"""The engine: HAProxy's SPOE stream processing on gevent (SPOE.txt §2.2-2.4, §3.3-3.5, §4).

::

    engine = Engine(config, backends={"iprep-servers": ["127.0.0.1:12345"]})  # no I/O yet
    stream = engine.new_stream(samples)                 # one request / TCP connection
    result = engine.process_event(stream, "on-frontend-http-request")
    stream.vars.get("txn.iprep.ip_score")

One processing (an event, or a ``send-spoe-group``), as HAProxy 2.6 runs it
(docs/explanation/haproxy-behaviour.md §2, §4-6):

1. skipped silently (no frame, no variable, no log, no counter) when SPOE is
   disabled on the stream by an earlier error, when ``maxerrrate`` is reached,
   or when no message is bound to the event; when messages are bound but every
   condition is false, nothing is sent or logged either, but HAProxy counts the
   processing in ``nb_processed``;
2. the messages are encoded in order, each only if its condition holds, into
   one NOTIFY; too big and not fragmentable: status 3, nothing sent;
3. the applet pool sends it and waits for the ACK; ``timeout processing``
   bounds everything from step 2 on (status 1, the frame abandoned);
4. the ACK's actions are applied, then ``set-process-time``,
   ``set-total-time`` and ``set-on-error``; counters, then the log line.
   Never a success past the deadline: an ACK this greenlet sees after it, or
   whose actions finish applying after it, ends with status 1 and none of its
   actions stays (they are undone), as if it had never come.

Nothing an agent or the network does raises: it is a status on the result.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

from gevent.lock import Semaphore

from ..config import Backend, SpoeConfig, load_config, normalize_backends
from ..config.backends import check_backend
from ..config.haproxy_cfg import HaproxyConfig
from ..errors import ConfigError, EngineClosed
from ..rules import SampleSource
from . import log
from .actions import ActionReport, DroppedVar, Journal, apply_ack, undo
from .log import LogCounters, SpoeLog
from .models import EngineMetrics
from .pool import AppletPool
from .prepared import PreparedMessage, messages_head
from .ratelimit import RateCounter
from .result import (
    _STATUSES,
    ProcessingResult,
    Timings,
    _measured,
    set_engine_vars,
    stream_status,
)
from .stream import Stream
from .vars import ProcVars, Session, VarLimits, Vars
from .waiting import FrameRequest

__all__ = ["DEFAULT_TIMEOUT_PROCESSING", "Engine"]

#: ``timeout processing`` (seconds) when neither the configuration nor the
#: ``timeout_processing`` argument sets one: never a stream waiting forever.
DEFAULT_TIMEOUT_PROCESSING = 10.0

_SKIPPED_DISABLED = "SPOE disabled for this stream by an earlier error"
_SKIPPED_ERRRATE = "maxerrrate reached"
_SKIPPED_NOTHING = "no message to send"
_LATE_ACK = "the ACK came after timeout processing: its actions were not applied"
_LATE_APPLY = "the ACK's actions finished applying after timeout processing: they were undone"
_NO_ACTIONS = ActionReport()
_NO_VARS: Mapping[str, Any] = MappingProxyType({})
monotonic = time.monotonic

def _resolve_backend(config: SpoeConfig, backends: Any) -> Backend:
    if isinstance(backends, HaproxyConfig):
        backends = backends.backends
    try:
        table = normalize_backends(backends)
    except TypeError as exc:
        raise ConfigError(str(exc), config.filename, None) from None
    return check_backend(config, table)


class Engine:
    """HAProxy's SPOE for one ``spoe-agent`` (one engine scope of a SPOE file).

    :param config: a loaded :class:`~spoe_sync.config.SpoeConfig`, or a path or
        configuration text for :func:`~spoe_sync.config.load_config`.
    :param backends: the agent backends: ``{"name": ["host:port", ...]}``,
        ``{"name": Backend(...)}``, a sequence of :class:`~spoe_sync.config.Backend`,
        or a :class:`~spoe_sync.config.HaproxyConfig`.
    :param engine: the ``[scope]`` to read when ``config`` is a path or text.
    :param var_limits: caps on each stream's and session's variables.
    :param register_vars: more ``proc.*`` names agents may set (besides
        ``register-var-names`` and those the configuration reads).
    :param timeout_processing: seconds; overrides ``timeout processing``.  When
        neither is set, :data:`DEFAULT_TIMEOUT_PROCESSING` applies (HAProxy
        would let a silent agent hang the stream forever; the configuration
        check still warns).
    :param pool_options: passed to :class:`~spoe_sync.engine.AppletPool`
        (``engine_id``, ``connect``, ``max_connecting``, ``max_applets``, ``backoff``).
    :raises ConfigError: ``use-backend`` names no given backend, the backend has
        no server, or a ``log`` target is invalid.

    Nothing connects before the first processing.
    """

    def __init__(self, config: SpoeConfig | str | os.PathLike[str],
                 backends: Mapping[str, Any] | Sequence[Backend] | HaproxyConfig | None = None,
                 *, engine: str | None = None, var_limits: VarLimits | None = None,
                 register_vars: Sequence[str] = (), timeout_processing: float | None = None,
                 **pool_options: Any) -> None:
        if not isinstance(config, SpoeConfig):
            config = load_config(config, engine)
        self.config = config
        self.agent = agent = config.agent
        self.backend = _resolve_backend(config, backends)
        self.var_limits = var_limits or VarLimits()
        self.proc_vars = ProcVars(self._proc_names(register_vars))
        self._events = {event: tuple(PreparedMessage(m) for m in messages)
                        for event, messages in config.events.items()}
        self._groups = {name: tuple(PreparedMessage(m) for m in config.group_messages(name))
                        for name in config.groups}
        if timeout_processing is None:
            timeout_processing = agent.timeouts.processing
        if timeout_processing is None:
            timeout_processing = DEFAULT_TIMEOUT_PROCESSING
        elif not timeout_processing > 0:
            raise ConfigError(f"SPOE agent '{agent.name}': timeout processing must be > 0, "
                              f"not {timeout_processing!r}", agent.filename, agent.lineno)
        #: the ``timeout processing`` in force, in seconds (never None: no hang)
        self.timeout_processing: float = float(timeout_processing)
        self._timeout = self.timeout_processing
        try:
            self.pool = AppletPool(agent, self.backend, processing_timeout=self._timeout,
                                   **pool_options)
        except ConfigError as exc:
            raise ConfigError(f"SPOE agent '{agent.name}': {exc.message}", agent.filename,
                              agent.lineno) from None
        self._max_payload = self.pool.max_payload
        try:
            self.spoe_log = SpoeLog.from_agent(cast(Any, agent))
        except ValueError as exc:
            raise ConfigError(f"SPOE agent '{agent.name}': {exc}", agent.filename,
                              agent.lineno) from None
        self._engine_vars = bool(agent.set_process_time or agent.set_total_time)
        self._logging = self.spoe_log.enabled
        self._err_rate = RateCounter(1.0)
        self._sids = itertools.count()
        self._skipped: dict[tuple[str, str, str], ProcessingResult] = {}
        self._closed = False
        self.nb_processed = 0
        self.nb_errors = 0
        self.nb_skipped = 0
        self.nb_interrupted = 0
        self.in_progress = 0
        self.submitted = 0
        self.streams = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], engine: str | None = None, *,
                  backends: Any = None, **options: Any) -> Engine:
        """Load a SPOE file (HAProxy's ``filter spoe [engine <name>] config <path>``)
        and build its engine."""
        return cls(load_config(path, engine), backends, **options)

    def _proc_names(self, extra: Sequence[str]) -> list[str]:
        """``proc`` names agents may set: ``register-var-names``, ``proc.*``
        names the configuration reads (HAProxy creates them at parse time), and
        ``extra``."""
        names = list(self.agent.register_var_names)
        for message in self.config.messages.values():
            refs = [r for a in message.args for r in a.expr.var_refs]
            if message.condition is not None:
                refs.extend(message.condition.var_refs)
            names.extend(r for r in refs if r.startswith("proc."))
        names.extend(extra)
        return list(dict.fromkeys(names))

    # ------------------------------------------------------------------ streams

    @property
    def name(self) -> str:
        """The agent name (``[AGENT]`` in the log line)."""
        return self.agent.name

    @property
    def events(self) -> tuple[str, ...]:
        """The events that have at least one message."""
        return tuple(e for e, m in self._events.items() if m)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self._groups)

    def new_session(self) -> Session:
        """A client session: its ``sess.*`` variables outlive each stream."""
        return Session(limits=self.var_limits)

    def new_stream(self, samples: SampleSource, session: Session | None = None, *,
                   kind: str = "http", vars: Vars | None = None) -> Stream:
        """A stream (one HTTP transaction, or one TCP session with ``kind="tcp"``).

        :param samples: what the fetches read (:mod:`spoe_sync.samples`).
        :param session: the client session; a private one when omitted.
        :param vars: the transaction's variables, when another engine's stream
            of the same transaction already has them (HAProxy's filters of one
            stream share its variables): ``engine_b.new_stream(samples,
            vars=stream_a.vars)``.  Its session is the stream's.
        :raises TypeError: ``samples`` is not a :class:`~spoe_sync.rules.SampleSource`.
        :raises ValueError: ``session`` is not the session of ``vars``.
        :raises EngineClosed: after :meth:`close`.
        """
        if self._closed:
            raise EngineClosed(f"SPOE agent '{self.agent.name}': the engine is closed")
        if not isinstance(samples, SampleSource):
            # Anything else would end every processing with status 255 (the
            # fetches fail), i.e. a WAF failing open without a word.
            raise TypeError(f"samples must be a spoe_sync SampleSource (spoe_sync.samples), "
                            f"not {type(samples).__name__}")
        if vars is None:
            # Without a session, the stream's private one is made when first used.
            vars = Vars(session, self.proc_vars, limits=self.var_limits)
        elif not isinstance(vars, Vars):
            raise TypeError(f"vars must be a spoe_sync Vars, not {type(vars).__name__}")
        elif session is not None and session is not vars.session:
            raise ValueError("new_stream(): session is not the session of vars")
        self.streams += 1
        return Stream(self, next(self._sids) & 0xFFFFFFFF, samples, vars, kind)

    # ------------------------------------------------------------------ processing

    def process_event(self, stream: Stream, event: str) -> ProcessingResult:
        """Send the messages bound to ``event`` (those whose condition holds)
        in one NOTIFY, wait for the ACK and apply its actions.  Blocks this
        greenlet only.

        :raises ValueError: ``event`` is not one of the eight SPOE events, or
            ``stream`` belongs to another engine.
        :raises EngineClosed: after :meth:`close`.
        """
        messages = self._events.get(event)
        if messages is None:
            from ..config import EVENTS
            if event not in EVENTS:
                raise ValueError(f"unknown SPOE event {event!r} (expected one of "
                                 f"{', '.join(EVENTS)})")
            messages = ()
        return self._process(stream, "event", event, messages)

    def send_group(self, stream: Stream, group: str) -> ProcessingResult:
        """``send-spoe-group``: send a group's messages (each only if its own
        condition holds) in one NOTIFY; may run any number of times per stream.

        :raises ValueError: the agent has no such group (its ``groups`` lines).
        :raises EngineClosed: after :meth:`close`.
        """
        messages = self._groups.get(group)
        if messages is None:
            raise ValueError(f"SPOE agent '{self.agent.name}' has no group {group!r}")
        return self._process(stream, "group", group, messages)

    def _process(self, stream: Stream, kind: str, name: str,
                 messages: tuple[PreparedMessage, ...]) -> ProcessingResult:
        if stream.engine is not self:
            raise ValueError("this stream belongs to another engine")
        if self._closed:
            raise EngineClosed(f"SPOE agent '{self.agent.name}': the engine is closed")
        self.submitted += 1
        lock = stream._lock
        if lock is None and not stream._busy:
            # Nobody else on this stream (the rule): a flag is enough, no
            # Semaphore to build for each stream.
            stream._busy = True
        else:
            if lock is None:
                # Another processing runs on the fast path: it hands the stream
                # over through this lock when it ends.
                lock = stream._lock = Semaphore(0)
            try:
                lock.acquire()
            except BaseException:
                self.nb_interrupted += 1
                raise
        self.in_progress += 1
        try:
            # The processing itself (one function: this runs for every event).
            agent = self.agent
            if not messages:  # HAProxy returns before starting anything: not counted
                return self._skip(kind, name, _SKIPPED_NOTHING)
            if stream.disabled_by is not None:
                return self._skip(kind, name, _SKIPPED_DISABLED)
            if agent.maxerrrate and not self._err_rate.allows(agent.maxerrrate):
                return self._skip(kind, name, _SKIPPED_ERRRATE)
            start = monotonic()
            deadline = start + self._timeout
            try:
                payload = self._encode(stream, messages)
            except Exception as exc:  # a fetch or encoder bug must not break the stream
                return self._end(stream, kind, name, start, 255, None,
                                 error=f"internal error while encoding: {exc!r}")
            if payload is None:
                # Every condition was false: no frame, no variable, no log, but the
                # processing had started, so HAProxy 2.6 counts it in nb_processed
                # (spoe_stop_processing(), checked against HAProxy in the
                # conformance tier).
                self.nb_processed += 1
                return self._skipped_result(kind, name, _SKIPPED_NOTHING)
            if len(payload) > self._max_payload:
                too_big = self.pool.unsendable(len(payload), messages_head(messages))
                if too_big is not None:
                    return self._end(stream, kind, name, start, 3, None, error=too_big)
            queued = monotonic()
            frame_id = stream._frame_id = stream._frame_id + 1  # never reused (see stream.py)
            try:
                request = self.pool.send(stream.id, frame_id, payload, deadline, queued)
            except EngineClosed:
                self.nb_interrupted += 1  # closed while this stream waited for its turn
                raise
            except Exception as exc:  # a pool bug: fail open, as for any agent failure
                return self._end(stream, kind, name, start, 255, None, queued=queued,
                                 error=f"internal error: {exc!r}")
            except BaseException:
                self._interrupted(stream)
                raise
            report: ActionReport | None = None
            status = request.status
            ack = request.ack
            error = request.error
            end = None
            if status == 0 and ack is not None:
                # Never a success past the deadline (issue 11): this greenlet may
                # run long after the ACK came when the worker is busy.  The
                # pool's last clock read (``t_end``: this greenlet running
                # again, the frame gone from the engine) is also the
                # processing's end (_end reads no other).
                end = request.t_end
                if end > deadline:
                    status, error = 1, _LATE_ACK
                elif ack.actions or ack.truncated or ack.undecoded:
                    journal: Journal = []
                    report = apply_ack(ack, stream._vars, agent.var_prefix, agent.force_set_var,
                                       agent.name, journal)
                    end = monotonic()
                    if end > deadline:
                        undo(journal)
                        report, status, error = None, 1, _LATE_APPLY
                else:
                    report = _NO_ACTIONS
            return self._end(stream, kind, name, start, status, request, queued, report, error,
                             end)
        finally:
            self.in_progress -= 1
            lock = stream._lock
            if lock is None:
                stream._busy = False
            else:
                lock.release()

    def _skip(self, kind: str, name: str, why: str) -> ProcessingResult:
        self.nb_skipped += 1
        return self._skipped_result(kind, name, why)

    def _skipped_result(self, kind: str, name: str, why: str) -> ProcessingResult:
        """The result of a processing that sent nothing.  Nothing in it differs
        from one call to the next (status 0, no action, no variable, every
        timing -1, a constant reason) and it is immutable (a frozen dataclass, a
        read-only ``vars_set``, a frozen :class:`Timings`): one shared object
        per event or group and reason, instead of a new one on every request
        that has nothing to send."""
        key = (kind, name, why)
        result = self._skipped.get(key)
        if result is None:
            result = self._skipped[key] = ProcessingResult(kind, name, skipped=True, error=why)
        return result

    @staticmethod
    def _encode(stream: Stream, messages: tuple[PreparedMessage, ...]) -> bytes | None:
        ctx = stream._ctx
        payload = None
        parts: list[bytes] | None = None  # from the second message sent (most send one)
        for message in messages:
            condition = message.condition
            if condition is not None and not condition.evaluate(ctx):
                continue
            exprs = message.exprs
            if len(exprs) == 1:  # the usual message: no sequence to build
                part = message.encoder.encode_one(exprs[0].evaluate(ctx))
            else:
                part = message.encoder.encode([e.evaluate(ctx) for e in exprs])
            if payload is None:
                payload = part
            elif parts is None:
                parts = [payload, part]
            else:
                parts.append(part)
        return payload if parts is None else b"".join(parts)

    def _end(self, stream: Stream, kind: str, name: str, start: float, status: int,
             request: FrameRequest | None, queued: float | None = None,
             report: ActionReport | None = None, error: str | None = None,
             end: float | None = None) -> ProcessingResult:
        """Finish a processing that ran: timings, engine variables, counters, log.

        ``end`` is the clock read the caller has just made, if any.  The timings
        of a processing that sent a frame are made from its marks when first
        read (``result.timings``; the log line reads them)."""
        agent = self.agent
        if end is None:
            end = monotonic()
        process_ms = int((end - start) * 1000.0)
        request_ms = -1 if queued is None else int((queued - start) * 1000.0)
        stream.total_ms += process_ms
        dropped: tuple[DroppedVar, ...] = ()
        if self._engine_vars or status:
            dropped = set_engine_vars(stream.vars, cast(Any, agent), status=status,
                                      process_ms=process_ms, total_ms=stream.total_ms).dropped
        self.nb_processed += 1
        if status:
            self.nb_errors += 1
            if agent.maxerrrate:
                self._err_rate.add()
            if not agent.continue_on_error:
                stream.disabled_by = status
            for drop in dropped:
                log.debug(f"SPOE: [{agent.name}] {drop.name!r} not set: {drop.reason}")
        elif dropped:
            for drop in dropped:
                log.debug(f"SPOE: [{agent.name}] {drop.name!r} not set: {drop.reason}")
        if request is None:
            result = ProcessingResult._trusted(
                kind, name, stream_status(status), (), _NO_VARS, dropped,
                Timings._trusted(request_ms, -1, -1, -1, process_ms), False, error, False)
        else:
            marks = (request_ms, process_ms, status, request.t_start, request.t_written,
                     request.t_acked, request.t_end, queued, end, report is not None)
            if report is not None:  # status 0, or 1 past the deadline: a StreamStatus
                result = _measured(
                    kind, name, _STATUSES[status] if status < 256 else stream_status(status),
                    request.ack.actions, report.vars_set,  # type: ignore[union-attr]
                    report.dropped + dropped if dropped else report.dropped, error,
                    report.truncated, marks)  # type: ignore[arg-type]
            else:
                result = _measured(kind, name, stream_status(status), (), _NO_VARS, dropped,
                                   error, False, marks)  # type: ignore[arg-type]
        if self._logging:
            self.spoe_log.processing(result, stream.id, self._log_counters())
        return result

    def _interrupted(self, stream: Stream) -> None:
        """The caller killed or timed out the stream's greenlet (HAProxy's
        ``send-spoe-group`` interrupt, §5.3): status 5 in ``set-on-error``, SPOE
        disabled unless ``continue-on-error``; no log, no error count, no time."""
        self.nb_interrupted += 1
        try:
            set_engine_vars(stream.vars, cast(Any, self.agent), status=5, process_ms=0,
                            total_ms=stream.total_ms, interrupted=True)
        except Exception:  # never mask the caller's exception
            pass
        if not self.agent.continue_on_error:
            stream.disabled_by = 5

    def _log_counters(self) -> LogCounters:
        return LogCounters.from_pool(self.pool.metrics(), nb_errors=self.nb_errors,
                                     nb_processed=self.nb_processed)

    # ------------------------------------------------------------------ lifecycle

    def metrics(self) -> EngineMetrics:
        """A snapshot: the pool's ``applets``, ``idles``, ``nb_sending``,
        ``nb_waiting`` and servers, and the processing counters."""
        return EngineMetrics.build(
            self.pool.metrics(), nb_processed=self.nb_processed, nb_errors=self.nb_errors,
            nb_skipped=self.nb_skipped, nb_interrupted=self.nb_interrupted,
            in_progress=self.in_progress, submitted=self.submitted, streams=self.streams)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = 5.0) -> None:
        """Let frames in flight finish (up to ``timeout`` seconds), send
        HAPROXY-DISCONNECT status 0 on every agent connection and close them.
        Later calls raise :class:`~spoe_sync.errors.EngineClosed`."""
        if self._closed:
            return
        self._closed = True
        try:
            self.pool.close(timeout)
        finally:
            self.spoe_log.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.nb_processed} processed"
        return (f"<Engine {self.config.engine_id} agent={self.agent.name} "
                f"backend={self.backend.name} [{state}, {self.nb_errors} errors]>")
