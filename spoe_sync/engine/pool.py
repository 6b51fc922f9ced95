"""The applet pool: every agent connection of one engine, shared by all its streams.

Usage (part 2 of the engine, and anyone driving SPOP frames directly)::

    pool = AppletPool(agent_config, backend, engine_id=None, connect=None)  # no I/O yet
    outcome = pool.process(stream_id, frame_id, payload, deadline)        # -> FrameOutcome
    request = pool.send(stream_id, frame_id, payload, deadline)           # the same, unwrapped
    pool.metrics()                                                         # -> PoolMetrics
    pool.close(timeout=5.0)

* :meth:`AppletPool.process` blocks the calling greenlet only, until the ACK, the
  ``deadline`` (a :func:`time.monotonic` instant; status 1) or a failure.  It never
  raises for what an agent or the network does: every such end is a status in the
  returned :class:`~spoe_sync.engine.models.FrameOutcome`.  ``payload`` is the
  NOTIFY payload (LIST-OF-MESSAGES, e.g. from ``MessageEncoder``); ids are the
  caller's, and a ``(stream_id, frame_id)`` must not be in flight twice.  A late
  ACK for a frame that timed out is ignored.
* Nothing connects and no greenlet is spawned before the first ``process`` (gunicorn
  forks after loading the application); a pool used in a process other than the
  one that first used it drops everything it had and starts afresh (the hub must
  have been re-initialised after the fork, as ``gevent.os.fork``, a monkey-patched
  ``os.fork`` or gunicorn's gevent worker do).
* A pool belongs to one gevent hub (one thread); it needs no lock because its
  bookkeeping never yields.
* ``pool.metrics()`` -> :class:`~spoe_sync.engine.models.PoolMetrics` (SPOE.txt §4
  ``applets``, ``idles``, ``nb_sending``, ``nb_waiting``, and per server: up/down,
  connections, connect attempts and errors, last error and status, backoff);
  ``pool.close(timeout)`` lets frames in flight finish, then sends
  HAPROXY-DISCONNECT status 0 on every connection.

How the pool is built (httpcore's and urllib3's pools are the models):

* :class:`~.poolstate.PoolState` is the bookkeeping, pure: the queue, the slots,
  counters, back-off, rate limits, which connection gets which frame, and the
  status every frame ends with.  Its docstring states the rules and invariants.
* :class:`AppletPool` (this module) is the I/O shell: it parks streams until
  their frame ends or its deadline passes, hands the applets the frames the
  bookkeeping assigned, starts the applets it decided to open, runs the
  retry and orphan timers, and logs when a server becomes unreachable or
  recovers.
* Applets (``applet.py``) own one socket each and report through
  :class:`~.applet.AppletListener`, which this pool implements; they never
  import it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import gevent
from gevent.event import Event

from ..errors import ConfigError, EngineClosed
from ..protocol.connection import DEFAULT_MAX_ACK_ACTIONS, DEFAULT_MAX_ACK_SIZE, AckReceived
from ..protocol.constants import FRAME_HDR_SIZE
from . import log
from .applet import Applet
from .backoff import Backoff
from .balance import ServerState
from .connect import Connector, default_connect
from .deadlines import Deadlines
from .healthcheck import HealthChecker
from .models import FrameOutcome, PoolMetrics
from .poolstate import Link, PoolState, RequestState
from .settings import DEFAULT_MAX_CONNECTING, PoolSettings, servers_of
from .waiting import ORPHAN_GRACE, FrameRequest, Orphans, new_engine_id

# os.getpid() is a system call (glibc no longer caches it), too dear for every
# frame: the pid is kept here and refreshed in the child of every os.fork()
# (gevent's fork, multiprocessing and gunicorn's workers all go through it).
# Only a fork(2) made behind Python's back would go unseen by send();
# metrics() and close() still ask the system.
_this_process = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _this_process.__setitem__(0, os.getpid()))

_DONE = RequestState.DONE
monotonic = time.monotonic

#: The reconnection back-off of a server, (base, cap) seconds.  The cap bounds
#: how late a returned agent is used again: 1 s, one attempt per second and
#: per worker while an agent is down.
DEFAULT_BACKOFF = (0.05, 1.0)

__all__ = ["DEFAULT_BACKOFF", "AppletPool"]


class AppletPool:
    """The shared applets of one engine (see the module docstring).

    :param agent_config: a :class:`spoe_sync.config.AgentConfig` (or any object
        with its attribute names).
    :param backend: a :class:`spoe_sync.config.Backend`, a list of server
        addresses, or one address.
    :param engine_id: the engine-id announced in every HAPROXY-HELLO (a new
        UUIDv4 by default).
    :param connect: ``connect(server_state, timeout) -> socket``; defaults to
        TCP (TCP_NODELAY) or unix sockets.
    :param max_connecting: handshakes allowed in progress at once.
    :param max_applets: a hard cap on applets (None: only the rules above).
    :param backoff: ``(base, cap)`` seconds of the per-server reconnection backoff.
    :param processing_timeout: overrides the configuration's (it bounds writes).
    :param max_ack_size: bytes a fragmented ACK may reassemble to (past it, the connection
        ends with SPOP status 3: 259 for its frames).
    :param max_ack_actions: actions of one ACK decoded (the rest are reported as dropped).
    """

    def __init__(self, agent_config: Any, backend: Any, *, engine_id: str | None = None,
                 connect: Connector | None = None, max_connecting: int = DEFAULT_MAX_CONNECTING,
                 max_applets: int | None = None, backoff: tuple[float, float] = DEFAULT_BACKOFF,
                 processing_timeout: float | None = None,
                 orphan_grace: float = ORPHAN_GRACE,
                 max_ack_size: int = DEFAULT_MAX_ACK_SIZE,
                 max_ack_actions: int = DEFAULT_MAX_ACK_ACTIONS) -> None:
        self.agent = agent_config
        self.orphan_grace = orphan_grace
        self.agent_name: str = getattr(agent_config, "name", "agent")
        self.settings = PoolSettings.from_config(agent_config, backend,
                                                 processing=processing_timeout,
                                                 max_ack_size=max_ack_size,
                                                 max_ack_actions=max_ack_actions)
        #: the largest NOTIFY payload one frame carries (HAProxy's frame_size - FRAME_HDR_SIZE)
        self.max_payload = self.settings.max_frame_size - FRAME_HDR_SIZE
        self.engine_id = engine_id or new_engine_id()
        self.connector: Connector = connect or default_connect
        self.max_connecting = max(int(max_connecting), 1)
        self.max_applets = max_applets
        servers, algorithm, self.backend_name = servers_of(backend)
        if not servers:
            raise ConfigError(f"backend '{self.backend_name}' has no server (give it an address)")
        self._backend = backend
        self._server_specs = servers
        self._algorithm = algorithm
        self._backoff = backoff
        self._pid: int | None = None
        self._closed = False
        self._reset_state()

    # ------------------------------------------------------------------ state

    def _reset_state(self) -> None:
        base, cap = self._backoff
        servers = tuple(ServerState(s, Backoff(base=base, cap=cap)) for s in self._server_specs)
        self.state = PoolState(self.settings, servers, self._algorithm,
                               max_connecting=self.max_connecting, max_applets=self.max_applets,
                               name=self.backend_name)
        self.servers = self.state.servers
        self._frames = self.state.frames  # the hot path uses the dict itself
        self._orphans = Orphans(self._orphan_ended, self.orphan_grace)
        self._retry: gevent.Greenlet[..., Any] | None = None
        self._idle_event = Event()
        self._deadlines = Deadlines()
        self._idle_event.set()
        self._checker: Any = None
        self._notices = log.ServerNotices(self.agent_name)
        #: decoded ACK action lists by their bytes, shared by every connection
        #: (bounded: fastcodec.ACK_CACHE_ENTRIES)
        self._ack_cache: dict[bytes, Any] = {}

    def _ensure_process(self) -> None:
        """First use in this process: start health checks.  First use after a
        fork: forget the parent's applets (their sockets belong to it)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        if self._pid is not None:
            # The parent's applets were copied with the process: stop their
            # greenlets (so their I/O watchers go) and close our copies of their
            # sockets, which does not end the parent's connections.
            applets = self.applets()
            for applet in applets:
                applet.forget()
            gevent.joinall([a.reader for a in applets], timeout=1.0)
            if self._checker is not None:
                self._checker.stop()
            self._reset_state()
        self._pid = pid
        if getattr(self._backend, "spop_check", False):
            self._checker = HealthChecker(self.servers, self.connector, lambda: self._closed)
            self._checker.start()

    def applets(self) -> list[Applet]:
        """The applets alive (connecting included)."""
        return [link.io for link in self.state.links if link.io is not None]

    # ------------------------------------------------------------------ the stream side

    def process(self, stream_id: int, frame_id: int, payload: bytes,
                deadline: float | None) -> FrameOutcome:
        """Send one NOTIFY and wait for its ACK (blocks this greenlet only).

        :param payload: the NOTIFY payload (LIST-OF-MESSAGES bytes).
        :param deadline: :func:`time.monotonic` instant after which the frame is
            abandoned with status 1; None waits without limit.
        :raises EngineClosed: after :meth:`close`.
        :raises ValueError: the same ``(stream_id, frame_id)`` is already in flight.
        """
        return self.send(stream_id, frame_id, payload, deadline).outcome()

    def send(self, stream_id: int, frame_id: int, payload: bytes,
             deadline: float | None, now: float | None = None) -> FrameRequest:
        """:meth:`process` without building a :class:`FrameOutcome`: the ended
        request itself (``status``, ``ack``, ``error`` and the ``t_*`` marks).
        The engine's hot path: ``now`` is its clock read of the moment it hands
        the frame over (``t_start``), when it has just made one."""
        if self._closed:
            raise EngineClosed(f"SPOE agent '{self.agent_name}': the engine is closed")
        if self._pid != _this_process[0]:
            self._ensure_process()
        request = FrameRequest(stream_id, frame_id, payload, deadline,
                               monotonic() if now is None else now)
        frames: dict[tuple[int, int], FrameRequest] = self._frames
        key = request.key
        if not frames:
            self._idle_event.clear()
        # One hash of the key, not two (``in``, then the store).
        if frames.setdefault(key, request) is not request:
            raise ValueError(f"frame (stream-id {stream_id}, frame-id {frame_id}) is already "
                             "in flight")
        too_big = self.unsendable(len(payload)) if len(payload) > self.max_payload else None
        if too_big is not None:
            # Too big and may not be fragmented: fail before connecting anything
            # (docs/explanation/haproxy-behaviour.md §2.4, st=3 with -1 timings).
            request.finish(3, error=too_big)
        else:
            # Nothing queued ahead and a slot free: straight to its applet, the
            # common case once the pool is warm; else queue it and plan.
            link = self.state.take(request)
            if link is not None:
                # _submit(), inlined: this runs for every frame.
                try:
                    status = link.io.submit(request)
                except Exception as exc:  # a bug must not hang the stream
                    log.internal_error("an applet's submit", exc)
                    status = 255
                    request.error = f"internal error: {exc!r}"
                if status:
                    self.state.put(link, request)
                    request.finish(status, error=request.error)
            else:
                self.state.enqueue(request)
                self._dispatch()
        if request.state is not _DONE:
            # Park this greenlet until the request ends or its deadline passes.
            try:
                self._deadlines.wait(request, deadline)
            except BaseException:
                # The stream's greenlet was killed or timed out by its caller:
                # give the frame up so that nothing leaks, then let it propagate.
                self._abandon(request, 1, "interrupted by the caller")
                self._forget(request)
                raise
            if request.state is not _DONE:
                self._abandon(request, 1, "timeout processing")
        # The request leaves the engine: its ids may be used again (one hash:
        # the entry is almost always this request's; another one is put back).
        other = frames.pop(key, None)
        if other is not request and other is not None:
            frames[key] = other
        if self._orphans.requests:  # not bool(): a Python-level call per frame
            self._orphans.discard(request)
        if not frames:
            self._idle_event.set()
        request.t_end = monotonic()
        return request

    def unsendable(self, size: int, head: int = 0) -> str | None:
        """Why a NOTIFY payload of ``size`` bytes cannot go out (status 3), or
        None: over ``max-frame-size`` minus HAProxy's ``FRAME_HDR_SIZE`` it needs
        ``option send-frag-payload``, and even then the first message's name and
        NB-ARGS (``head`` bytes) must fit one frame (docs/explanation/haproxy-behaviour.md §2.4)."""
        limit = self.max_payload
        if size <= limit:
            return None
        if not self.settings.send_frag_payload:
            return (f"NOTIFY payload of {size} bytes exceeds max-frame-size ({limit} bytes of "
                    "payload) and option send-frag-payload is off")
        if head > limit:
            return (f"NOTIFY payload of {size} bytes cannot be fragmented: the first message's "
                    f"name and argument count alone exceed {limit} bytes")
        return None

    def _forget(self, request: FrameRequest) -> None:
        """The request leaves the engine: its ids may be used again."""
        frames = self._frames
        if frames.get(request.key) is request:
            del frames[request.key]
        self._orphans.discard(request)
        if not frames:
            self._idle_event.set()

    def _abandon(self, request: FrameRequest, status: int, error: str) -> None:
        link = self.state.abandon(request, status, error)
        if link is not None:
            link.io.abandoned(request)
            if self.state.nb_queued:
                self._dispatch()

    # ------------------------------------------------------------------ carrying out the plan

    def _submit(self, link: Link, request: FrameRequest) -> None:
        """Hand ``request`` (its slot taken on ``link``) to the applet."""
        try:
            status = link.io.submit(request)
        except Exception as exc:  # a bug must not hang the stream
            log.internal_error("an applet's submit", exc)
            status = 255
            request.error = f"internal error: {exc!r}"
        if status:
            self.state.put(link, request)
            request.finish(status, error=request.error)

    def _dispatch(self) -> None:
        """Carry out :meth:`PoolState.plan`: submit, open, schedule a retry."""
        try:
            assigned, opened, retry = self.state.plan()
        except Exception as exc:  # a bug must not hang the streams
            log.internal_error("the pool's plan", exc)
            self.state.fail_queue(255, f"internal error: {exc!r}")
            return
        for link, request in assigned:
            self._submit(link, request)
        for link in opened:
            try:
                Applet(link, self, self.settings, self.engine_id, self.connector,
                       self._ack_cache)
            except Exception as exc:  # a bug must not leave a link opening forever
                log.internal_error("opening an applet", exc)
                self.state.link_closed(link, None, f"internal error: {exc!r}", failure=True)
                retry = 0.0 if retry is None else retry  # plan again: it backs off or fails
        if retry is not None:
            self._schedule_retry(retry)

    def _schedule_retry(self, delay: float) -> None:
        if self._retry is not None and not self._retry.dead:
            return
        self._retry = gevent.spawn_later(max(delay, 0.001), self._retry_dispatch)

    def _retry_dispatch(self) -> None:
        self._retry = None
        if self.state.nb_queued:
            self._dispatch()

    def _log_notices(self) -> None:
        notices = self.state.notices
        while notices:
            kind, server, reason = notices.pop(0)
            self._notices.report(kind, server.name, server.address, reason)

    # ------------------------------------------------------------------ what the applets report

    def applet_ready(self, applet: Applet, mode: str, capacity: int) -> None:
        self.state.link_ready(applet.link, mode, capacity)
        if self.state.nb_queued:
            self._dispatch()

    def frames_written(self, applet: Applet, requests: Iterable[FrameRequest],
                       now: float) -> None:
        self.state.written(applet.link, requests, now)

    def ack_received(self, applet: Applet, event: AckReceived) -> None:
        link = applet.link
        # When the reader got the bytes (it reads a batch of ACKs at once).
        state = self.state
        request = state.acked(link, event, applet.last_activity)
        if request is not None:
            owner = request.link
            if owner is not link and owner is not None:
                owner.io.abandoned(request)  # an async ACK on another connection
            if self._orphans.requests:
                self._orphans.discard(request)
                self._orphans.answered(link, request)
        if state.notices:
            self._log_notices()
        if state.nb_queued:
            self._dispatch()

    def applet_closed(self, applet: Applet, status: int | None, error: str,
                      failure: bool) -> None:
        state = self.state
        link = applet.link
        self._orphans.applet_gone(link)
        orphans, stream_status, survivors = state.link_closed(link, status, error,
                                                              failure=failure)
        if link.mode == "async":
            now = monotonic()
            for request in orphans:
                self._orphans.add(request, stream_status, error, now)
            if not survivors:
                self._orphans.end(everything=True)
            elif self._orphans:
                self._orphans.watch(survivors, now)
        if state.notices:
            self._log_notices()
        if state.nb_queued:
            self._dispatch()

    def _orphan_ended(self, request: FrameRequest) -> None:
        self.state.orphan_ended(request)

    # ------------------------------------------------------------------ public helpers

    @property
    def connections_opened(self) -> int:
        return self.state.connections_opened

    @property
    def frames_sent(self) -> int:
        return self.state.frames_sent

    @property
    def acks_received(self) -> int:
        return self.state.acks_received

    @property
    def table(self) -> dict[tuple[int, int], FrameRequest]:
        """Every frame between submission and its end, by (stream-id, frame-id)."""
        return self._frames

    def metrics(self) -> PoolMetrics:
        """A snapshot of the SPOE.txt §4 counters and of every server."""
        if self._pid is not None and self._pid != os.getpid():
            self._ensure_process()  # the parent's figures are not ours
        return self.state.metrics()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop taking frames, let those in flight finish (up to ``timeout``
        seconds), then send HAPROXY-DISCONNECT status 0 on every applet and close.
        Frames still unanswered at the end get 256 (connection closed normally)."""
        if self._closed:
            return
        self._closed = True
        self.state.closed = True
        if self._pid != os.getpid():
            return  # never used here: nothing to close (or the parent's sockets)
        if self._checker is not None:
            self._checker.stop()
        if timeout is None or timeout > 0:
            self._idle_event.wait(timeout)
        if self._retry is not None:
            self._retry.kill(block=False)
        self._orphans.close()
        self._deadlines.close()
        self.state.fail_queue(256, "engine closed")
        applets = self.applets()
        for applet in applets:
            applet.close(0)
        gevent.joinall([a.reader for a in applets], timeout=2.0)
        for request in list(self._frames.values()):
            if request.state is not _DONE:  # async frames left waiting
                self._abandon(request, 256, "engine closed")

    def __repr__(self) -> str:
        m = self.metrics()
        return (f"<AppletPool {self.agent_name} [Frames: {m.nb_sending} sending, "
                f"{m.nb_waiting} waiting | Applets: {m.applets} total, {m.idles} idle]>")
