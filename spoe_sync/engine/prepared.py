"""What the engine prepares once per configuration and builds on every processing.

* :class:`PreparedMessage`: a ``spoe-message`` ready for the hot path, its
  encoder built once (name and arg names pre-encoded);
* :func:`new_result` and :func:`new_timings`: a processing's
  :class:`~.result.ProcessingResult` and :class:`~.result.Timings`, built
  without the frozen dataclasses' per-field cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..protocol.codec import MessageEncoder
from ..protocol.constants import StreamStatus
from .actions import DroppedVar
from .result import ProcessingResult, Timings

__all__ = ["PreparedMessage", "messages_head", "new_result", "new_timings"]

# Results are built once per processing, on the hot path.  The dataclass
# __init__ of a frozen dataclass pays an object.__setattr__ per field, and
# ProcessingResult's __post_init__ re-validates what the engine already knows
# (kind, status, a read-only vars_set): about a tenth of a processing's CPU.
# These builders set the same fields directly; the asserts keep them in step
# with result.py.
_TIMINGS_FIELDS = ("request", "queue", "wait", "response", "process")
_RESULT_FIELDS = ("kind", "name", "status", "actions", "vars_set", "dropped_vars", "timings",
                  "skipped", "error", "actions_truncated")
assert tuple(f.name for f in dataclasses.fields(Timings)) == _TIMINGS_FIELDS
assert tuple(f.name for f in dataclasses.fields(ProcessingResult)) == _RESULT_FIELDS
assert not hasattr(Timings, "__post_init__") and "__slots__" in Timings.__dict__
_T_SETTERS = tuple(Timings.__dict__[f].__set__ for f in _TIMINGS_FIELDS)
_STATUSES: dict[int, int] = {int(s): s for s in StreamStatus}
_set_dict = object.__setattr__  # past the frozen __setattr__


def new_timings(request: int, queue: int, wait: int, response: int, process: int) -> Timings:
    timings: Timings = object.__new__(Timings)
    s_request, s_queue, s_wait, s_response, s_process = _T_SETTERS
    s_request(timings, request)
    s_queue(timings, queue)
    s_wait(timings, wait)
    s_response(timings, response)
    s_process(timings, process)
    return timings


def new_result(kind: str, name: str, status: int, actions: tuple[Any, ...],
               vars_set: Mapping[str, Any], dropped: tuple[DroppedVar, ...], timings: Timings,
               error: str | None, truncated: bool) -> ProcessingResult:
    """``ProcessingResult(...)`` for what the engine built itself: ``kind`` is
    "event" or "group", ``vars_set`` read-only (as ``__post_init__`` ensures)."""
    if type(vars_set) is not MappingProxyType:
        vars_set = MappingProxyType(dict(vars_set))
    result: ProcessingResult = object.__new__(ProcessingResult)
    _set_dict(result, "__dict__", {
        "kind": kind, "name": name, "status": _STATUSES.get(status, status), "actions": actions,
        "vars_set": vars_set, "dropped_vars": dropped, "timings": timings, "skipped": False,
        "error": error, "actions_truncated": truncated})
    return result


class PreparedMessage:
    """One ``spoe-message`` ready for the hot path: its encoder (name and arg
    names pre-encoded), its arg expressions and its condition."""

    __slots__ = ("condition", "encoder", "exprs", "head_size", "name")

    def __init__(self, config: Any) -> None:
        self.name: str = config.name
        self.encoder = MessageEncoder(config.name, [a.name for a in config.args])
        self.exprs = tuple(a.expr for a in config.args)
        self.condition = config.condition
        # name + NB-ARGS: the least of the message that must fit one frame.
        self.head_size = len(MessageEncoder(config.name, ()).encode(()))


def messages_head(messages: tuple[PreparedMessage, ...]) -> int:
    """The bytes of the first message's name and NB-ARGS: if they do not fit a
    frame, even fragmentation cannot send it (docs/explanation/haproxy-behaviour.md §2.4)."""
    return messages[0].head_size if messages else 0
