"""Applying ACK actions to a stream's variables as HAProxy 2.6 does (SPOE.txt §3.4,
docs/explanation/haproxy-behaviour.md §4): "<scope>.<var-prefix>.<name>" in a 64-byte buffer,
names cut at NUL and limited to [A-Za-z0-9_.], NULL unsets, integers as signed 64-bit,
proc names only when they exist or with force-set-var, the per-stream caps, and every
dropped name reported (and debug-logged).  ACKs are decoded from wire bytes by the real
codec where the wire matters."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from loguru import logger

from spoe_sync.engine.actions import (
    MAX_VAR_NAME_BYTES,
    ActionReport,
    agent_value,
    apply_ack,
    apply_actions,
    spoe_var_name,
)
from spoe_sync.engine.vars import ProcVars, Session, VarLimits, Vars
from spoe_sync.protocol import (
    Ack,
    Int32,
    Int64,
    UInt32,
    UInt64,
    UnsetVar,
    VarScope,
    decode_frame,
)
from spoe_sync.protocol import SetVar as S
from tests.conformance.harness import frame, set_var_action, spop_string, varint

SESS, TXN, PROC, REQ, RES = VarScope.SESS, VarScope.TXN, VarScope.PROC, VarScope.REQ, VarScope.RES


def apply(*actions, vars=None, prefix="iprep", **kw):
    vars = vars if vars is not None else Vars()
    return vars, apply_actions(actions, vars, var_prefix=prefix, **kw)


@pytest.mark.parametrize(
    ("scope", "prefix", "name", "full"),
    [
        pytest.param(PROC, "iprep", "q", "proc.iprep.q", id="proc"),
        pytest.param(SESS, "iprep", "ip_score", "sess.iprep.ip_score", id="sess"),
        pytest.param(TXN, "my.pfx", "a.b", "txn.my.pfx.a.b", id="dotted"),
        pytest.param(REQ, "p", "x", "req.p.x", id="req"),
        pytest.param(RES, "p", "x", "res.p.x", id="res"),
        pytest.param(TXN, "p", "code\x00junk", "txn.p.code", id="cut-at-nul"),
        pytest.param(TXN, "p", "\x00", "txn.p.", id="only-nul"),
    ],
)
def test_spoe_var_name(scope, prefix, name, full):
    assert spoe_var_name(scope, prefix, name) == full


@pytest.mark.parametrize(
    ("name", "stored_as", "reason"),
    [
        pytest.param("ip_score", "sess.iprep.ip_score", None, id="plain"),
        pytest.param("x" * (MAX_VAR_NAME_BYTES - len("sess.iprep.")), "sess.iprep." + "x" * 52, None,
                     id="exactly-63-bytes"),
        pytest.param("x" * 53, "sess.iprep." + "x" * 53, "name-too-long", id="64-bytes"),
        pytest.param("ok\x00" + "x" * 80, "sess.iprep.ok", None, id="nul-cut-before-length-check"),
        pytest.param("b-ad", "sess.iprep.b-ad", "invalid-name", id="dash"),
        pytest.param("caf\u00e9", "sess.iprep.caf\u00e9", "invalid-name", id="non-ascii"),
        pytest.param("", "sess.iprep.", None, id="empty-name-leaves-trailing-dot"),
    ],
)
def test_name_rules(name, stored_as, reason):
    vars, report = apply(S(SESS, name, 1))
    if reason is None:
        assert vars[stored_as] == 1
        assert report.vars_set == {stored_as: 1} and report.dropped == ()
    else:
        assert stored_as not in vars and len(vars.session) == 0
        assert [(d.name, d.reason, d.action) for d in report.dropped] == [(stored_as, reason, "set-var")]


def test_a_dropped_action_does_not_stop_the_next():
    vars, report = apply(S(TXN, "b-ad", 1), S(TXN, "good", 2), UnsetVar(TXN, "b-ad"))
    assert vars.as_dict() == {"txn.iprep.good": 2}
    assert [str(d) for d in report.dropped] == ["txn.iprep.b-ad (invalid-name)",
                                                "txn.iprep.b-ad (invalid-name)"]
    assert [d.action for d in report.dropped] == ["set-var", "unset-var"]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param(Int32(4294967291), 4294967291, id="int32-32bit-pattern-not-sign-extended"),
        pytest.param(Int64(-5), -5, id="int64-negative"),
        pytest.param(UInt64((1 << 64) - 1), -1, id="uint64-max-is-minus-1"),
        pytest.param(UInt64(1 << 63), -(1 << 63), id="uint64-high-bit"),
        pytest.param(UInt32(42), 42, id="uint32"),
        pytest.param(87, 87, id="plain-int"),
        pytest.param(True, True, id="bool-true"),
        pytest.param(False, False, id="bool-false"),
        pytest.param("text", "text", id="string"),
        pytest.param(b"\x00bin", b"\x00bin", id="binary"),
        pytest.param(IPv4Address("192.0.2.1"), IPv4Address("192.0.2.1"), id="ipv4"),
        pytest.param(IPv6Address("2001:db8::2"), IPv6Address("2001:db8::2"), id="ipv6"),
    ],
)
def test_value_conversion(value, stored):
    assert agent_value(value) == stored
    vars, report = apply(S(TXN, "v", value))
    got = vars["txn.iprep.v"]
    assert got == stored and type(got) is type(stored)
    assert report.vars_set["txn.iprep.v"] == stored


@pytest.mark.parametrize(
    ("typed_data", "stored"),
    [
        pytest.param(b"\x02" + varint(4294967291), 4294967291, id="int32-as-32bit-pattern"),
        pytest.param(b"\x02" + varint(-5), -5, id="int32-as-64bit-pattern"),
        pytest.param(b"\x05" + varint((1 << 64) - 1), -1, id="uint64-max"),
        pytest.param(b"\x03" + varint(300), 300, id="uint32"),
        pytest.param(b"\x11", True, id="bool-true"),
        pytest.param(b"\x01", False, id="bool-false"),
        pytest.param(b"\x08" + spop_string("ok"), "ok", id="string"),
        pytest.param(b"\x09" + spop_string(b"\xff\x00"), b"\xff\x00", id="binary"),
        pytest.param(b"\x06\xc0\x00\x02\x07", IPv4Address("192.0.2.7"), id="ipv4"),
    ],
)
def test_wire_values_from_a_decoded_ack(typed_data, stored):
    ack = decode_frame(frame(103, set_var_action(1, "v", typed_data), 1, 1))
    vars = Vars()
    apply_ack(ack, vars, var_prefix="iprep")
    got = vars["sess.iprep.v"]
    assert got == stored and type(got) is type(stored)


def test_null_value_unsets():
    vars = Vars()
    vars.set("sess.iprep.score", 5)
    ack = decode_frame(frame(103, set_var_action(1, "score", b"\x00"), 1, 1))
    report = apply_ack(ack, vars, var_prefix="iprep")
    assert "sess.iprep.score" not in vars
    assert dict(report.vars_set) == {"sess.iprep.score": None}


def test_unset_var_in_every_scope():
    proc = ProcVars()
    vars = Vars(Session(), proc)
    for scope in ("proc", "sess", "txn", "req"):
        vars.set(f"{scope}.iprep.x", 1)
    _, report = apply(*(UnsetVar(s, "x") for s in (PROC, SESS, TXN, REQ)), vars=vars)
    assert list(vars) == []
    assert report.dropped == () and set(report.vars_set.values()) == {None}
    vars.start_response()  # res.* only exists from the response phase on (HAProxy 2.6)
    vars.set("res.iprep.x", 1)
    _, report = apply(UnsetVar(RES, "x"), vars=vars)
    assert list(vars) == [] and report.dropped == ()


@pytest.mark.parametrize(
    ("registered", "preset", "force", "allowed"),
    [
        pytest.param((), False, False, False, id="unregistered-dropped"),
        pytest.param(("proc.iprep.q",), False, False, True, id="register-var-names"),
        pytest.param(("proc.other.q",), False, False, False, id="registered-under-other-prefix"),
        pytest.param((), True, False, True, id="already-set"),
        pytest.param((), False, True, True, id="force-set-var"),
    ],
)
def test_proc_scope_needs_an_existing_name(registered, preset, force, allowed):
    proc = ProcVars(registered)
    if preset:
        proc.set("proc.iprep.q", 0)
    _, report = apply(S(PROC, "q", 9), vars=Vars(proc=proc), force_set_var=force)
    if allowed:
        assert proc.get("proc.iprep.q") == 9 and report.dropped == ()
    else:
        assert proc.get("proc.iprep.q") is None
        assert [(d.name, d.reason) for d in report.dropped] == [("proc.iprep.q", "proc-not-registered")]


@pytest.mark.parametrize(
    ("scope", "name"),
    [pytest.param(s, n, id=n) for s, n in ((SESS, "sess"), (TXN, "txn"), (REQ, "req"), (RES, "res"))],
)
def test_other_scopes_are_created_freely(scope, name):
    vars = Vars()
    if scope == RES:
        vars.start_response()  # res.* only exists from the response phase on (HAProxy 2.6)
    vars, report = apply(S(scope, "dyn_claim_7", "v"), vars=vars)
    assert vars[f"{name}.iprep.dyn_claim_7"] == "v" and report.dropped == ()


def test_caps_drop_with_reason_and_later_small_actions_still_apply():
    vars = Vars(limits=VarLimits(max_vars=2, max_bytes=100))
    _, report = apply(S(TXN, "a", 1), S(TXN, "big", "x" * 200), S(TXN, "b", 2), S(TXN, "c", 3),
                      S(TXN, "a", 4), vars=vars)
    assert vars.as_dict() == {"txn.iprep.a": 4, "txn.iprep.b": 2}
    assert [(d.name, d.reason) for d in report.dropped] == [
        ("txn.iprep.big", "too-many-bytes"), ("txn.iprep.c", "too-many-vars")]


def test_a_flood_cannot_exceed_the_caps():
    vars = Vars(limits=VarLimits(max_vars=50, max_bytes=4096))
    actions = [S(TXN, f"v{i}", "y" * 100) for i in range(1000)]
    _, report = apply(*actions, vars=vars, force_set_var=True)
    assert len(vars) <= 50 and vars.nbytes <= 4096
    assert len(report.vars_set) + report.nb_dropped == 1000


def test_vars_set_keeps_the_order_of_the_last_change():
    _, report = apply(S(TXN, "a", 1), S(TXN, "b", 2), S(TXN, "a", 3), UnsetVar(TXN, "b"))
    assert list(report.vars_set.items()) == [("txn.iprep.a", 3), ("txn.iprep.b", None)]
    with pytest.raises(TypeError):
        report.vars_set["x"] = 1  # type: ignore[index]


def test_truncated_ack_applies_the_actions_before_the_bad_one():
    payload = (set_var_action(1, "a", b"\x03" + varint(1))
               + b"\x02\x02\x02" + spop_string("gone")      # unset-var, fine
               + b"\x07\x03\x02" + spop_string("x") + b"\x00"  # unknown action type: stop
               + set_var_action(1, "never", b"\x03" + varint(2)))
    ack = decode_frame(frame(103, payload, 1, 1))
    assert ack.truncated
    vars = Vars()
    vars.set("txn.iprep.gone", 1)
    report = apply_ack(ack, vars, var_prefix="iprep")
    assert report.truncated
    assert vars.as_dict() == {"sess.iprep.a": 1}
    assert "sess.iprep.never" not in vars


def test_whole_ack_is_not_truncated():
    report = apply_ack(Ack(1, 1, (S(TXN, "a", 1),)), Vars(), var_prefix="p")
    assert report == ActionReport(report.vars_set, (), False) and dict(report.vars_set) == {"txn.p.a": 1}


@pytest.fixture
def debug_records():
    records: list = []
    sink_id = logger.add(records.append, level="DEBUG", format="{message}")
    logger.enable("spoe_sync")
    try:
        yield records
    finally:
        logger.disable("spoe_sync")
        logger.remove(sink_id)


def test_dropped_names_and_truncation_go_to_the_debug_log(debug_records):
    apply_actions([S(TXN, "b-ad", 1), S(PROC, "q", 1)], Vars(), var_prefix="iprep", truncated=True,
                  agent="iprep-agent")
    texts = [r.record["message"] for r in debug_records]
    assert texts == [  # one line per ACK, however many actions it drops
        "SPOE: [iprep-agent] ACK: 2 action(s) dropped: set-var 'txn.iprep.b-ad' (invalid-name), "
        "set-var 'proc.iprep.q' (proc-not-registered); action list malformed after 2 action(s); "
        "the rest was ignored",
    ]
    assert {r.record["level"].name for r in debug_records} == {"DEBUG"}
    assert all(r.record["name"].startswith("spoe_sync.") for r in debug_records)


def test_nothing_is_logged_when_everything_applied(debug_records):
    apply_actions([S(TXN, "ok", 1)], Vars(), var_prefix="iprep")
    assert debug_records == []


def test_the_checked_names_cache_stays_bounded():
    from spoe_sync.engine import actions

    vars = Vars(limits=VarLimits(max_vars=10, max_bytes=1 << 20))
    apply_actions([S(TXN, f"flood{i}", 1) for i in range(10_000)], vars, var_prefix="cachetest")
    assert 0 < len(actions._NAMES["cachetest"][TXN]) <= 4096
    # a name checked once is still judged the same from the cache
    _, report = apply(S(TXN, "b-ad", 1), S(TXN, "b-ad", 2))
    assert [(d.name, d.reason, d.count) for d in report.dropped] == [("txn.iprep.b-ad", "invalid-name", 2)]


# --------------------------------------------------------------------------- repeated action lists

def _twice(ack, make_vars, **kw):
    """apply_ack of the same decoded tuple twice (the second time from its plan),
    and apply_actions of it, on fresh stores: the three must agree."""
    out = []
    for _ in range(2):
        vars = make_vars()
        journal: list = []
        report = apply_ack(ack, vars, journal=journal, **kw)
        out.append((report, vars.as_dict(), len(journal)))
    vars = make_vars()
    journal = []
    report = apply_actions(ack.actions, vars, journal=journal, **kw)
    out.append((report, vars.as_dict(), len(journal)))
    return out


def test_a_repeated_action_list_is_applied_from_its_plan():
    from spoe_sync.engine import actions

    ack = Ack(1, 1, (S(TXN, "score", 10), S(SESS, "verdict", "clean"), UnsetVar(TXN, "gone"),
                     S(REQ, "score", Int32(-1)), S(TXN, "score", UInt64(2**64 - 1))))
    first, second, reference = _twice(ack, Vars, var_prefix="plan")
    assert first == second == reference
    assert dict(second[0].vars_set) == {"sess.plan.verdict": "clean", "txn.plan.gone": None,
                                        "req.plan.score": -1, "txn.plan.score": -1}
    assert actions._PLANS[id(ack.actions)][2][1] is second[0]  # the report, shared


def test_a_plan_still_checks_the_caps():
    ack = Ack(1, 1, (S(TXN, "a", 1), S(TXN, "b", "x" * 50), S(TXN, "c", 3)))
    full = VarLimits(max_vars=2, max_bytes=60)
    first, second, reference = _twice(ack, lambda: Vars(limits=full), var_prefix="plancap")
    assert first == second == reference
    report = second[0]
    assert [(d.name, d.reason) for d in report.dropped] == [("txn.plancap.b", "too-many-bytes")]
    assert second[1] == {"txn.plancap.a": 1, "txn.plancap.c": 3}
    vars = Vars(limits=VarLimits(max_vars=1, max_bytes=1000))
    report = apply_ack(ack, vars, var_prefix="plancap")
    assert [(d.name, d.reason, d.count) for d in report.dropped] == [
        ("txn.plancap.b", "too-many-vars", 2)]


@pytest.mark.parametrize("action", [
    pytest.param(S(PROC, "q", 1), id="proc"),
    pytest.param(S(TXN, "b-ad", 1), id="invalid-name"),
    pytest.param(S(TXN, "x" * 60, 1), id="name-too-long"),
    pytest.param(S(TXN, "v", 1.5), id="bad-value"),
])
def test_a_list_without_a_plan_is_judged_every_time(action):
    ack = Ack(1, 1, (S(TXN, "ok", 1), action))
    first, second, reference = _twice(ack, Vars, var_prefix="noplan")
    assert first == second == reference and len(first[0].dropped) == 1


def test_a_plan_is_undone_like_any_application():
    from spoe_sync.engine.actions import undo

    ack = Ack(1, 1, (S(TXN, "a", 1), UnsetVar(TXN, "b")))
    for _ in range(3):
        vars = Vars()
        vars.set("txn.planundo.b", 2)
        journal: list = []
        apply_ack(ack, vars, var_prefix="planundo", journal=journal)
        assert vars.as_dict() == {"txn.planundo.a": 1}
        undo(journal)
        assert vars.as_dict() == {"txn.planundo.b": 2}


def _applied(ack, vars, how, **kw):
    """Everything applying ``ack`` leaves: report, variables in their order,
    the store's accounting, the journal, and what undo() leaves."""
    from spoe_sync.engine.actions import undo

    journal: list = []
    report = how(ack, vars, journal, **kw)
    from spoe_sync.engine.actions import _FILLED

    # A new stream's first variables are one entry (_FILLED) of one per variable.
    entries = [(store, label, local, None) for store, scope, name, old in journal
               if scope is _FILLED for label, local in name] or journal
    state = (report, [(k, type(v), v) for k, v in vars.items()], vars._count, vars._bytes,
             # entries that put back the value stored (no-ops) may be left out
             [(store is vars, scope, name, old) for store, scope, name, old in entries
              if old is None or store._data[scope].get(name) is not old])
    undo(journal)
    return state, list(vars.items()), vars._count, vars._bytes


