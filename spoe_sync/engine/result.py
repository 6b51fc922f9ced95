"""What one event or group processing produced: status, timings, variables.

* :class:`Timings`: the ``reqT/qT/wT/resT/pT`` of SPOE.txt §4, in ms, ``-1`` for
  a stage never reached;
* :class:`ProcessingResult`: the frozen outcome returned by ``process_event`` and
  ``send_group``, with :meth:`~ProcessingResult.raise_for_status`;
* :func:`set_engine_vars`: ``option set-on-error``, ``set-process-time`` and
  ``set-total-time`` (SPOE.txt §2.2, docs/explanation/haproxy-behaviour.md §5.2, §5.4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from ..errors import (
    MessageTooLarge,
    ProcessingError,
    ProcessingInterrupted,
    ProcessingTimeout,
    ResourceError,
)
from ..protocol.constants import StreamStatus, VarScope, frame_status_reason
from ..protocol.frames import Action
from ..protocol.trusted import trusted_constructor
from ..protocol.values import Value
from .actions import (
    MAX_VAR_NAME_BYTES,
    REASON_NAME_TOO_LONG,
    ActionReport,
    DroppedVar,
    spoe_var_name,
)
from .vars import Vars

__all__ = [
    "ProcessingResult",
    "Timings",
    "elapsed_ms",
    "set_engine_vars",
    "status_text",
    "stream_status",
]

_STATUS_TEXT = {
    0: "success",
    1: "processing timeout",
    2: "no agent connection available",
    3: "message too large and not fragmentable",
    4: "fragmented NOTIFY aborted by the agent",
    5: "processing interrupted",
    255: "unknown error",
}


def status_text(status: int) -> str:
    """A human description of a stream status (``st=``); ``256+N`` is SPOP
    status N with HAProxy's reason text."""
    status = int(status)
    if status >= 256:
        return f"SPOP error {status - 256}: {frame_status_reason(status - 256)}"
    return _STATUS_TEXT.get(status, f"error {status}")


def elapsed_ms(start: float | None, end: float | None) -> int:
    """Whole milliseconds from ``start`` to ``end`` (``time.monotonic()``
    seconds), ``-1`` when either is missing.  Truncated like HAProxy's
    ``tv_ms_elapsed()``: sub-millisecond stages show 0."""
    if start is None or end is None:
        return -1
    return max(0, int((end - start) * 1000.0))


@trusted_constructor
@dataclass(frozen=True, slots=True)
class Timings:
    """Per-processing timings in ms (SPOE.txt §4); ``-1``: the processing ended
    before that stage.

    :attr request: start of processing -> NOTIFY queued (encoding; summed over fragments).
    :attr queue: queued -> written to the agent connection.
    :attr wait: written -> ACK received.
    :attr response: ACK received -> actions applied.
    :attr process: the whole processing: the latency SPOE added to the stream.
    """

    _trusted: ClassVar[Callable[..., Timings]]  # the engine's, once per processing
    request: int = -1
    queue: int = -1
    wait: int = -1
    response: int = -1
    process: int = -1

    @classmethod
    def measure(cls, start: float, queued: float | None = None, sent: float | None = None,
                acked: float | None = None, applied: float | None = None,
                end: float | None = None) -> Timings:
        """Timings from ``time.monotonic()`` marks; a mark left ``None`` was never
        reached, and every stage that needs it is ``-1``."""
        return cls(elapsed_ms(start, queued), elapsed_ms(queued, sent), elapsed_ms(sent, acked),
                   elapsed_ms(acked, applied), elapsed_ms(start, end))

    def __str__(self) -> str:
        """``reqT/qT/wT/resT/pT`` as in the SPOE log line."""
        return f"{self.request}/{self.queue}/{self.wait}/{self.response}/{self.process}"


_NO_VARS: Mapping[str, Value] = MappingProxyType({})


_STATUSES: dict[int, int] = {int(s): s for s in StreamStatus}


def stream_status(status: int) -> int:
    """``status`` as a :class:`StreamStatus` when it is one (``256+N`` too),
    else a plain ``int`` (6..254: not produced by HAProxy)."""
    found = _STATUSES.get(status)
    if found is not None:
        return found
    try:
        return StreamStatus(int(status))
    except ValueError:
        return int(status)


_ERRORS: dict[int, type[ProcessingError]] = {
    1: ProcessingTimeout,
    2: ResourceError,
    3: MessageTooLarge,
    4: ProcessingInterrupted,
    5: ProcessingInterrupted,
}


