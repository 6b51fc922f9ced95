"""ACK actions and variables through real sockets (SPOE.txt §3.4 "Actions", §2.2
"option var-prefix", "force-set-var", "register-var-names", "set-on-error",
"set-process-time", "set-total-time"; docs/explanation/haproxy-behaviour.md §4, §5.2, §5.4)."""

from __future__ import annotations

from ipaddress import IPv4Address

import gevent

from spoe_sync.engine import VarLimits
from spoe_sync.engine.actions import DroppedVar
from spoe_sync.protocol import SetVar, UnsetVar, VarScope
from spoe_sync.testing import FakeAgent

from .enginekit import EVENT, make_engine, samples


def _actions(*actions):
    return {"m-first": lambda _m: list(actions)}


def test_set_var_in_every_scope_with_the_var_prefix():
    acts = _actions(SetVar(VarScope.SESS, "a", 1), SetVar(VarScope.TXN, "b", "two"),
                    SetVar(VarScope.REQ, "c", b"\x00\x01"), SetVar(VarScope.RES, "d", True),
                    SetVar(VarScope.TXN, "ip", IPv4Address("10.1.2.3")))
    with FakeAgent(acts) as agent, make_engine(agent.address) as engine:
        session = engine.new_session()
        stream = engine.new_stream(samples(), session)
        result = engine.process_event(stream, EVENT)
        # a res variable in the request phase: HAProxy 2.6 drops it (one req/res store)
        assert result.ok and result.dropped_vars == (
            DroppedVar("res.test.d", "scope-not-active", "set-var", 1),)
        assert dict(result.vars_set) == {"sess.test.a": 1, "txn.test.b": "two",
                                         "req.test.c": b"\x00\x01",
                                         "txn.test.ip": IPv4Address("10.1.2.3")}
        assert stream.vars.get("txn.test.b") == "two"
        assert session.get("sess.test.a") == 1
        # sess variables outlive the stream: the next stream of the session sees them
        assert engine.new_stream(samples(), session).vars.get("sess.test.a") == 1
        assert engine.new_stream(samples()).vars.get("sess.test.a") is None


def test_a_null_value_and_unset_var_remove_the_variable():
    calls = iter([[SetVar(VarScope.TXN, "x", 1), SetVar(VarScope.TXN, "y", 2)],
                  [SetVar(VarScope.TXN, "x", None), UnsetVar(VarScope.TXN, "y")]])
    with FakeAgent({"*": lambda _m: next(calls, [])}) as agent, \
            make_engine(agent.address, "option continue-on-error") as engine:
        stream = engine.new_stream(samples())
        assert engine.process_event(stream, EVENT).ok
        assert stream.vars.get("txn.test.x") == 1
        result = engine.send_group(stream, "grp")
        assert dict(result.vars_set) == {"txn.test.x": None, "txn.test.y": None}
        assert "txn.test.x" not in stream.vars and "txn.test.y" not in stream.vars


def test_integers_are_signed_64_bit():
    from spoe_sync.protocol.values import UInt32, UInt64
    acts = _actions(SetVar(VarScope.TXN, "max", UInt64((1 << 64) - 1)),
                    SetVar(VarScope.TXN, "u32", UInt32(4294967291)))
    with FakeAgent(acts) as agent, make_engine(agent.address) as engine:
        stream = engine.new_stream(samples())
        engine.process_event(stream, EVENT)
        assert stream.vars.get("txn.test.max") == -1
        assert stream.vars.get("txn.test.u32") == 4294967291


def test_dropped_names_are_reported_and_the_next_action_still_applies():
    acts = _actions(SetVar(VarScope.TXN, "b-ad", 1), SetVar(VarScope.TXN, "x" * 60, 2),
                    SetVar(VarScope.TXN, "cut\x00tail", 3), SetVar(VarScope.TXN, "good", 4))
    with FakeAgent(acts) as agent, make_engine(agent.address) as engine:
        stream = engine.new_stream(samples())
        result = engine.process_event(stream, EVENT)
        assert result.ok
        assert [(d.name, d.reason) for d in result.dropped_vars] == [
            ("txn.test.b-ad", "invalid-name"), ("txn.test." + "x" * 60, "name-too-long")]
        assert stream.vars.get("txn.test.cut") == 3
        assert stream.vars.get("txn.test.good") == 4


