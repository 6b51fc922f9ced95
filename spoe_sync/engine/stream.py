"""A stream: one WSGI request or one proxied TCP connection, as the engine sees it.

HAProxy keeps a SPOE context per stream (``struct spoe_context``); this is it
(SPOE.txt §3.3, §3.5, docs/explanation/haproxy-behaviour.md §2.1, §5.2):

* ``id``: the engine-wide stream id sent in every NOTIFY and shown as ``sid=``
  in the log line (HAProxy's ``uniq_id``);
* frame ids start at 1 and advance for *every* NOTIFY, never reused: unlike
  HAProxy 2.6, which reuses a frame id after an error, a late ACK can never be
  taken for the answer to a later NOTIFY of the same stream;
* one event or group at a time (a gevent lock): a second caller waits;
* after an error without ``option continue-on-error`` SPOE is disabled for the
  rest of the stream: the HTTP transaction, or the TCP session;
* ``total_ms``: the sum of the processing times (``option set-total-time``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gevent.lock import Semaphore

from ..rules import EvalContext, SampleSource
from .vars import Session, Vars

__all__ = ["STREAM_KINDS", "Stream"]

#: ``"http"``: a stream is one transaction; ``"tcp"``: one client session.
STREAM_KINDS = ("http", "tcp")

# A stream is made per request: EvalContext's frozen-dataclass __init__ (an
# object.__setattr__ per field) is a sizeable part of it.  Its fields are set
# directly instead; the assert keeps this in step with rules/sample.py.
assert tuple(f.name for f in dataclasses.fields(EvalContext)) == ("samples", "vars")
assert not hasattr(EvalContext, "__post_init__") and "__slots__" not in EvalContext.__dict__
_new = object.__new__


def _context(samples: SampleSource, vars: Vars) -> EvalContext:
    """``EvalContext(samples, vars)``, cheaper."""
    ctx: Any = _new(EvalContext)
    # Item by item into the instance's own (key-sharing) dict: cheaper than
    # installing a new dict.
    fields = ctx.__dict__
    fields["samples"] = samples
    fields["vars"] = vars
    return ctx  # type: ignore[no-any-return]


class Stream:
    """The SPOE side of one stream; made by :meth:`Engine.new_stream`.

    :attr id: the stream id (``sid=`` in logs, stream-id in NOTIFY frames).
    :attr kind: ``"http"`` or ``"tcp"``.
    :attr vars: the stream's variables (:class:`~spoe_sync.engine.vars.Vars`):
        ``txn``/``req``/``res`` here, ``sess`` on :attr:`session`, ``proc`` on
        the engine.  Streams of several engines for one transaction share one
        (``Engine.new_stream(..., vars=...)``), as HAProxy's filters of a
        stream share its variables.
    :attr session: the client session (``sess.*`` variables).
    :attr total_ms: SPOE latency added to this stream so far, in ms.
    :attr disabled_by: the status of the error that disabled SPOE for the
        rest of this stream, or ``None`` while it is enabled.
    """

    __slots__ = ("_busy", "_ctx", "_frame_id", "_lock", "_samples", "_vars", "disabled_by", "engine",
                 "id", "kind", "total_ms")

    def __init__(self, engine: object, stream_id: int, samples: SampleSource, vars: Vars,
                 kind: str = "http") -> None:
        if kind not in STREAM_KINDS:
            raise ValueError(f"stream kind must be 'http' or 'tcp', not {kind!r}")
        #: the :class:`~spoe_sync.engine.Engine` that made it (typed loosely:
        #: engine.py imports this module, not the reverse)
        self.engine: object = engine
        self.id = stream_id
        self.kind = kind
        self._vars = vars
        self.total_ms = 0
        self.disabled_by: int | None = None
        self._frame_id = 0
        # One processing at a time (see Engine._process): a flag while nobody
        # else waits, a Semaphore made by the first caller that has to wait.
        self._busy = False
        self._lock: Semaphore | None = None
        self._samples = samples
        ctx: Any = _new(EvalContext)  # _context(samples, vars), inlined: one stream per request
        fields = ctx.__dict__
        fields["samples"] = samples
        fields["vars"] = vars
        self._ctx = ctx

    @property
    def samples(self) -> SampleSource:
        """What the messages' fetches read; replace it when the stream has more
        to show (the response, for ``on-http-response``)."""
        return self._samples

    @samples.setter
    def samples(self, samples: SampleSource) -> None:
        self._samples = samples
        self._ctx = _context(samples, self._vars)

    @property
    def vars(self) -> Vars:
        """The variables the messages read and the agent's actions write."""
        return self._vars

    @vars.setter
    def vars(self, vars: Vars) -> None:
        # The fetches' context reads the variables too: keep it in step.
        self._vars = vars
        self._ctx = _context(self._samples, vars)

    @property
    def session(self) -> Session:
        """The client session (``sess.*`` variables): that of :attr:`vars`."""
        return self._vars.session

    @property
    def disabled(self) -> bool:
        """True after an error without ``option continue-on-error``: every
        following event and group of this stream is skipped."""
        return self.disabled_by is not None

    @property
    def busy(self) -> bool:
        """An event or group of this stream is being processed."""
        lock = self._lock
        return self._busy if lock is None else lock.locked()

    @property
    def frames_sent(self) -> int:
        """NOTIFY frames this stream has sent (the last frame id used)."""
        return self._frame_id

    def __repr__(self) -> str:
        state = f"disabled by st={self.disabled_by}" if self.disabled else "enabled"
        return (f"<Stream sid={self.id} {self.kind} [{state}, {self._frame_id} frames, "
                f"{self.total_ms} ms]>")
