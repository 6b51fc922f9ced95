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

How the pool decides (pure bookkeeping in :meth:`AppletPool._assign`, I/O in the
applets, as httpcore's pool does):

1. Frames queue in FIFO order.  A queued frame goes to the live applet with the
   most free slots (``max-waiting-frames`` in pipelining/async, 1 in sync).  A freed
   slot (ACK, timeout) immediately pulls the next queued frame, in every mode.
2. A new applet is opened only when the queued frames outnumber the slots that
   applets still in their handshake will bring, within ``maxconnrate``
   (HAProxy's per-second sliding window), the servers' ``maxconn`` and at most
   ``max_connecting`` handshakes at once.  So 500 concurrent streams against a
   pipelining agent with ``max-waiting-frames 20`` use about 25 connections.
3. A server without a working applet is probed by one connection at a time; a
   failed connect or handshake backs it off (exponential, capped).  When no applet
   is alive or opening and none may be opened, queued and new frames fail at once
   with the status of the last failure (256+N, or 2): no reconnect storm, no wait
   for the processing timeout when the cause is known.
4. When a connection ends, its frames that were written get 256+N; frames not yet
   written go back to the head of the queue.  In async mode written frames wait
   while another async applet may bring their ACK, at most a short grace
   (:class:`~.waiting.Orphans`), then end with the lost connection's 256+N.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

import gevent
from gevent.event import Event

from ..errors import ConfigError, EngineClosed
from ..protocol.constants import FRAME_HDR_SIZE
from .applet import Applet, AppletState, Connector, default_connect
from .backoff import Backoff
from .balance import Balancer, ServerState
from .deadlines import Deadlines
from .healthcheck import HealthChecker
from .models import FrameOutcome, PoolMetrics, ServerMetrics
from .pool_events import PoolEvents
from .ratelimit import RateCounter
from .settings import DEFAULT_MAX_CONNECTING, PoolSettings, servers_of
from .waiting import ORPHAN_GRACE, FrameRequest, Orphans, RequestState, WaitingTable, new_engine_id

# os.getpid() is a system call (glibc no longer caches it), too dear for every
# frame: the pid is kept here and refreshed in the child of every os.fork()
# (gevent's fork, multiprocessing and gunicorn's workers all go through it).
# Only a fork(2) made behind Python's back would go unseen by send();
# metrics() and close() still ask the system.
_this_process = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _this_process.__setitem__(0, os.getpid()))

_DONE = RequestState.DONE
_APPLET_READY = AppletState.READY
monotonic = time.monotonic

__all__ = ["AppletPool"]

class AppletPool(PoolEvents):
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
    """

    def __init__(self, agent_config: Any, backend: Any, *, engine_id: str | None = None,
                 connect: Connector | None = None, max_connecting: int = DEFAULT_MAX_CONNECTING,
                 max_applets: int | None = None, backoff: tuple[float, float] = (0.05, 5.0),
                 processing_timeout: float | None = None,
                 orphan_grace: float = ORPHAN_GRACE) -> None:
        self.agent = agent_config
        self.orphan_grace = orphan_grace
        self.agent_name: str = getattr(agent_config, "name", "agent")
        self.settings = PoolSettings.from_config(agent_config, backend,
                                                 processing=processing_timeout)
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
        self.servers = tuple(ServerState(s, Backoff(base=base, cap=cap))
                             for s in self._server_specs)
        self.balancer = Balancer(self.servers, self._algorithm)
        self.conn_rate = RateCounter(1.0)
        self.table = WaitingTable()
        self._frames = self.table.frames  # the hot path uses the dict itself
        self._queue: deque[FrameRequest] = deque()
        self._nb_queued = 0
        self._nb_assigned = 0
        self._nb_waiting = 0
        self._applets: set[Applet] = set()
        self._ready: list[Applet] = []
        # READY applets with a free slot, in round-robin order (HAProxy's idle tree).
        self._available: dict[Applet, None] = {}
        self._connecting = 0
        settings = self.settings
        self._capacity_guess = (settings.max_waiting_frames
                                if (settings.pipelining or settings.async_) else 1)
        self._orphans = Orphans(self._orphan_ended, self.orphan_grace)
        self._next_ident = 1
        self._retry: gevent.Greenlet[..., Any] | None = None
        self._idle_event = Event()
        self._deadlines = Deadlines()
        self._idle_event.set()
        self.connections_opened = 0
        self.frames_sent = 0
        self.acks_received = 0
        self._checker: Any = None

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
            applets = list(self._applets)
            for applet in applets:
                applet.forget()
            gevent.joinall([a.reader for a in applets], timeout=1.0)
            if self._checker is not None:
                self._checker.stop()
            self._reset_state()
        self._pid = pid
        if getattr(self._backend, "spop_check", False):
            self._checker = HealthChecker(self, self.servers)
            self._checker.start()

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
             deadline: float | None) -> FrameRequest:
        """:meth:`process` without building a :class:`FrameOutcome`: the ended
        request itself (``status``, ``ack``, ``error`` and the ``t_*`` marks).
        The engine's hot path."""
        if self._closed:
            raise EngineClosed(f"SPOE agent '{self.agent_name}': the engine is closed")
        if self._pid != _this_process[0]:
            self._ensure_process()
        request = FrameRequest(stream_id, frame_id, payload, deadline, monotonic())
        frames = self._frames
        key = request.key
        if key in frames:
            raise ValueError(f"frame (stream-id {stream_id}, frame-id {frame_id}) is already "
                             "in flight")
        if not frames:
            self._idle_event.clear()
        frames[key] = request
        too_big = self.unsendable(len(payload)) if len(payload) > self.max_payload else None
        if too_big is not None:
            # Too big and may not be fragmented: fail before connecting anything
            # (docs/explanation/haproxy-behaviour.md §2.4, st=3 with -1 timings).
            request.finish(3, error=too_big)
        elif not self._nb_queued and self._available:
            # Nothing queued ahead and a slot free: straight to the applet, the
            # common case once the pool is warm (what _assign() would do, minus
            # the queue round trip).
            try:
                applet = self._pick_applet()
                assert applet is not None
                status = applet.submit(request)
            except Exception as exc:  # a bug must not hang the stream
                status = 255
                request.error = f"internal error: {exc!r}"
            if status:
                request.finish(status, error=request.error)
            else:
                self._nb_assigned += 1
        else:
            self._queue.append(request)
            self._nb_queued += 1
            try:
                self._assign()
            except Exception as exc:  # a bug must not hang the stream
                request.finish(255, error=f"internal error: {exc!r}")
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
        # The request leaves the engine: its ids may be used again.
        if frames.get(key) is request:
            del frames[key]
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
        self.table.discard(request)
        self._orphans.discard(request)
        if not self.table:
            self._idle_event.set()

    def _abandon(self, request: FrameRequest, status: int, error: str) -> None:
        state = request.state
        if state is RequestState.DONE:
            return
        if state is RequestState.QUEUED:
            self._nb_queued -= 1  # left in the deque, skipped when popped
        elif state is RequestState.ASSIGNED:
            self._nb_assigned -= 1
        elif state is RequestState.WAITING:
            self._nb_waiting -= 1
        applet = request.applet
        request.finish(status, error=error)
        if applet is not None:
            applet.release(request, abandon=True)
            self._assign()

    # ------------------------------------------------------------------ bookkeeping

    def _assign(self) -> None:
        """Give queued frames to applets with a free slot, open applets when
        needed and allowed, fail queued frames when nothing can take them."""
        queue = self._queue
        while self._nb_queued:
            applet = self._pick_applet()
            if applet is None:
                break
            request = queue.popleft()
            if request.state is not RequestState.QUEUED:
                continue
            self._nb_queued -= 1
            status = applet.submit(request)
            if status:
                request.finish(status, error=request.error)
            else:
                self._nb_assigned += 1
        if not self._nb_queued:
            if queue and len(queue) > 64:
                self._compact()
            return
        self._open_applets()
        if self._nb_queued and not self._applets:
            status, error = self._unavailable()
            self._fail_queue(status, error)

    def _pick_applet(self) -> Applet | None:
        """The next applet able to take a frame, round robin (O(1))."""
        available = self._available
        for applet in available:
            del available[applet]
            if applet._free > 1 and applet.state is _APPLET_READY:  # Applet.free, inlined
                available[applet] = None  # still room: to the back of the line
            return applet
        return None

    def _slot_freed(self, applet: Applet) -> None:
        if applet.state is AppletState.READY and applet not in self._available:
            self._available[applet] = None

    def _compact(self) -> None:
        self._queue = deque(r for r in self._queue if r.state is RequestState.QUEUED)

    def _open_applets(self) -> None:
        if self._closed:
            return
        settings = self.settings
        # What a new connection will take: what the last handshake settled
        # (an agent without pipelining gives 1), the configuration until then.
        guess = self._capacity_guess
        demand = self._nb_queued - self._connecting * guess
        while demand > 0:
            if self.max_applets is not None and len(self._applets) >= self.max_applets:
                return
            if self._connecting >= self.max_connecting:
                return
            if settings.maxconnrate and not self.conn_rate.allows(settings.maxconnrate):
                if self._applets:
                    self._schedule_retry(self.conn_rate.delay(settings.maxconnrate))
                return
            server = self.balancer.choose()
            if server is None:
                waits = [s.backoff.remaining() for s in self.servers if s.up and s.backoff.failures]
                if self._applets and waits:
                    self._schedule_retry(min(waits))
                return
            self._open(server)
            demand -= guess

    def _open(self, server: ServerState) -> None:
        self.conn_rate.add()
        self.connections_opened += 1
        server.connections += 1
        server.connecting += 1
        self._connecting += 1
        ident = self._next_ident
        self._next_ident += 1
        self._applets.add(Applet(self, server, ident))

    def _schedule_retry(self, delay: float) -> None:
        if self._retry is not None and not self._retry.dead:
            return
        self._retry = gevent.spawn_later(max(delay, 0.001), self._retry_assign)

    def _retry_assign(self) -> None:
        self._retry = None
        self._assign()

    def _unavailable(self) -> tuple[int, str]:
        """The status for frames no applet can take: the last failure of a server
        that is backing off (256+N, or 2 for a failed connect), else 2."""
        failed = [s for s in self.servers if s.backoff.failures and s.last_status is not None]
        if failed:
            last = max(failed, key=lambda s: s.last_failure_at)
            return last.last_status or 2, f"{last.name}: {last.last_error}"
        if not any(s.up for s in self.servers):
            return 2, f"no server of backend '{self.backend_name}' is up"
        return 2, "no agent connection available (maxconnrate reached)"

    def _fail_queue(self, status: int, error: str) -> None:
        queue, self._queue = self._queue, deque()
        self._nb_queued = 0
        for request in queue:
            if request.state is RequestState.QUEUED:
                request.finish(status, error=error)

    # ------------------------------------------------------------------ public helpers

    def metrics(self) -> PoolMetrics:
        """A snapshot of the SPOE.txt §4 counters and of every server."""
        if self._pid is not None and self._pid != os.getpid():
            self._ensure_process()  # the parent's figures are not ours
        servers = tuple(ServerMetrics(
            name=s.name, address=s.address, up=s.up, connections=s.connections, ready=s.ready,
            connect_attempts=s.connect_attempts, connect_errors=s.connect_errors,
            last_error=s.last_error, last_status=s.last_status,
            backoff_remaining=round(s.backoff.remaining(), 3)) for s in self.servers)
        return PoolMetrics(
            applets=len(self._applets),
            idles=len(self._available),
            nb_sending=self._nb_queued + self._nb_assigned,
            nb_waiting=self._nb_waiting,
            servers=servers,
            connections_opened=self.connections_opened,
            frames_sent=self.frames_sent,
            acks_received=self.acks_received,
        )

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
        self._fail_queue(256, "engine closed")
        applets = list(self._applets)
        for applet in applets:
            applet.close(0)
        gevent.joinall([a.reader for a in applets], timeout=2.0)
        for request in self.table.values():
            if request.state is not RequestState.DONE:  # async frames left waiting
                self._abandon(request, 256, "engine closed")

    def __repr__(self) -> str:
        m = self.metrics()
        return (f"<AppletPool {self.agent_name} [Frames: {m.nb_sending} sending, "
                f"{m.nb_waiting} waiting | Applets: {m.applets} total, {m.idles} idle]>")

