"""The pool's bookkeeping without a socket (``spoe_sync.engine.poolstate``).

:class:`Shell` plays the I/O shell's part by hand, as h11's ``ConnectionPair``
drives both ends of a connection: it submits what the plan assigns, reports
handshakes, writes, ACKs and closes as an applet would, walks a fake clock,
and checks the module's invariants after every step.  The agent faults of
issue 11 are replayed as event sequences."""

from __future__ import annotations

import pytest

from spoe_sync.engine.poolstate import AppletState, Link, PoolState, RequestState
from spoe_sync.engine.settings import PoolSettings
from spoe_sync.protocol import Ack
from spoe_sync.protocol.connection import AckReceived

DONE = RequestState.DONE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Req:
    """A request as the shell's FrameRequest is, minus the waking."""

    def __init__(self, sid: int, fid: int = 1) -> None:
        self.stream_id, self.frame_id, self.key = sid, fid, (sid, fid)
        self.state = RequestState.QUEUED
        self.link: Link | None = None
        self.server: str | None = None
        self.fragmented = False
        self.t_written = self.t_acked = -1.0
        self.status: int | None = None
        self.error: str | None = None
        self.ack: Ack | None = None

    def finish(self, status: int, ack: Ack | None = None, error: str | None = None) -> None:
        if self.state is DONE:
            return
        self.state, self.status, self.ack, self.error = DONE, status, ack, error


class Shell:
    """The pool's I/O shell, by hand."""

    def __init__(self, *servers: str, mwf: int = 20, pipelining: bool = True,
                 async_: bool = True, maxconnrate: int = 0, max_connecting: int = 8) -> None:
        self.clock = Clock()
        settings = PoolSettings(max_waiting_frames=mwf, pipelining=pipelining, async_=async_,
                                maxconnrate=maxconnrate)
        self.state = PoolState.for_servers(settings, servers or ("127.0.0.1:9",),
                                           backoff=(0.05, 1.0), jitter=0.0, clock=self.clock,
                                           max_connecting=max_connecting)
        self.opened: list[Link] = []
        self.retry: float | None = None
        self.orphans: list[Req] = []

    def check(self) -> None:
        self.state.check(orphans=sum(1 for r in self.orphans if r.state is RequestState.WAITING))

    def plan(self) -> list[tuple[Link, Req]]:
        assigned, opened, self.retry = self.state.plan()
        self.opened.extend(opened)
        return assigned

    def send(self, req: Req) -> Link | None:
        """What AppletPool.send does before parking the stream."""
        self.state.frames[req.key] = req
        link = self.state.take(req)
        if link is None:
            self.state.enqueue(req)
            self.plan()
        self.check()
        return link

    def end(self, req: Req) -> None:
        """The stream leaves (after its end)."""
        self.state.frames.pop(req.key, None)

    def ready(self, link: Link, mode: str = "pipelining", capacity: int = 20) -> None:
        self.state.link_ready(link, mode, capacity)
        if self.state.nb_queued:
            self.plan()
        self.check()

    def open_ready(self, count: int = 1, mode: str = "pipelining", capacity: int = 20) -> list[Link]:
        """``count`` warm links: opened, through their handshake, and each
        proven by one answered frame (a frame put on it by hand)."""
        links = []
        for _ in range(count):
            link = self.state.open_link(self.state.servers[0])
            self.opened.append(link)
            self.ready(link, mode, capacity)
            req = Req(90_000 + len(self.opened))
            self.state.frames[req.key] = req
            self.state._take_slot(link, req)
            self.write_all(link)
            self.ack(link, req)
            self.end(req)
            links.append(link)
        return links

    def write_all(self, link: Link) -> None:
        self.state.written(link, list(link.inflight.values()), self.clock())
        self.check()

    def ack(self, link: Link, req: Req, *, matched: bool = True, aborted: bool = False) -> Req | None:
        event = AckReceived(Ack(req.stream_id, req.frame_id), matched=matched, aborted=aborted)
        done = self.state.acked(link, event, self.clock())
        self.check()
        return done  # type: ignore[no-any-return]

    def close(self, link: Link, status: int | None, *, failure: bool = True) -> list[Req]:
        orphans, _, _ = self.state.link_closed(link, status, "closed", failure=failure)
        self.orphans.extend(orphans)
        if self.state.nb_queued:
            self.plan()
        self.check()
        return orphans


def test_a_warm_pool_hands_frames_straight_to_a_free_slot_and_back() -> None:
    shell = Shell()
    (link,) = shell.open_ready()
    reqs = [Req(sid) for sid in range(1, 21)]
    assert all(shell.send(r) is link for r in reqs)  # the hot path: no queue
    assert link.free == 0 and link not in shell.state.available
    assert shell.send(Req(21)) is None and shell.state.nb_queued == 1  # full: queued
    shell.write_all(link)
    assert shell.ack(link, reqs[0]) is reqs[0] and reqs[0].status == 0
    # The freed slot went back, and the queued frame takes it at the next plan.
    assert [r.key for _, r in shell.plan()] == [(21, 1)]
    shell.check()


