"""The applet pool's bookkeeping, as pure code: events in, decisions out.

Rules of this module (h11's ``_state.py`` shape; read them before changing it):

1. Everything that decides where a frame goes lives here: the queue, the slots
   of each connection ("link"), when a connection is opened, when a server
   backs off, what status a frame ends with.  The I/O shell (``pool.py`` for
   the streams, ``applet.py`` for one connection) carries the decisions out
   and reports what happened through the methods below; it decides nothing.
2. No gevent, no socket, no logging, no clock but the injected ``clock``:
   the whole policy runs in unit tests without a socket
   (``tests/engine/test_poolstate.py`` replays agent faults as event sequences).
3. Nothing here yields, so a pool needs no lock (it belongs to one gevent hub).
4. Requests are the shell's objects (duck-typed, see :class:`Frame`): ending
   one is ``request.finish(...)``, idempotent (the first end wins), which wakes
   its stream through the shell.  A link's ``io`` is the shell's applet, never
   looked at here.

Invariants (:meth:`PoolState.check` asserts them; the unit tests call it after
every step):

* ``nb_queued`` counts the QUEUED requests in ``queue`` (a request abandoned
  while queued stays in the deque and is skipped when popped).
* ``nb_assigned`` + ``nb_waiting`` count the ASSIGNED and WAITING requests:
  those in some link's ``inflight`` (then ``request.link`` is that link), plus
  the WAITING *orphans* (async mode: written on a lost connection, waiting a
  short grace for their ACK on another one; ``request.link`` is None).
* A READY link: ``free + len(inflight) + (held is not None) == capacity``;
  any other link has ``free == 0`` and nothing in flight.
* ``available`` holds exactly the READY links with ``free > 0``: a stream can
  never be handed a connection that is closing or full.
* A slot comes back in one place only, :meth:`PoolState._give_back`
  (urllib3's ``_put_conn``); one is taken in one place, :meth:`_take_slot`
  (``_get_conn``).
* ``connecting`` counts the links not yet READY; per server, ``connecting``,
  ``ready`` and ``connections`` count its links likewise.

Theory of operation:

1. Frames queue in FIFO order.  With nothing queued ahead and a free slot, a
   frame goes straight to a link (:meth:`take`, the hot path).  Otherwise it
   queues and :meth:`plan` (httpcore's ``_assign_requests_to_connections``)
   hands queued frames to free slots in round-robin order, decides the links
   to open and fails the queue when nothing can take it.
2. A new link is opened only when the queued frames outnumber the slots that
   links still in their handshake will bring, within ``maxconnrate`` (HAProxy's
   per-second window), the servers' ``maxconn``, ``max_applets`` and at most
   ``max_connecting`` handshakes at once.  A server without a working link is
   probed by one connection at a time.
3. A link that dies before its first ACK (refused, failed handshake, closed or
   broken at its first NOTIFY) is a failure of its server, which backs off
   (exponential, capped); failures of attempts begun before the last counted
   one are the same step (many connections dying together are one outage).
   While no link is alive or opening and none may be opened, queued and new
   frames fail at once with the status of the last failure (256+N, or 2).
4. When a link ends, its frames not yet written go back to the head of the
   queue; those written end with 256+N, except in async mode while another
   async link lives: they become orphans (another connection may bring the ACK).
5. Sync mode: a frame abandoned (its deadline) keeps its slot until its late
   ACK comes (``held``): HAProxy frees it at once, and the late ACK then
   arriving while the next NOTIFY waits kills the connection with status 12.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from ..protocol.connection import AckReceived
from .backoff import Backoff
from .balance import Balancer, ServerState
from .models import PoolMetrics, ServerMetrics
from .ratelimit import RateCounter
from .settings import DEFAULT_MAX_CONNECTING, PoolSettings

__all__ = ["AppletState", "Frame", "Link", "PoolState", "RequestState"]


class RequestState(enum.Enum):
    QUEUED = "queued"      # in the pool's sending queue
    ASSIGNED = "assigned"  # handed to a link, bytes not all written yet
    WAITING = "waiting"    # written, waiting for the ACK
    DONE = "done"


class AppletState(enum.Enum):
    CONNECTING = "connecting"  # set here; the applet moves it to HELLO once connected
    HELLO = "hello"
    READY = "ready"            # set here only (link_ready)
    CLOSED = "closed"          # set here only (link_closed)


_QUEUED = RequestState.QUEUED
_ASSIGNED = RequestState.ASSIGNED
_WAITING = RequestState.WAITING
_DONE = RequestState.DONE
_READY = AppletState.READY
_CLOSED = AppletState.CLOSED


class Frame(Protocol):
    """What the bookkeeping needs of a request (``waiting.FrameRequest``)."""

    key: tuple[int, int]
    state: RequestState
    link: Link | None
    server: str | None
    fragmented: bool
    t_written: float
    t_acked: float

    def finish(self, status: int, ack: Any = None, error: str | None = None) -> None: ...


class Link:
    """The bookkeeping of one agent connection (its applet is ``io``)."""

    __slots__ = ("acks", "capacity", "free", "held", "ident", "inflight", "io", "mode",
                 "opened_at", "server", "state")

    def __init__(self, ident: int, server: ServerState, capacity: int, opened_at: float) -> None:
        self.ident = ident
        self.server = server
        self.state = AppletState.CONNECTING
        #: "sync", "pipelining" or "async", known once READY
        self.mode: str | None = None
        self.capacity = capacity
        #: slots this link may still take (0 unless READY)
        self.free = 0
        self.inflight: dict[tuple[int, int], Any] = {}
        #: sync mode: the key of an abandoned frame whose late ACK keeps the slot
        self.held: tuple[int, int] | None = None
        #: ACKs matched on this link: a link with none never proved itself
        self.acks = 0
        self.opened_at = opened_at
        self.io: Any = None

    def __repr__(self) -> str:
        return (f"<Link #{self.ident} {self.server.name} {self.state.value} {self.mode} "
                f"[frames: {len(self.inflight)} in flight, {self.free} free]>")


class PoolState:
    """The bookkeeping of one pool (see the module docstring).

    :param settings: the agent's :class:`PoolSettings`.
    :param servers: the backend's :class:`ServerState` objects.
    :param algorithm: the backend's ``balance``.
    :param clock: a monotonic clock (tests walk it by hand).
    """

    def __init__(self, settings: PoolSettings, servers: Sequence[ServerState],
                 algorithm: str = "roundrobin", *, max_connecting: int = DEFAULT_MAX_CONNECTING,
                 max_applets: int | None = None, clock: Callable[[], float] = time.monotonic,
                 balancer: Balancer | None = None, name: str = "backend") -> None:
        self.settings = settings
        #: the backend's name, for errors
        self.name = name
        self.servers = tuple(servers)
        self.balancer = balancer or Balancer(self.servers, algorithm)
        self.clock = clock
        self.conn_rate = RateCounter(1.0, clock)
        self.max_connecting = max(int(max_connecting), 1)
        self.max_applets = max_applets
        #: (stream-id, frame-id) -> request, every frame between submission and its end
        self.frames: dict[tuple[int, int], Any] = {}
        self.queue: deque[Any] = deque()
        self.nb_queued = 0
        self.nb_assigned = 0
        self.nb_waiting = 0
        self.links: set[Link] = set()
        self.ready: list[Link] = []
        #: READY links with a free slot, in round-robin order (HAProxy's idle tree)
        self.available: dict[Link, None] = {}
        self.connecting = 0
        #: what a new link will take: what the last handshake settled, the configuration until then
        self.capacity_guess = (settings.max_waiting_frames
                               if (settings.pipelining or settings.async_) else 1)
        self.closed = False
        self.connections_opened = 0
        self.frames_sent = 0
        self.acks_received = 0
        self._next_ident = 1
        #: ("unreachable" | "recovered", server, reason): the shell drains and logs them
        self.notices: list[tuple[str, ServerState, str]] = []

    @classmethod
    def for_servers(cls, settings: PoolSettings, addresses: Iterable[Any],
                    backoff: tuple[float, float] = (0.05, 1.0), jitter: float = 0.1,
                    **options: Any) -> PoolState:
        """A state over fresh :class:`ServerState` objects (``backoff`` = (base, cap))."""
        clock = options.get("clock", time.monotonic)
        base, cap = backoff
        servers = [ServerState(a, Backoff(base=base, cap=cap, jitter=jitter, clock=clock))
                   for a in addresses]
        return cls(settings, servers, **options)

    # ------------------------------------------------------------------ slots

    def _take_slot(self, link: Link, request: Any) -> None:
        """The one place a slot is taken (``link`` is READY with one free)."""
        link.free -= 1
        available = self.available
        del available[link]
        if link.free:
            available[link] = None  # still room: to the back of the line
        request.link = link
        request.server = link.server.name
        request.state = _ASSIGNED
        link.inflight[request.key] = request
        self.nb_assigned += 1

    def _give_back(self, link: Link) -> None:
        """The one place a slot comes back (ACK, abandon, a frame that could not go out)."""
        if link.free < link.capacity:
            link.free += 1
        if link.state is _READY and link not in self.available:
            self.available[link] = None

    def take(self, request: Any) -> Link | None:
        """The hot path: nothing queued ahead and a free slot somewhere: the
        slot is taken for ``request`` and its link returned (the shell submits
        the frame to ``link.io``); else None (the shell queues it)."""
        if self.nb_queued:
            return None
        for link in self.available:
            self._take_slot(link, request)
            return link
        return None

    def put(self, link: Link, request: Any) -> None:
        """``request`` leaves ``link`` without an ACK (it could not go out on it)."""
        if link.inflight.pop(request.key, None) is not None:
            if request.state is _ASSIGNED:
                self.nb_assigned -= 1
            elif request.state is _WAITING:
                self.nb_waiting -= 1
            self._give_back(link)

    def enqueue(self, request: Any) -> None:
        self.queue.append(request)
        self.nb_queued += 1

    # ------------------------------------------------------------------ the plan

    def plan(self) -> tuple[list[tuple[Link, Any]], list[Link], float | None]:
        """Hand queued frames to free slots, decide the links to open, fail the
        queue when nothing can take it.

        :returns: ``(assigned, opened, retry)``: the (link, request) pairs to
            submit, the new links to give an applet, and the delay after which
            to call ``plan()`` again (a server backing off, ``maxconnrate``), or None.
        """
        assigned: list[tuple[Link, Any]] = []
        queue = self.queue
        available = self.available
        while self.nb_queued and available:
            request = queue.popleft()
            if request.state is not _QUEUED:
                continue
            self.nb_queued -= 1
            link = next(iter(available))
            self._take_slot(link, request)
            assigned.append((link, request))
        if not self.nb_queued:
            if len(queue) > 64:
                self.queue = deque(r for r in queue if r.state is _QUEUED)
            return assigned, [], None
        opened, retry = self._open_links()
        if self.nb_queued and not self.links:
            status, error = self.unavailable()
            self.fail_queue(status, error)
        return assigned, opened, retry

    def _open_links(self) -> tuple[list[Link], float | None]:
        opened: list[Link] = []
        if self.closed:
            return opened, None
        settings = self.settings
        guess = self.capacity_guess
        demand = self.nb_queued - self.connecting * guess
        while demand > 0:
            if self.max_applets is not None and len(self.links) >= self.max_applets:
                break
            if self.connecting >= self.max_connecting:
                break
            if settings.maxconnrate and not self.conn_rate.allows(settings.maxconnrate):
                if self.links:
                    return opened, self.conn_rate.delay(settings.maxconnrate)
                break
            server = self.balancer.choose()
            if server is None:
                waits = [s.backoff.remaining() for s in self.servers if s.up and s.backoff.failures]
                if self.links and waits:
                    return opened, min(waits)
                break
            opened.append(self.open_link(server))
            demand -= guess
        return opened, None

    def open_link(self, server: ServerState) -> Link:
        """Count a new link to ``server`` (the shell gives it an applet)."""
        self.conn_rate.add()
        self.connections_opened += 1
        server.connections += 1
        server.connecting += 1
        server.connect_attempts += 1
        self.connecting += 1
        link = Link(self._next_ident, server, self.capacity_guess, self.clock())
        self._next_ident += 1
        self.links.add(link)
        return link

    def unavailable(self) -> tuple[int, str]:
        """The status for frames no link can take: the last failure of a server
        that is backing off (256+N, or 2 for a failed connect), else 2."""
        failed = [s for s in self.servers if s.backoff.failures and s.last_status is not None]
        if failed:
            last = max(failed, key=lambda s: s.last_failure_at)
            return last.last_status or 2, f"{last.name}: {last.last_error}"
        if not any(s.up for s in self.servers):
            return 2, f"no server of backend '{self.name}' is up"
        return 2, "no agent connection available (maxconnrate reached)"

    def fail_queue(self, status: int, error: str) -> None:
        queue, self.queue = self.queue, deque()
        self.nb_queued = 0
        for request in queue:
            if request.state is _QUEUED:
                request.finish(status, error=error)

    # ------------------------------------------------------------------ the stream gives up

    def abandon(self, request: Any, status: int, error: str) -> Link | None:
        """A stream gives its frame up (deadline, killed, engine closed): end
        it with ``status`` and return the link it was on, if any (the shell
        tells that connection to forget it; ``link.held == request.key`` when
        the sync slot is held for the late ACK)."""
        state = request.state
        if state is _DONE:
            return None
        if state is _QUEUED:
            self.nb_queued -= 1  # left in the deque, skipped when popped
        elif state is _ASSIGNED:
            self.nb_assigned -= 1
        else:
            self.nb_waiting -= 1
        link: Link | None = request.link
        request.finish(status, error=error)
        if link is None or link.inflight.pop(request.key, None) is None:
            return None
        if link.mode == "sync" and link.state is _READY \
                and not (request.fragmented and state is _ASSIGNED):
            # Its ACK will come (a fragmented NOTIFY cut short gets FIN|ABORT: none).
            link.held = request.key
        else:
            self._give_back(link)
        return link

    def unhold(self, link: Link) -> None:
        """The late ACK of the held frame came: the sync slot is free again."""
        if link.held is not None:
            link.held = None
            self._give_back(link)

    # ------------------------------------------------------------------ the applets report

    def link_ready(self, link: Link, mode: str, capacity: int) -> None:
        """The handshake of ``link`` succeeded."""
        server = link.server
        server.connecting -= 1
        server.ready += 1
        self.connecting -= 1
        link.mode = mode
        link.capacity = link.free = capacity
        link.state = _READY
        self.ready.append(link)
        self.available[link] = None
        self.capacity_guess = capacity

    def written(self, link: Link, requests: Iterable[Any], now: float) -> None:
        """The last byte of these NOTIFYs went out on ``link``."""
        count = 0
        for request in requests:
            if request.state is _ASSIGNED and request.link is link:
                request.state = _WAITING
                request.t_written = now
                count += 1
        # The counters once per batch (a batch is every frame of a loop iteration).
        self.nb_assigned -= count
        self.nb_waiting += count
        self.frames_sent += count

    def acked(self, link: Link, event: AckReceived, now: float) -> Any:
        """An ACK came on ``link`` (read at ``now``): the request it ends, or
        None (a late ACK of an abandoned frame, one matching nothing).  When the
        request was sent on another link (async), ``request.link`` is that link:
        the shell tells its connection to forget it."""
        ack = event.ack
        key = (ack.stream_id, ack.frame_id)
        held = link.held
        if held is not None and held == key:  # None == key: a slower comparison
            self.unhold(link)
            return None
        request = self.frames.get(key)
        if request is None:
            return None
        state = request.state
        if state is _DONE:
            return None
        owner = request.link
        if (owner is not link or not event.matched) and (
                link.mode != "async" or (owner is not None and owner.mode != "async")):
            return None  # cross-connection ACKs are only valid between async links
        if state is _WAITING:
            self.nb_waiting -= 1
        elif state is _ASSIGNED:
            self.nb_assigned -= 1  # the ACK overtook the end of our write
            request.t_written = now
        else:  # QUEUED again after its link died: the agent had it anyway
            self.nb_queued -= 1
            request.t_written = now
        request.t_acked = now
        self.acks_received += 1
        link.acks += 1
        server = link.server
        if server.unreachable:
            # The first ACK since it failed (a passed health check may have
            # cleared the back-off already: the notice still goes out).
            server.unreachable = False
            server.backoff.success()
            self.notices.append(("recovered", server, "an agent answered"))
        if event.aborted:
            request.finish(4, error="the agent aborted the fragmented NOTIFY")
        else:
            request.finish(0, ack)
        if owner is not None and owner.inflight.pop(key, None) is not None:
            self._give_back(owner)
        return request

    def link_closed(self, link: Link, status: int | None, error: str, *,
                    failure: bool) -> tuple[list[Any], int, list[Link]]:
        """``link`` ended with SPOP ``status`` (None: it never connected).

        Its frames not yet written are queued again; those written end with
        256+N, or, in async mode while another async link lives, are returned
        as orphans for the shell to wait a grace for.

        :param failure: the end was the agent's doing (not our close).
        :returns: ``(orphans, stream_status, survivors)``: survivors are the
            async links that may still bring an ACK (empty unless ``link`` was async).
        """
        was = link.state
        if was is _CLOSED:
            return [], 2, []
        link.state = _CLOSED
        server = link.server
        self.links.discard(link)
        server.connections -= 1
        if was is _READY:
            server.ready -= 1
            self.ready.remove(link)
            self.available.pop(link, None)
        else:
            server.connecting -= 1
            self.connecting -= 1
        stream_status = 2 if status is None else 256 + status
        if was is _READY and not link.inflight and link.held is None:
            # A working connection closed while nothing was in flight (an agent's
            # own idle timeout, a restart): nothing failed, no back-off.
            failure = False
        if failure and not self.closed:
            if link.acks:
                # It worked, then broke (one bad ACK): says nothing of the next one.
                server.last_status, server.last_error = stream_status, error
            else:
                # Refused, failed handshake, or dead before its first ACK (an
                # agent that closes at every NOTIFY): a failed attempt.
                self._record_failure(server, stream_status, error, link.opened_at)
        elif failure:
            server.last_status, server.last_error = stream_status, error
        survivors = [r for r in self.ready if r.mode == "async"] if link.mode == "async" else []
        requeue: list[Any] = []
        orphans: list[Any] = []
        for request in link.inflight.values():
            request.link = None
            if request.state is _ASSIGNED:
                self.nb_assigned -= 1
                request.state = _QUEUED
                requeue.append(request)
            elif survivors:
                orphans.append(request)  # still WAITING, still counted
            else:
                self.nb_waiting -= 1
                request.finish(stream_status, error=error)
        link.inflight.clear()
        link.free = 0
        link.held = None
        if requeue:
            self.queue.extendleft(reversed(requeue))
            self.nb_queued += len(requeue)
        return orphans, stream_status, survivors

    def orphan_ended(self, request: Any) -> None:
        """An orphan's grace is over (the shell finishes it)."""
        self.nb_waiting -= 1

    def _record_failure(self, server: ServerState, status: int, error: str,
                        started: float) -> None:
        server.record_failure(status, error, self.clock(), started=started)
        if not server.unreachable:
            server.unreachable = True
            self.notices.append(("unreachable", server, error))

    # ------------------------------------------------------------------ views

    def metrics(self) -> PoolMetrics:
        """A snapshot of the SPOE.txt §4 counters and of every server."""
        servers = tuple(ServerMetrics(
            name=s.name, address=s.address, up=s.up, connections=s.connections, ready=s.ready,
            connect_attempts=s.connect_attempts, connect_errors=s.connect_errors,
            last_error=s.last_error, last_status=s.last_status,
            backoff_remaining=round(s.backoff.remaining(), 3)) for s in self.servers)
        return PoolMetrics(
            applets=len(self.links), idles=len(self.available),
            nb_sending=self.nb_queued + self.nb_assigned, nb_waiting=self.nb_waiting,
            servers=servers, connections_opened=self.connections_opened,
            frames_sent=self.frames_sent, acks_received=self.acks_received)

    def check(self, orphans: int = 0) -> None:
        """Assert the invariants of the module docstring (tests; O(frames))."""
        queued = sum(1 for r in self.queue if r.state is _QUEUED)
        assert queued == self.nb_queued, (queued, self.nb_queued)
        assigned = waiting = 0
        seen: set[int] = set()
        for link in self.links:
            for request in link.inflight.values():
                assert request.link is link and id(request) not in seen, request
                seen.add(id(request))
                assigned += request.state is _ASSIGNED
                waiting += request.state is _WAITING
            if link.state is _READY:
                held = link.held is not None
                assert link.free + len(link.inflight) + held == link.capacity, link
                assert (link in self.available) == (link.free > 0), link
            else:
                assert link.free == 0 and not link.inflight and link not in self.available, link
        assert assigned == self.nb_assigned, (assigned, self.nb_assigned)
        assert waiting + orphans == self.nb_waiting, (waiting, orphans, self.nb_waiting)
        assert self.connecting == sum(1 for x in self.links if x.state is not _READY)
        assert set(self.ready) == {x for x in self.links if x.state is _READY}
        for server in self.servers:
            mine = [x for x in self.links if x.server is server]
            assert server.connections == len(mine), server
            assert server.ready == sum(1 for x in mine if x.state is _READY), server
            assert server.connecting == server.connections - server.ready, server
