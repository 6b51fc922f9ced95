"""The SPOE filters of one stream: :class:`Transaction`.

In HAProxy every ``filter spoe`` line of a proxy is a filter of each of its streams: the filters
run in declaration order at each event, share the stream's session and variables (what one
agent sets, the next one's messages and the rules read), and ``send-spoe-group`` names one of
them (docs/explanation/haproxy-behaviour.md §2).  The WSGI middleware and the TCP proxy both
need exactly that, so it is written once, here, with one failure policy: an
:class:`~spoe_sync.errors.SpoeError` raised by an engine (:class:`~spoe_sync.errors.EngineClosed`
while shutting down included) is logged as a warning naming the engine, recorded in
:attr:`Transaction.failures`, and the stream goes on (fail open, as HAProxy does when an agent
fails: ``option set-on-error`` tells the rules).  Agent-side failures are not errors at all:
they are the :class:`~spoe_sync.engine.result.ProcessingResult`'s status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from loguru import logger

from ..errors import SpoeError
from ..rules.sources import SampleSource
from .engine import Engine
from .prepared import PreparedMessage
from .result import ProcessingResult
from .stream import Stream, _context
from .vars import Session, Vars

__all__ = ["Observer", "Transaction"]

#: ``observer(engine, kind, name, result, seconds)`` after each processing that sent something
Observer = Callable[[Engine, str, str, ProcessingResult, float], None]


class Transaction:
    """One stream through a list of engines (HAProxy's SPOE filters of one stream).

    :param engines: the engines, in declaration order.
    :param samples: what the fetches read.
    :param session: the client session (``sess.*``); a new one of the first engine when omitted.
    :param kind: ``"http"`` or ``"tcp"`` (see :meth:`Engine.new_stream`).
    :param observer: called after each processing that was not skipped, with its duration.

    The first engine's stream is made at once (it holds the variables); the others when they
    are first used, sharing those variables.
    """

    __slots__ = ("_by_id", "ctx", "engines", "failures", "kind", "observer", "results",
                 "samples", "session", "streams", "vars")

    def __init__(self, engines: Sequence[Engine], samples: SampleSource,
                 session: Session | None = None, *, kind: str = "http",
                 observer: Observer | None = None) -> None:
        self.engines = engines
        self._by_id: dict[str, Engine] | None = None
        self.kind = kind
        self.observer = observer
        self.samples = samples
        #: the result of each event and group, in order
        self.results: list[ProcessingResult] = []
        #: ``(engine id, kind, name, error)`` of each processing an engine refused
        self.failures: list[tuple[str, str, str, SpoeError]] = []
        if engines:
            first = engines[0]
            if session is None:
                session = first.new_session()
            stream = first.new_stream(samples, session, kind=kind)
            self.streams: dict[str, Stream] = {first.config.engine_id: stream}
            self.vars = stream._vars  # stream.vars without the property: once per request
            # the first stream's fetch context is the transaction's (same samples and vars)
            self.ctx = stream._ctx
        else:
            self.streams = {}
            if session is None:
                session = Session()
            self.vars = Vars(session)
            self.ctx = _context(samples, self.vars)
        # the session of the variables: new_stream() and Vars() keep the one given
        self.session = session

    @property
    def by_id(self) -> dict[str, Engine]:
        """The engines by id (built when first asked: only ``send-spoe-group`` needs it)."""
        by_id = self._by_id
        if by_id is None:
            by_id = self._by_id = {e.config.engine_id: e for e in self.engines}
        return by_id

    def stream(self, engine: Engine) -> Stream:
        """``engine``'s stream of this transaction (made on first use)."""
        stream = self.streams.get(engine.config.engine_id)
        if stream is None:
            # every engine of the transaction shares its variables, as HAProxy's filters do
            stream = engine.new_stream(self.samples, kind=self.kind, vars=self.vars)
            self.streams[engine.config.engine_id] = stream
        return stream

    def set_samples(self, samples: SampleSource) -> None:
        """The request (or response) changed: later fetches, messages and rules read this."""
        self.samples = samples
        if samples.response is not None:
            self.vars.start_response()  # req.* gone, res.* open (HAProxy 2.6's one store)
        self.ctx = _context(samples, self.vars)  # EvalContext(samples, self.vars), faster
        for stream in self.streams.values():
            stream.samples = samples

    def event(self, event: str) -> None:
        """Fire ``event`` on each engine that has messages for it, in declaration order."""
        for engine in self.engines:
            if event in engine.events:
                self.process(engine, "event", event)

    def events(self, plan: Sequence[tuple[Engine, str]]) -> None:
        """Fire precomputed ``(engine, event)`` pairs in order (the WSGI fast path)."""
        for engine, event in plan:
            self.process(engine, "event", event, engine._events.get(event))

    def group(self, engine_id: str, group: str) -> None:
        """``send-spoe-group <engine_id> <group>``."""
        engine = self.by_id.get(engine_id)
        if engine is None:  # checked when the rules were parsed; never a crash here
            logger.warning(f"SPOE: send-spoe-group {engine_id} {group}: no such engine")
            return
        self.process(engine, "group", group)

    def process(self, engine: Engine, kind: str, name: str,
                messages: tuple[PreparedMessage, ...] | None = None) -> ProcessingResult | None:
        """One event (``kind="event"``) or group: its result, or None when the engine
        refused it (see the module's failure policy).  ``messages``: the event's, when the
        caller has looked them up already (:meth:`events`); then the engine's
        ``process_event`` is bypassed, whose only other work is to check the event's name."""
        observer = self.observer
        start = time.monotonic() if observer is not None else 0.0
        try:
            stream = self.stream(engine)
            if messages is not None:
                result = engine._process(stream, kind, name, messages)
            elif kind == "event":
                result = engine.process_event(stream, name)
            else:
                result = engine.send_group(stream, name)
        except SpoeError as exc:
            logger.warning(f"SPOE: [{engine.name}] {kind} {name}: {exc}")
            self.failures.append((engine.config.engine_id, kind, name, exc))
            return None
        self.results.append(result)
        if observer is not None and not result.skipped:  # nobody reads it otherwise
            observer(engine, kind, name, result, time.monotonic() - start)
        return result

    def __repr__(self) -> str:
        return (f"<Transaction engines={list(self.by_id)} results={len(self.results)} "
                f"failures={len(self.failures)}>")