def test_queued_frames_go_in_fifo_order_round_robin_over_free_links() -> None:
    shell = Shell(mwf=2)
    a, b = shell.open_ready(2, capacity=2)
    assert {a, b} == set(shell.state.available)
    first = [shell.send(Req(sid)) for sid in range(1, 5)]
    assert first == [a, b, a, b]  # round robin, not "fill one first"


@pytest.mark.parametrize(("mode", "capacity", "queued", "expected"), [
    pytest.param("pipelining", 20, 45, 3, id="pipelining: 45 frames, 3 links"),
    pytest.param("sync", 1, 5, 5, id="sync: one link per frame"),
    pytest.param("sync", 1, 30, 8, id="sync: at most max_connecting handshakes"),
])
def test_links_are_opened_by_demand(mode: str, capacity: int, queued: int, expected: int) -> None:
    shell = Shell()
    shell.open_ready(1, mode=mode, capacity=capacity)
    shell.opened.clear()
    busy = [Req(sid) for sid in range(1, capacity + 1)]
    for r in busy:
        shell.send(r)  # fills the warm link
    for sid in range(100, 100 + queued):
        shell.send(Req(sid))
    assert len(shell.opened) == expected


def test_a_server_without_a_working_link_is_probed_by_one_connection() -> None:
    shell = Shell()
    for sid in range(1, 101):
        shell.send(Req(sid))
    assert len(shell.opened) == 1
    shell.ready(shell.opened[0])  # it works: the others may open now
    assert len(shell.opened) == 1 + 4  # 80 frames left, 20 per link


def test_defect_2_a_link_dying_before_its_first_ack_backs_the_server_off() -> None:
    """An agent completing its HELLO and closing at the first NOTIFY, replayed:
    3,000 events, one every millisecond, open a handful of links and every
    one ends with the connection's status at once."""
    shell = Shell(mwf=1, pipelining=False, async_=False)
    reqs = []
    for sid in range(1, 3001):
        shell.clock.now += 0.001
        req = Req(sid)
        reqs.append(req)
        shell.send(req)
        for link in [x for x in shell.opened if x.state is AppletState.CONNECTING]:
            shell.ready(link, "sync", 1)
            shell.write_all(link)
            shell.close(link, 1)  # closed at the first NOTIFY
        shell.end(req)
        assert req.state is DONE, req.key  # never left to its deadline
    assert {r.status for r in reqs} == {256 + 1}
    # 3 s of 0.05, 0.1, ... capped at 1 s: a handful of attempts, not 3,000.
    assert 3 <= len(shell.opened) <= 10, len(shell.opened)
    server = shell.state.servers[0]
    assert server.backoff.failures == len(shell.opened)
    assert [kind for kind, _, _ in shell.state.notices] == ["unreachable"]


def test_a_link_that_worked_then_broke_does_not_back_off() -> None:
    shell = Shell()
    (link,) = shell.open_ready()
    req = Req(1)
    shell.send(req)
    shell.write_all(link)
    shell.close(link, 4)  # a bad frame after a good ACK
    assert req.status == 256 + 4
    server = shell.state.servers[0]
    assert server.backoff.failures == 0 and server.last_status == 256 + 4
    assert shell.send(Req(2)) is None and len(shell.opened) == 2  # a new link at once


def test_an_idle_link_closed_by_the_agent_is_no_failure() -> None:
    shell = Shell()
    (link,) = shell.open_ready()
    shell.close(link, 1)
    assert shell.state.servers[0].backoff.failures == 0


def test_defect_3_failures_observed_together_are_one_back_off_step() -> None:
    """50 sync links die at once (the agent killed under load): the links
    opened while the first deaths were seen are refused together, one step."""
    shell = Shell(mwf=1, pipelining=False, async_=False)
    links = shell.open_ready(50, mode="sync", capacity=1)
    shell.opened.clear()
    for sid in range(1, 51):
        shell.send(Req(sid))  # every link busy
    for sid in range(100, 120):
        shell.send(Req(sid))  # queued, nothing to open: links are busy... and alive
    shell.clock.now += 0.001
    for link in links[:10]:
        shell.close(link, 1)  # the first deaths: worked before, no back-off...
    assert len(shell.opened) == 8  # ...and reconnections go out while 40 look alive
    for link in links[10:]:
        shell.close(link, 1)
    shell.clock.now += 0.001
    for link in list(shell.opened):
        shell.close(link, None)  # refused, all of them
    backoff = shell.state.servers[0].backoff
    assert backoff.failures == 1, backoff  # one step, not eight
    assert backoff.remaining() == pytest.approx(0.05)
    # Queued frames failed at once with the refusal's status (2).
    assert shell.state.nb_queued == 0
    shell.clock.now += 0.06
    shell.send(Req(500))
    assert len(shell.opened) == 9  # one probe after the step