def test_proc_variables_need_registration_or_force_set_var():
    acts = _actions(SetVar(VarScope.PROC, "reg", 1), SetVar(VarScope.PROC, "known", 2),
                    SetVar(VarScope.PROC, "free", 3))
    with FakeAgent(acts) as agent:
        # `known` is read by var(proc.test.known) in the config; `reg` is registered
        with make_engine(agent.address, "register-var-names reg") as engine:
            stream = engine.new_stream(samples())
            result = engine.process_event(stream, EVENT)
            assert stream.vars.get("proc.test.reg") == 1
            assert stream.vars.get("proc.test.known") == 2
            assert stream.vars.get("proc.test.free") is None
            assert [(d.name, d.reason) for d in result.dropped_vars] == [
                ("proc.test.free", "proc-not-registered")]
            # proc is engine-wide: another stream reads it
            assert engine.new_stream(samples()).vars.get("proc.test.reg") == 1
        with make_engine(agent.address, "option force-set-var") as engine:
            stream = engine.new_stream(samples())
            assert engine.process_event(stream, EVENT).dropped_vars == ()
            assert stream.vars.get("proc.test.free") == 3


def test_the_per_stream_cap_stops_a_flooding_agent():
    flood = [SetVar(VarScope.TXN, f"v{i}", "x" * 10) for i in range(50)]
    with FakeAgent(_actions(*flood)) as agent, \
            make_engine(agent.address, "option set-process-time pt",
                        var_limits=VarLimits(max_vars=10, max_bytes=10_000)) as engine:
        stream = engine.new_stream(samples())
        result = engine.process_event(stream, EVENT)
        assert result.ok
        assert len(result.vars_set) == 10
        # reported once for the ACK, with the first name refused and a count
        assert result.dropped_vars == (DroppedVar("txn.test.v10", "too-many-vars", "set-var", 40),)
        # the engine's own variables are still set over the cap
        assert stream.vars.get("txn.test.pt") is not None


def test_set_process_time_and_set_total_time():
    with FakeAgent(delays=0.05) as agent, make_engine(
            agent.address, "option set-process-time pt", "option set-total-time tt") as engine:
        stream = engine.new_stream(samples())
        first = engine.process_event(stream, EVENT)
        assert stream.vars.get("txn.test.pt") == first.timings.process >= 50
        second = engine.send_group(stream, "grp")
        assert stream.vars.get("txn.test.pt") == second.timings.process
        assert stream.vars.get("txn.test.tt") == stream.total_ms == (
            first.timings.process + second.timings.process)


def test_set_on_error_holds_the_status_and_is_never_cleared():
    with FakeAgent(fault="close", fault_after=1, fault_connections=1) as agent, make_engine(
            agent.address, "option set-on-error err", "option set-process-time pt",
            "option continue-on-error") as engine:
        stream = engine.new_stream(samples())
        failed = engine.process_event(stream, EVENT)
        assert failed.status == 257
        assert stream.vars.get("txn.test.err") == 257
        assert stream.vars.get("txn.test.pt") == failed.timings.process
        gevent.sleep(0.3)  # the pool backs the failed server off (0.05 s .. 0.2 s here)
        assert engine.send_group(stream, "grp").ok
        assert stream.vars.get("txn.test.err") == 257


def test_nothing_set_when_nothing_was_sent():
    with FakeAgent() as agent, make_engine(
            agent.address, "option set-process-time pt", "option set-total-time tt") as engine:
        stream = engine.new_stream(samples())
        assert engine.process_event(stream, "on-http-response").skipped
        assert len(stream.vars) == 0


def test_req_vars_end_and_res_vars_start_with_the_response_phase():
    """HAProxy 2.6 keeps req.* and res.* in one store of one scope at a time (src/vars.c,
    stream.c): an agent's res variable set in the request phase is dropped, and req variables
    are gone once the response phase starts (Transaction.set_samples with a response)."""
    acts = _actions(SetVar(VarScope.REQ, "q", 1), SetVar(VarScope.RES, "r", 2))
    with FakeAgent(acts) as agent, make_engine(agent.address) as engine:
        stream = engine.new_stream(samples())
        first = engine.process_event(stream, EVENT)
        assert dict(first.vars_set) == {"req.test.q": 1}
        assert [d.name for d in first.dropped_vars] == ["res.test.r"]
        assert stream.vars.get("req.test.q") == 1 and stream.vars.get("res.test.r") is None
        stream.vars.start_response()
        assert stream.vars.get("req.test.q") is None
        second = engine.process_event(stream, EVENT)
        assert dict(second.vars_set) == {"res.test.r": 2}
        assert [d.name for d in second.dropped_vars] == ["req.test.q"]
        assert dict(stream.vars) == {"res.test.r": 2}