@trusted_constructor
@dataclass(frozen=True)
class ProcessingResult:
    """The outcome of one event or group processing.

    Agent-side failures do not raise: they are a non-zero ``status`` here (HAProxy
    fails open).  :meth:`raise_for_status` turns them into exceptions on request.

    :attr kind: ``"event"`` or ``"group"``.
    :attr name: the event name (``"on-frontend-http-request"``) or group name.
    :attr status: 0 ok, 1 timeout, 2 resources, 3 too big, 4 aborted,
        5 interrupted, 255 unknown, 256+N SPOP status N (:class:`StreamStatus`
        when it is one).
    :attr actions: the ACK's actions as received.
    :attr vars_set: full name -> value the actions stored (``None``: unset).
    :attr dropped_vars: actions refused, with the reason.
    :attr actions_truncated: the ACK's action list was malformed part-way.
    :attr timings: :class:`Timings`.
    :attr skipped: nothing was sent: no message to send, SPOE disabled for the
        stream by an earlier error, or ``maxerrrate`` reached.
    :attr error: a description of what went wrong, for humans.

    The engine builds it with ``ProcessingResult._trusted(...)`` (all fields,
    in order, ``status`` through :func:`stream_status`, ``vars_set`` a
    ``MappingProxyType``): what ``__post_init__`` would check, it already knows.
    """

    _trusted: ClassVar[Callable[..., ProcessingResult]]
    kind: str
    name: str
    status: int = 0
    actions: tuple[Action, ...] = ()
    vars_set: Mapping[str, Value] = field(default_factory=lambda: _NO_VARS)
    dropped_vars: tuple[DroppedVar, ...] = ()
    timings: Timings = field(default_factory=Timings)
    skipped: bool = False
    error: str | None = None
    actions_truncated: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("event", "group"):
            raise ValueError(f"kind must be 'event' or 'group', not {self.kind!r}")
        object.__setattr__(self, "status", stream_status(self.status))
        if not isinstance(self.vars_set, MappingProxyType):
            object.__setattr__(self, "vars_set", MappingProxyType(dict(self.vars_set)))

    @property
    def ok(self) -> bool:
        """True when the status is 0."""
        return self.status == 0

    @property
    def label(self) -> str:
        """``EVENT:name`` or ``GROUP:name``, as in the log line."""
        return f"{self.kind.upper()}:{self.name}"

    @classmethod
    def from_report(cls, kind: str, name: str, report: ActionReport, actions: tuple[Action, ...],
                    **fields: Any) -> ProcessingResult:
        """A result carrying what :func:`~spoe_sync.engine.actions.apply_actions` did."""
        return cls(kind, name, actions=actions, vars_set=report.vars_set,
                   dropped_vars=report.dropped, actions_truncated=report.truncated, **fields)

    def __getattr__(self, name: str) -> Any:
        # Only reached for an attribute the instance lacks: the ``timings`` of a
        # result built by _measured(), made from its marks on first read and kept
        # (most callers never read them; the log line does).
        if name == "timings":
            marks = self.__dict__.get("_marks")
            if marks is not None:
                timings = _timings_of(*marks)
                object.__setattr__(self, "timings", timings)
                return timings
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def raise_for_status(self) -> ProcessingResult:
        """Return ``self`` when ok; else raise :class:`~spoe_sync.errors.ProcessingTimeout`
        (1), :class:`~spoe_sync.errors.ResourceError` (2),
        :class:`~spoe_sync.errors.MessageTooLarge` (3),
        :class:`~spoe_sync.errors.ProcessingInterrupted` (4, 5) or
        :class:`~spoe_sync.errors.ProcessingError` (any other), with
        ``.status`` and ``.result`` set."""
        if self.ok:
            return self
        status = int(self.status)
        message = f"SPOE {self.kind} '{self.name}' failed: {status_text(status)}"
        if self.error and self.error != status_text(status):
            message = f"{message} ({self.error})"
        raise _ERRORS.get(status, ProcessingError)(message, status, self)


#: What the engine knows at the end of a processing that sent a frame, from which
#: its :class:`Timings` are made when read: (request_ms, process_ms, stream
#: status, the frame's t_start, t_written, t_acked and t_end, the instant the
#: ACK was taken up (after the queue and wait), the end, whether actions were applied).
Marks = tuple[int, int, int, float, float, float, float, float, float, bool]