def test_defect_4_a_closing_link_is_never_handed_a_frame() -> None:
    shell = Shell(mwf=4, pipelining=True, async_=False)
    a, b = shell.open_ready(2, capacity=4)
    on_a = [Req(sid) for sid in range(1, 3)]
    for r in on_a:
        assert shell.send(r) in (a, b)
    mine = [r for r in on_a if r.link is a]
    shell.write_all(a)
    unwritten = Req(10)
    while shell.send(unwritten) is not a:  # an unwritten frame on a
        shell.end(unwritten)
        unwritten = Req(unwritten.stream_id + 1)
    shell.close(a, 42)
    assert a not in shell.state.available and a.state is AppletState.CLOSED
    assert all(r.status == 256 + 42 for r in mine)  # written: the link's status
    assert unwritten.state is not DONE and unwritten.link is b  # not written: sent again
    for sid in range(100, 110):
        link = shell.send(Req(sid))
        assert link is None or link is b


def test_async_frames_of_a_lost_link_wait_as_orphans_while_another_lives() -> None:
    shell = Shell(mwf=2)
    a, b = shell.open_ready(2, mode="async", capacity=2)
    req = Req(1)
    assert shell.send(req) is a
    shell.write_all(a)
    assert shell.close(a, 1) == [req]  # an orphan: b may still bring its ACK
    assert req.state is RequestState.WAITING and req.link is None
    assert shell.ack(b, req, matched=False) is req and req.status == 0
    shell.check()


def test_an_async_ack_on_another_link_frees_the_owner_slot() -> None:
    shell = Shell(mwf=2)
    a, b = shell.open_ready(2, mode="async", capacity=2)
    req = Req(1)
    assert shell.send(req) is a
    shell.write_all(a)
    assert shell.ack(b, req, matched=False) is req
    assert req.link is a and a.free == 2  # the shell tells a's connection to forget it


def test_cross_link_acks_are_ignored_outside_async_mode() -> None:
    shell = Shell(mwf=2, async_=False)
    a, b = shell.open_ready(2, capacity=2)
    req = Req(1)
    shell.send(req)
    shell.write_all(a)
    assert shell.ack(b, req, matched=False) is None and req.state is RequestState.WAITING


def test_sync_mode_holds_the_slot_of_an_abandoned_frame_until_its_late_ack() -> None:
    shell = Shell(mwf=1, pipelining=False, async_=False)
    (link,) = shell.open_ready(1, mode="sync", capacity=1)
    req = Req(1)
    shell.send(req)
    shell.write_all(link)
    assert shell.state.abandon(req, 1, "timeout processing") is link
    assert req.status == 1 and link.held == req.key and link.free == 0
    shell.check()
    assert shell.ack(link, req) is None  # the late ACK...
    assert link.held is None and link.free == 1  # ...gives the slot back


def test_a_fragmented_notify_cut_short_is_not_held() -> None:
    shell = Shell(mwf=1, pipelining=False, async_=False)
    (link,) = shell.open_ready(1, mode="sync", capacity=1)
    req = Req(1)
    shell.send(req)
    req.fragmented = True  # not all written: FIN|ABORT, no ACK to wait for
    assert shell.state.abandon(req, 1, "timeout processing") is link
    assert link.held is None and link.free == 1
    shell.check()


def test_a_frame_abandoned_while_queued_is_skipped() -> None:
    shell = Shell(mwf=1)
    shell.open_ready(1, capacity=1)
    shell.send(Req(1))
    queued = Req(2)
    shell.send(queued)
    assert shell.state.abandon(queued, 1, "timeout processing") is None
    shell.check()
    shell.state.fail_queue(2, "x")
    assert queued.status == 1  # the first end wins


def test_no_server_up_fails_at_once_with_2() -> None:
    shell = Shell()
    shell.state.servers[0].up = False
    req = Req(1)
    shell.send(req)
    assert req.status == 2 and "no server of backend" in (req.error or "")
    assert shell.opened == []


def test_maxconnrate_returns_a_retry_delay() -> None:
    shell = Shell(mwf=1, pipelining=False, async_=False, maxconnrate=1)
    shell.open_ready(1, mode="sync", capacity=1)
    shell.send(Req(1))
    shell.send(Req(2))
    assert len(shell.opened) == 1  # the rate is spent
    assert shell.retry is not None and 0 < shell.retry <= 1.01


def test_an_ack_after_failures_is_a_recovery_notice() -> None:
    shell = Shell()
    req = Req(1)
    shell.send(req)
    shell.close(shell.opened[0], None)  # refused
    assert req.status == 2
    shell.clock.now += 0.1
    req = Req(2)
    shell.send(req)
    link = shell.opened[-1]
    shell.ready(link)
    shell.write_all(link)
    shell.ack(link, req)
    assert [kind for kind, _, _ in shell.state.notices] == ["unreachable", "recovered"]
    assert shell.state.servers[0].backoff.failures == 0


def test_a_recovery_is_noticed_even_after_a_health_check_cleared_the_back_off() -> None:
    shell = Shell()
    shell.send(Req(1))
    shell.close(shell.opened[0], None)  # refused: unreachable
    shell.state.servers[0].backoff.success()  # what a passed health check does
    req = Req(2)
    shell.send(req)
    link = shell.opened[-1]
    shell.ready(link)
    shell.write_all(link)
    shell.ack(link, req)
    assert [kind for kind, _, _ in shell.state.notices] == ["unreachable", "recovered"]
