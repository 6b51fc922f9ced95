"""Never a success past ``timeout processing`` (issue 11, defect 1): an ACK the
stream's greenlet sees only after the deadline (the worker was busy when it
came) ends with status 1 and none of its actions applies."""

from __future__ import annotations

import time

import gevent
from loguru import logger

from spoe_sync.engine.actions import Journal, apply_ack, undo
from spoe_sync.engine.vars import ProcVars, Session, VarLimits, Vars
from spoe_sync.protocol import Ack, SetVar, UnsetVar, VarScope
from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, make_engine, samples


def test_an_ack_seen_or_applied_after_the_deadline_is_a_timeout_and_leaves_nothing():
    # Two streams get their ACK at 0.3 s (deadline 1 s).  The first greenlet
    # to apply its actions logs the dropped one, and the application's log sink
    # is slow: it holds the loop until 1.5 s.  That stream finished applying
    # past its deadline (its actions are undone), the other one sees its ACK
    # past its deadline (never applied): both end with status 1.  Before: both
    # succeeded, at 1.5 s, with a 1 s timeout processing.
    actions = {"m-first": lambda _m: [SetVar(VarScope.TXN, "score", 87),
                                      SetVar(VarScope.TXN, "b-ad", 1)]}
    stalls: list[str] = []

    def slow_sink(message) -> None:
        if "dropped" in message and not stalls:
            stalls.append(message)
            time.sleep(1.2)

    sink = logger.add(slow_sink, level="DEBUG", format="{message}")
    logger.enable("spoe_sync")
    try:
        with FakeAgent(actions, delays=0.3) as agent, \
                make_engine(agent.address, "option set-on-error err", processing="1s") as engine:
            streams = [engine.new_stream(samples()) for _ in range(2)]
            jobs = [gevent.spawn(engine.process_event, s, EVENT) for s in streams]
            gevent.joinall(jobs, timeout=10)
            results = [job.get(block=False) for job in jobs]  # re-raises what a job raised
    finally:
        logger.disable("spoe_sync")
        logger.remove(sink)
    assert stalls, "the sink never stalled: nothing was tested"
    assert [int(r.status) for r in results] == [1, 1], results
    for result, stream in zip(results, streams):
        assert result.vars_set == {} and result.actions == ()
        assert stream.vars.get("txn.test.score") is None
        assert stream.vars.get("txn.test.err") == 1  # set-on-error still tells the truth


def test_undo_takes_back_every_change_of_an_ack():
    proc = ProcVars(["proc.p.known"])
    vars = Vars(Session(), proc, limits=VarLimits(max_vars=4, max_bytes=1000))
    vars.set("txn.p.kept", "old")
    vars.set("sess.p.gone", 5)
    before = (dict(vars), len(vars), vars.nbytes, vars.session.nbytes, proc.nbytes)
    ack = Ack(1, 1, (
        SetVar(VarScope.TXN, "kept", "new value"),   # overwrite
        UnsetVar(VarScope.SESS, "gone"),             # unset
        SetVar(VarScope.TXN, "fresh", 1),            # create
        SetVar(VarScope.TXN, "fresh", 2),            # overwrite what this ACK created
        SetVar(VarScope.PROC, "known", b"x"),        # registered proc name
        SetVar(VarScope.TXN, "a", 1), SetVar(VarScope.TXN, "b", 1),  # the cap of 4 reached
        SetVar(VarScope.TXN, "c", 1),                # dropped
    ))
    journal: Journal = []
    report = apply_ack(ack, vars, var_prefix="p", journal=journal)
    assert report.vars_set["txn.p.kept"] == "new value" and report.nb_dropped == 1
    undo(journal)
    assert (dict(vars), len(vars), vars.nbytes, vars.session.nbytes, proc.nbytes) == before
    assert journal == []
