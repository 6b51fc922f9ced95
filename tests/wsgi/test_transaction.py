"""The SPOE filters of one stream (spoe_sync.engine.transaction.Transaction), used by the WSGI
middleware and the TCP proxy: engines in declaration order sharing one session and one
variable store, send-spoe-group, and one failure policy (an engine's SpoeError is warned about
with the engine's name, recorded, and the stream goes on)."""

from __future__ import annotations

import pytest
from loguru import logger

from spoe_sync.engine.transaction import Transaction
from spoe_sync.errors import EngineClosed
from spoe_sync.protocol import SetVar, VarScope
from spoe_sync.samples import StaticSamples
from spoe_sync.testing import FakeAgent
from tests.kit import make_engine

FIRST = """[first]
spoe-agent first-agent
    messages first-msg
    groups first-grp
    option var-prefix first
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend agents
spoe-message first-msg
    args path=path
    event on-frontend-http-request
spoe-message first-grp-msg
    args n=int(1)
spoe-group first-grp
    messages first-grp-msg
"""
SECOND = """[second]
spoe-agent second-agent
    messages second-msg
    option var-prefix second
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend agents
spoe-message second-msg
    args seen=var(txn.first.score)
    event on-frontend-http-request
"""


def _handler(message):
    args = dict(message.args)
    if message.name == "first-msg":
        return [SetVar(VarScope.TXN, "score", 42), SetVar(VarScope.SESS, "who", "first")]
    if message.name == "second-msg":
        return [SetVar(VarScope.TXN, "saw", args.get("seen"))]
    if message.name == "first-grp-msg":
        return [SetVar(VarScope.TXN, "grp", "done")]
    return []


@pytest.fixture
def engines():
    with FakeAgent({"*": _handler}) as agent:
        made = [make_engine(FIRST, "first", agent.address),
                make_engine(SECOND, "second", agent.address)]
        try:
            yield made
        finally:
            for engine in made:
                engine.close(timeout=1)


def _samples():
    return StaticSamples({"path": "/login"})


def test_engines_in_order_share_one_session_and_variables(engines):
    tx = Transaction(engines, _samples())
    tx.event("on-frontend-http-request")
    tx.group("first", "first-grp")
    # the second engine's message read what the first agent had just set
    assert tx.vars.get("txn.second.saw") == 42
    assert tx.vars.get("txn.first.grp") == "done"
    assert tx.session.get("sess.first.who") == "first"
    assert [r.status for r in tx.results] == [0, 0, 0] and tx.failures == []
    # both engines' streams use the transaction's variables
    assert {s.vars is tx.vars for s in tx.streams.values()} == {True}


def test_a_closed_engine_is_warned_about_recorded_and_the_others_go_on(engines):
    lines: list[str] = []
    logger.enable("spoe_sync")
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        tx = Transaction(engines, _samples())
        engines[0].close(timeout=1)
        tx.event("on-frontend-http-request")
        tx.group("first", "first-grp")
        tx.group("nosuch", "grp")
    finally:
        logger.remove(sink)
        logger.disable("spoe_sync")
    assert [(eid, kind, name) for eid, kind, name, _ in tx.failures] == [
        ("first", "event", "on-frontend-http-request"), ("first", "group", "first-grp")]
    assert all(isinstance(exc, EngineClosed) for *_, exc in tx.failures)
    # the second engine still ran (its message read a variable nobody set)
    assert len(tx.results) == 1 and tx.results[0].status == 0
    assert any("[first-agent] event on-frontend-http-request" in line for line in lines), lines
    assert any("send-spoe-group nosuch grp: no such engine" in line for line in lines), lines


def test_no_engine_still_gives_variables():
    tx = Transaction([], _samples())
    tx.event("on-frontend-http-request")
    tx.vars.set("txn.a", 1)
    assert tx.vars.get("txn.a") == 1 and tx.results == []


def test_the_proxy_follows_the_same_policy_for_a_closed_engine():
    # before: the proxy let EngineClosed out of send-spoe-group and aborted the connection
    from spoe_sync.proxy import TCPProxy
    from tests.kit import wait_until
    from tests.proxy.proxykit import CONF, Upstream, exchange, running

    with FakeAgent({"*": lambda m: []}) as agent, Upstream("echo") as up:
        engine = make_engine(CONF.format(name="iprep", processing="1s"), "iprep", agent.address)
        ended: list[dict] = []

        def close_engine(samples, vars):
            engine.close(timeout=0.5)  # the engine goes away mid-connection (a shutdown)

        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[engine], inspect_delay=1,
                         tcp_request=[close_engine, "content send-spoe-group iprep grp"],
                         on_connection=lambda s, v: ended.append(v.as_dict()))
        with running(proxy):
            assert exchange(proxy, b"ping") == b"ping"
            assert wait_until(lambda: ended)
    assert proxy.stats.aborted == 0


def _outcome(tx):
    return ([(r.kind, r.name, r.status, r.skipped, r.error, dict(r.vars_set)) for r in tx.results],
            tx.vars.as_dict(), [(eid, kind, name) for eid, kind, name, _ in tx.failures])


def test_events_with_their_messages_looked_up_equal_event_by_event(engines):
    # events() hands each engine's messages to the engine's _process, bypassing
    # process_event(): the same plan through process() one event at a time (the
    # general path, process_event included) must give the same results, variables
    # and failures; also for an event no engine has messages for and an engine closed
    plan = [(engines[0], "on-frontend-http-request"), (engines[1], "on-frontend-http-request"),
            (engines[0], "on-http-response")]
    fast, general = Transaction(engines, _samples()), Transaction(engines, _samples())
    fast.events(plan)
    for engine, event in plan:
        general.process(engine, "event", event)
    assert _outcome(fast) == _outcome(general)
    assert fast.vars.get("txn.second.saw") == 42 and len(fast.results) == 3
    engines[1].close(timeout=1)
    fast.events(plan)
    for engine, event in plan:
        general.process(engine, "event", event)
    assert _outcome(fast) == _outcome(general)
    assert [eid for eid, *_ in fast.failures] == ["second"]