def _by_plan(ack, vars, journal, **kw):
    return apply_ack(ack, vars, journal=journal, **kw)


def _by_actions(ack, vars, journal, **kw):
    return apply_actions(ack.actions, vars, journal=journal, **kw)


@pytest.mark.parametrize("actions", [
    pytest.param((S(TXN, "score", 87), S(TXN, "verdict", "clean")), id="txn"),
    pytest.param((S(REQ, "a", 1), S(TXN, "b", b"x"), S(REQ, "c", IPv4Address("192.0.2.1"))),
                 id="req-and-txn"),
    pytest.param((S(TXN, "a", 1), S(TXN, "a", 2)), id="a-name-twice"),
    pytest.param((S(TXN, "a", 1), UnsetVar(TXN, "b")), id="an-unset"),
    pytest.param((S(TXN, "a", 1), S(SESS, "b", 2)), id="sess"),
    pytest.param((S(TXN, "a", 1), S(RES, "b", 2)), id="res-closed"),
])
@pytest.mark.parametrize("caps", ["default", "vars-exact", "vars-over", "bytes-exact",
                                  "bytes-over"])
def test_a_new_streams_first_ack_by_its_plan_equals_applying_each_action(actions, caps):
    """A plan of distinct txn/req set-vars is stored in one step on a stream
    without variables (Vars._fill_new): the same report, variables, order,
    accounting, journal and undo as the step-by-step application, at the caps
    and one past them; and on a stream that already holds a variable, or
    these very values (Vars._holds: nothing to change), or equal ones."""
    ack = Ack(1, 1, actions)
    kw = {"var_prefix": "fresh"}
    whole = Vars()
    apply_actions(actions, whole, **kw)
    count, nbytes = whole._count, whole._bytes  # what all of them take
    limits = {"default": None,
              "vars-exact": VarLimits(max_vars=count, max_bytes=1000),
              "vars-over": VarLimits(max_vars=count - 1, max_bytes=1000),
              "bytes-exact": VarLimits(max_vars=10, max_bytes=nbytes),
              "bytes-over": VarLimits(max_vars=10, max_bytes=nbytes - 1)}[caps]
    apply_ack(ack, Vars(limits=limits), **kw)  # the first time makes no plan
    apply_ack(ack, Vars(limits=limits), **kw)
    from spoe_sync.engine import actions as module
    fresh = module._PLANS[id(ack.actions)][2][2]
    distinct = len({(a.scope, a.name) for a in actions}) == len(actions)
    assert (fresh is not None) == (distinct and all(
        type(a) is S and a.scope in (TXN, REQ) for a in actions))
    def other(vars):
        vars._put("txn", "other", 1, enforce=False)  # past the caps too

    def other_req(vars):
        vars._put("req", "other", 1, enforce=False)

    def same(vars):  # a long-lived stream answered the same before
        apply_actions(actions, vars, **kw)

    def same_over_bytes(vars):
        same(vars)
        vars._put("txn", "big", "x" * 2000, enforce=False)

    def equal_not_same(vars):  # equal values, other objects (True == 1)
        def copy(value):
            if type(value) is int and value == 1:
                return True
            if type(value) in (str, bytes):
                return type(value)(value[:1]) + value[1:]
            if type(value) is IPv4Address:
                return IPv4Address(str(value))
            return value
        apply_actions(tuple(S(a.scope, a.name, copy(a.value)) if type(a) is S else a
                            for a in actions), vars, **kw)

    for setup in (None, other, other_req, same, same_over_bytes, equal_not_same):
        got = []
        for how in (_by_plan, _by_actions):
            vars = Vars(limits=limits)
            if setup is not None:
                setup(vars)
            got.append(_applied(ack, vars, how, **kw))
        assert got[0] == got[1], setup