def _timings_of(request_ms: int, process_ms: int, status: int, t_start: float,
                written: float, acked: float, t_end: float, queued: float, end: float,
                applied: bool) -> Timings:
    q = int((written - t_start) * 1000) if written >= 0 else -1
    w = int((acked - written) * 1000) if acked >= 0 and written >= 0 else -1
    if w < 0 <= q and status >= 256:
        # HAProxy stops wT when the connection of a waiting frame is lost
        # (spoe_release_appctx()), not only on its ACK.
        w = max(int((t_end - t_start) * 1000) - q, 0)
    response = -1
    if applied:
        response = max(int((end - queued) * 1000.0) - max(q, 0) - max(w, 0), 0)
    return Timings._trusted(request_ms, q, w, response, process_ms)


def _measured(kind: str, name: str, status: int, actions: tuple[Action, ...],
              vars_set: Mapping[str, Value], dropped: tuple[DroppedVar, ...], error: str | None,
              truncated: bool, marks: Marks) -> ProcessingResult:
    """``ProcessingResult._trusted(...)`` with its timings left as ``marks``
    (``status`` already through :func:`stream_status`, ``vars_set`` read-only)."""
    result = _new(ProcessingResult)
    # Item by item into the instance's own dict (a key-sharing dict: cheaper to
    # fill than a new dict is to install).
    fields = result.__dict__
    fields["kind"] = kind
    fields["name"] = name
    fields["status"] = status
    fields["actions"] = actions
    fields["vars_set"] = vars_set
    fields["dropped_vars"] = dropped
    fields["_marks"] = marks
    fields["skipped"] = False
    fields["error"] = error
    fields["actions_truncated"] = truncated
    return result


_new = object.__new__
# Read once: Python 3.11 sends ``VarScope.TXN`` through the enum metaclass's
# ``__getattr__`` hook (set_engine_vars runs after every processing that sets them).
_TXN = VarScope.TXN


class _EngineVarOptions(Protocol):
    var_prefix: str
    set_on_error: str | None
    set_process_time: str | None
    set_total_time: str | None


def set_engine_vars(vars: Vars, agent: _EngineVarOptions, *, status: int, process_ms: int,
                    total_ms: int, interrupted: bool = False) -> ActionReport:
    """Set the agent's engine variables after a processing, HAProxy's way.

    Call it only for a processing that ran (not skipped: nothing to send,
    SPOE disabled, ``maxerrrate``), once it ended.  In ``txn`` scope, named
    ``txn.<var-prefix>.<name>`` with the 63-byte cap of ``spoe_set_var()``:

    * ``set-process-time`` = ``process_ms`` and ``set-total-time`` = ``total_ms``
      (the stream's running sum, this processing included), on success and on
      error, except after an interrupt (``interrupted``: a ``send-spoe-group``
      overtaken, §5.3), which updates neither;
    * then, when ``status`` is not 0, ``set-on-error`` = the status as an
      ``int``.  HAProxy types it boolean but it carries the code (it reads
      ``256`` in ``%[var()]``), so it is stored as the integer; it is never
      cleared by a later success.

    These few variables bypass the store's caps: an agent that filled the
    store must not be able to hide its own errors.

    :param agent: the :class:`~spoe_sync.config.AgentConfig` (``var_prefix``,
        ``set_on_error``, ``set_process_time``, ``set_total_time``).
    :returns: what was set, and names dropped for being over 63 bytes.
    """
    wanted: list[tuple[str | None, int]] = []
    if not interrupted:
        wanted.append((agent.set_process_time, int(process_ms)))
        wanted.append((agent.set_total_time, int(total_ms)))
    if int(status) != 0:
        wanted.append((agent.set_on_error, int(status)))
    done: dict[str, Value] = {}
    dropped: list[DroppedVar] = []
    for option, value in wanted:
        if not option:
            continue
        full_name = spoe_var_name(_TXN, agent.var_prefix, option)
        reason = (REASON_NAME_TOO_LONG
                  if len(full_name.encode("utf-8", "surrogateescape")) > MAX_VAR_NAME_BYTES
                  else vars.try_set(full_name, value, enforce_limits=False))
        if reason is None:
            done[full_name] = value
        else:
            dropped.append(DroppedVar(full_name, reason))
    return ActionReport(MappingProxyType(done), tuple(dropped))
