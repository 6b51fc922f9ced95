"""The invariant under concurrency (issue 6; SPOE.txt §3.5, docs/explanation/haproxy-behaviour.md
§3.5 counters): hundreds of concurrent streams against fast, slow, failing and flaky
agents; every submitted event or group ends processed, errored, skipped or
interrupted, none lost, none hung, and the counters agree with the results."""

from __future__ import annotations

import random
from collections import Counter

import gevent

from spoe_sync import ProcessingResult
from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, make_engine, run_all, samples, set_score

STREAMS = 400


def _stream_work(engine, index: int, interrupt: bool):
    """One stream: an event then two groups; some streams are cut short by
    their caller (a gevent.Timeout of their own)."""
    stream = engine.new_stream(samples(x_send="1") if index % 2 else samples())
    out: list[object] = []
    for step in range(3):
        if interrupt and step == 1:
            try:
                with gevent.Timeout(0.02):
                    out.append(engine.send_group(stream, "grp"))
            except gevent.Timeout:
                out.append("interrupted")
            continue
        call = engine.process_event if step == 0 else engine.send_group
        out.append(call(stream, EVENT if step == 0 else "grp"))
    return engine, out


def _check(engine, outcomes: list) -> Counter:
    results = [o for o in outcomes if isinstance(o, ProcessingResult)]
    interrupted = sum(1 for o in outcomes if o == "interrupted")
    m = engine.metrics()
    ran = [r for r in results if not r.skipped]
    assert m.submitted == len(outcomes)
    assert m.submitted == m.nb_processed + m.nb_skipped + m.nb_interrupted, m
    assert m.nb_processed == len(ran)
    assert m.nb_errors == sum(1 for r in ran if not r.ok)
    assert m.nb_interrupted == interrupted
    assert m.in_progress == 0
    assert all(r.timings.process >= 0 for r in ran)
    return Counter("skipped" if r.skipped else int(r.status) for r in results)


def test_every_event_ends_processed_errored_skipped_or_interrupted():
    rng = random.Random(6)
    with FakeAgent({"*": set_score(1)}) as fast, \
            FakeAgent(delays=0.5) as slow, \
            FakeAgent(fault="close") as failing, \
            FakeAgent({"*": set_score(2)}, fault="disconnect", fault_after=5) as flaky, \
            FakeAgent({"*": set_score(3)}, delays=0.02, reorder=3,
                      capabilities="pipelining") as jumbled:
        engines = {
            "fast": make_engine(fast.address, "option continue-on-error"),
            "slow": make_engine(slow.address, processing="200ms"),
            "failing": make_engine(failing.address),
            "flaky": make_engine(flaky.address, "option continue-on-error", processing="500ms"),
            "jumbled": make_engine(jumbled.address, processing="1s"),
        }
        names = list(engines)
        plan = [(names[i % len(names)], i, rng.random() < 0.05) for i in range(STREAMS)]
        done = run_all([lambda e=engines[n], i=i, x=x: _stream_work(e, i, x) for n, i, x in plan],
                       timeout=20)
        outcomes: dict[str, list] = {n: [] for n in names}
        for engine, out in done:
            outcomes[next(n for n in names if engines[n] is engine)].extend(out)
        tallies = {n: _check(engines[n], outcomes[n]) for n in names}
        for engine in engines.values():
            engine.close(timeout=2)
            m = engine.metrics()
            assert (m.nb_sending, m.nb_waiting) == (0, 0)

    assert set(tallies["fast"]) == {0}
    # slow: the event times out and, without continue-on-error, the groups are skipped
    assert set(tallies["slow"]) <= {1, "skipped"} and tallies["slow"][1] > 0
    assert tallies["slow"]["skipped"] >= tallies["slow"][1] - 10
    assert 0 not in tallies["failing"] and tallies["failing"]["skipped"] > 0
    assert tallies["flaky"][0] > 0 and any(k != 0 for k in tallies["flaky"])
    assert set(tallies["jumbled"]) <= {0, 1, "skipped"} and tallies["jumbled"][0] > 0
