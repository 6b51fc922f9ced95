"""Waking parked streams: one callback of the hub per batch of ended frames
(``waiting.Wakeups``) wakes them as one callback each did: every one, once,
in the order their frames ended, including those ended by a stream woken in
the same round."""

from __future__ import annotations

import time

import gevent

from spoe_sync.engine.deadlines import Deadlines
from spoe_sync.engine.waiting import FrameRequest, RequestState


def _park(deadlines: Deadlines, request: FrameRequest, woken: list[int],
          deadline: float | None = None) -> gevent.Greenlet:
    def run() -> None:
        deadlines.wait(request, deadline)
        woken.append(request.stream_id)
    return gevent.spawn(run)


def _requests(count: int) -> list[FrameRequest]:
    return [FrameRequest(sid, 1, b"x", None, time.monotonic()) for sid in range(1, count + 1)]


def test_a_batch_ended_outside_the_hub_wakes_every_stream_once_in_order() -> None:
    deadlines = Deadlines()
    requests = _requests(30)
    woken: list[int] = []
    parked = [_park(deadlines, r, woken) for r in requests]
    gevent.sleep(0)  # all parked
    order = [5, 1, 30, 2, 17] + [r.stream_id for r in requests
                                 if r.stream_id not in (5, 1, 30, 2, 17)]

    def reader() -> None:  # an applet's reader: one batch, then it blocks again
        for sid in order:
            requests[sid - 1].finish(0)
            requests[sid - 1].finish(1)  # idempotent: no second wake-up
        assert woken == []  # nobody runs before the hub's next callbacks
    gevent.spawn(reader).join(5)
    gevent.joinall(parked, timeout=5)
    assert woken == order
    assert all(r.state is RequestState.DONE and r.status == 0 for r in requests)
    assert deadlines.wakeups.waiters == []


def test_a_stream_woken_in_a_round_can_end_another_frame_and_that_stream_wakes() -> None:
    deadlines = Deadlines()
    first, second, third = _requests(3)
    woken: list[int] = []

    def chained() -> None:
        deadlines.wait(first, None)
        woken.append(first.stream_id)
        second.finish(0)  # in the middle of the hub's round
        third.finish(0)
    parked = [gevent.spawn(chained), _park(deadlines, second, woken),
              _park(deadlines, third, woken)]
    gevent.sleep(0)
    gevent.spawn(first.finish, 0).join(5)
    gevent.joinall(parked, timeout=5)
    assert woken == [1, 2, 3]
    assert all(g.successful() for g in parked)


def test_a_stream_killed_before_its_round_is_not_switched_to_and_the_others_wake() -> None:
    deadlines = Deadlines()
    requests = _requests(3)
    woken: list[int] = []
    parked = [_park(deadlines, r, woken) for r in requests]
    gevent.sleep(0)

    def reader() -> None:
        parked[0].kill(block=False)  # its GreenletExit is thrown before the round
        for request in requests:
            request.finish(0)
    gevent.spawn(reader).join(5)
    gevent.joinall(parked, timeout=5)
    assert woken == [2, 3]
    assert parked[0].dead and isinstance(parked[0].value, gevent.GreenletExit)
    assert deadlines.wakeups.waiters == []


def test_frames_past_their_deadline_are_woken_by_the_shared_timer_in_order() -> None:
    deadlines = Deadlines()
    requests = _requests(5)
    woken: list[int] = []
    deadline = time.monotonic() + 0.05
    for request in requests:
        request.deadline = deadline
    parked = [_park(deadlines, r, woken, deadline) for r in requests]
    gevent.joinall(parked, timeout=5)
    assert woken == [1, 2, 3, 4, 5]
    assert time.monotonic() >= deadline
    assert all(r.state is not RequestState.DONE for r in requests)  # the pool abandons them
    assert len(deadlines) == 0


def test_a_waiter_that_raises_does_not_keep_the_next_ones_asleep() -> None:
    """Each stream used to be one callback of its own; one round for all must
    not lose the streams after one whose switch fails."""
    class Broken:
        def switch(self, value: object) -> None:
            raise RuntimeError("a bug")

    deadlines = Deadlines()
    requests = _requests(3)
    woken: list[int] = []
    parked = [_park(deadlines, r, woken) for r in requests]
    gevent.sleep(0)
    hub = gevent.get_hub()
    errors: list[object] = []
    saved = hub.handle_error
    hub.handle_error = lambda context, *exc: errors.append(exc[0])  # type: ignore[method-assign]
    try:
        def reader() -> None:
            requests[0].finish(0)
            deadlines.wakeups.waiters.append(Broken())  # in the same round
            requests[1].finish(0)
            requests[2].finish(0)
        gevent.spawn(reader).join(5)
        gevent.joinall(parked, timeout=5)
    finally:
        hub.handle_error = saved  # type: ignore[method-assign]
    assert woken == [1, 2, 3]
    assert errors == [RuntimeError]
