"""The variable store: full HAProxy names in the proc/sess/txn/req/res scopes, their
lifetimes (docs/explanation/agents.md §5), value normalization, per-store caps, and reading
them back with ``var()`` (SPOE.txt §2.2 "option var-prefix", "register-var-names")."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from spoe_sync.engine.vars import (
    REASON_SCOPE_CLOSED,
    ProcVars,
    Session,
    VarLimits,
    Vars,
    check_var_name,
    split_var_name,
    var_size,
)
from spoe_sync.errors import SpoeError, VariableError
from spoe_sync.protocol import Int32, Int64, UInt32, UInt64
from spoe_sync.rules import EvalContext, StaticSamples, parse_sample


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("txn.iprep.score", None, id="txn-prefixed"),
        pytest.param("sess.a_b.C9", None, id="underscore-digits"),
        pytest.param("proc.x", None, id="proc"),
        pytest.param("req.x", None, id="req"),
        pytest.param("res.x", None, id="res"),
        pytest.param("txn.iprep.", None, id="trailing-dot-is-haproxy-valid"),
        pytest.param("txn.", "invalid-name", id="empty-name"),
        pytest.param("txn.b-ad", "invalid-name", id="dash"),
        pytest.param("txn.x y", "invalid-name", id="space"),
        pytest.param("txn.caf\u00e9", "invalid-name", id="non-ascii-letter"),
        pytest.param("txn.\u0663", "invalid-name", id="unicode-digit"),
        pytest.param("txn", "unknown-scope", id="no-dot"),
        pytest.param("check.x", "unknown-scope", id="check-scope-not-spoe"),
        pytest.param("TXN.x", "unknown-scope", id="scope-is-case-sensitive"),
        pytest.param("", "unknown-scope", id="empty"),
    ],
)
def test_check_var_name(name, reason):
    assert check_var_name(name) == reason
    if reason is None:
        assert split_var_name(name) == tuple(name.split(".", 1))
    else:
        with pytest.raises(VariableError) as info:
            split_var_name(name)
        assert info.value.reason == reason
        assert isinstance(info.value, SpoeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param(True, True, id="bool"),
        pytest.param(0, 0, id="int-zero"),
        pytest.param(-(1 << 63), -(1 << 63), id="int64-min"),
        pytest.param(UInt32(7), 7, id="uint32-becomes-int"),
        pytest.param(Int32(-5), -5, id="int32-becomes-int"),
        pytest.param(Int64(9), 9, id="int64-becomes-int"),
        pytest.param(UInt64(12), 12, id="uint64-becomes-int"),
        pytest.param("caf\u00e9", "caf\u00e9", id="str"),
        pytest.param(b"\x00\xff", b"\x00\xff", id="bytes"),
        pytest.param(bytearray(b"ab"), b"ab", id="bytearray-becomes-bytes"),
        pytest.param(memoryview(b"cd"), b"cd", id="memoryview-becomes-bytes"),
        pytest.param(IPv4Address("192.0.2.7"), IPv4Address("192.0.2.7"), id="ipv4"),
        pytest.param(IPv6Address("2001:db8::1"), IPv6Address("2001:db8::1"), id="ipv6"),
    ],
)
def test_values_are_stored_as_plain_python(value, stored):
    vars = Vars()
    vars.set("txn.t.v", value)
    got = vars["txn.t.v"]
    assert got == stored
    assert type(got) is type(stored)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1 << 63, id="int-too-big"),
        pytest.param(-(1 << 63) - 1, id="int-too-small"),
        pytest.param(1.5, id="float"),
        pytest.param(["x"], id="list"),
    ],
)
def test_unstorable_values_raise(value):
    vars = Vars()
    with pytest.raises(VariableError) as info:
        vars.set("txn.t.v", value)
    assert info.value.reason == "bad-value"
    assert "txn.t.v" not in vars
    assert vars.try_set("txn.t.v", value) == "bad-value"


def test_get_getitem_contains_and_none_unsets():
    vars = Vars()
    assert vars.get("txn.a") is None
    assert vars.get("txn.a", 3) == 3
    assert vars.get("bogus") is None
    with pytest.raises(KeyError):
        vars["txn.a"]
    vars.set("txn.a", 0)
    assert "txn.a" in vars and vars["txn.a"] == 0 and vars.get("txn.a", 3) == 0
    vars.set("txn.a", None)
    assert "txn.a" not in vars
    assert vars.unset("txn.a") is False
    vars.set("txn.a", "x")
    assert vars.unset("txn.a") is True and len(vars) == 0


def test_iteration_goes_scope_by_scope():
    proc = ProcVars()
    vars = Vars(Session(), proc)
    for name in ("txn.t", "req.q", "sess.s", "proc.p"):
        vars.set(name, 1)
    assert list(vars) == ["proc.p", "sess.s", "txn.t", "req.q"]
    vars.start_response()  # req.* gone, res.* open (HAProxy 2.6: one req/res store)
    vars.set("res.r", 1)
    assert list(vars) == ["proc.p", "sess.s", "txn.t", "res.r"]
    assert len(vars) == 4 and repr(vars) == "<Vars 2 txn/req/res, 1 sess, 1 proc>"
    assert vars.as_dict() == dict.fromkeys(["proc.p", "sess.s", "txn.t", "res.r"], 1)


def test_sess_vars_live_on_the_session_and_txn_on_the_stream():
    session, proc = Session(), ProcVars()
    first, second = Vars(session, proc), Vars(session, proc)
    first.set("sess.iprep.score", 87)
    first.set("txn.iprep.score", 1)
    first.set("proc.iprep.hits", 2)
    assert second.get("sess.iprep.score") == 87
    assert second.get("txn.iprep.score") is None
    assert second.get("proc.iprep.hits") == 2
    assert session.get("sess.iprep.score") == 87 and proc.get("proc.iprep.hits") == 2
    assert Vars().get("sess.iprep.score") is None  # a stream without session gets its own


def test_scope_view_is_read_only_and_live():
    vars = Vars()
    view = vars.scope("sess")
    vars.set("sess.iprep.score", 87)
    assert dict(view) == {"iprep.score": 87}
    with pytest.raises(TypeError):
        view["iprep.score"] = 1  # type: ignore[index]
    with pytest.raises(VariableError):
        vars.scope("check")


def test_clear_one_direction():
    vars = Vars()
    vars.set("req.a", 1)
    vars.set("req.b", 2)
    vars.set("txn.c", 3)
    vars.clear("req")
    assert list(vars) == ["txn.c"]
    assert vars.nbytes == var_size("c", 3)
    with pytest.raises(VariableError):
        vars.clear("sess")


@pytest.mark.parametrize(
    ("name", "value", "size"),
    [
        pytest.param("ab", 5, 2 + 8, id="int"),
        pytest.param("ab", True, 2 + 1, id="bool"),
        pytest.param("ab", "\u00e9", 2 + 2, id="str-utf8-bytes"),
        pytest.param("ab", b"xyz", 2 + 3, id="bytes"),
        pytest.param("ab", IPv4Address("10.0.0.1"), 2 + 4, id="ipv4"),
        pytest.param("ab", IPv6Address("::1"), 2 + 16, id="ipv6"),
    ],
)
def test_var_size(name, value, size):
    assert var_size(name, value) == size


@pytest.mark.parametrize(
    ("limits", "writes", "refused_at", "reason"),
    [
        pytest.param(VarLimits(max_vars=2), [("txn.a", 1), ("txn.b", 1), ("txn.c", 1)], 2,
                     "too-many-vars", id="count"),
        pytest.param(VarLimits(max_vars=2), [("txn.a", 1), ("req.b", 1), ("req.c", 1)], 2,
                     "too-many-vars", id="count-spans-txn-req"),
        pytest.param(VarLimits(max_bytes=20), [("txn.a", "x" * 10), ("txn.b", "y" * 10)], 1,
                     "too-many-bytes", id="bytes"),
        pytest.param(VarLimits(max_vars=1), [("txn.a", 1), ("txn.a", 2), ("txn.a", "abc")], None,
                     None, id="replacing-is-not-a-new-var"),
        pytest.param(VarLimits(max_bytes=11), [("txn.a", "x" * 10), ("txn.a", "x" * 11)], 1,
                     "too-many-bytes", id="growing-a-var"),
        pytest.param(VarLimits(max_vars=1), [("txn.a", 1), ("txn.a", None), ("txn.b", 1)], None,
                     None, id="unset-frees-room"),
    ],
)
def test_stream_caps(limits, writes, refused_at, reason):
    vars = Vars(limits=limits)
    for i, (name, value) in enumerate(writes):
        if i == refused_at:
            before = vars.as_dict()
            with pytest.raises(VariableError) as info:
                vars.set(name, value)
            assert info.value.reason == reason and info.value.name == name
            assert vars.as_dict() == before
            assert vars.try_set(name, value) == reason
            assert vars.try_set(name, value, enforce_limits=False) is None
            return
        vars.set(name, value)
    assert refused_at is None
    assert vars.nbytes == sum(var_size(n.split(".", 1)[1], v) for n, v in vars.items())


def test_session_and_proc_have_their_own_caps():
    session = Session(limits=VarLimits(max_vars=1))
    proc = ProcVars(limits=VarLimits(max_vars=1))
    vars = Vars(session, proc, limits=VarLimits(max_vars=100))
    vars.set("sess.a", 1)
    vars.set("proc.a", 1)
    for name in ("sess.b", "proc.b"):
        with pytest.raises(VariableError) as info:
            vars.set(name, 1)
        assert info.value.reason == "too-many-vars"
    vars.set("txn.b", 1)


def test_proc_registration_survives_unset():
    proc = ProcVars(["proc.iprep.q"])
    assert proc.registered == frozenset({"proc.iprep.q"})
    assert proc.exists("proc.iprep.q") and proc.get("proc.iprep.q") is None
    assert not proc.exists("proc.iprep.other")
    proc.set("proc.iprep.other", 1)
    assert proc.exists("proc.iprep.other")
    proc.unset("proc.iprep.other")
    assert not proc.exists("proc.iprep.other")
    proc.set("proc.iprep.q", 1)
    proc.unset("proc.iprep.q")
    assert proc.exists("proc.iprep.q")  # permanent, as HAProxy's config-created proc vars
    with pytest.raises(VariableError):
        proc.register("txn.iprep.q")
    with pytest.raises(VariableError):
        Session().set("txn.x", 1)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param("var(txn.iprep.score)", 87, id="txn"),
        pytest.param("var(sess.iprep.user)", "bob", id="sess"),
        pytest.param("var(proc.iprep.hits)", 3, id="proc"),
        pytest.param("var(txn.iprep.none)", None, id="unset-is-null"),
    ],
)
def test_rules_layer_reads_vars_through_varlookup(expr, expected):
    vars = Vars()
    vars.set("txn.iprep.score", 87)
    vars.set("sess.iprep.user", "bob")
    vars.set("proc.iprep.hits", 3)
    assert parse_sample(expr).evaluate(EvalContext(StaticSamples({}), vars)) == expected


def test_limits_validate():
    with pytest.raises(ValueError):
        VarLimits(max_vars=-1)


@pytest.mark.parametrize("name", [
    pytest.param("nonsense", id="no-scope"),
    pytest.param("bogus.x", id="unknown-scope"),
    pytest.param("txn.", id="empty-name"),
    pytest.param("txn.b-ad", id="bad-character"),
    pytest.param("", id="empty"),
])
def test_reads_of_a_bad_name_are_absent_and_writes_raise(name):
    """HAProxy's var() of such a name is absent: get() gives the default, ``in``
    is False, [] a KeyError; set() and unset() raise VariableError (in HAProxy a
    configuration error)."""
    for store in (Vars(), Session(), ProcVars()):
        assert store.get(name) is None
        assert store.get(name, 7) == 7
    stream = Vars()
    assert name not in stream
    with pytest.raises(KeyError):
        stream[name]
    with pytest.raises(VariableError) as err:
        stream.unset(name)
    assert err.value.reason in ("invalid-name", "unknown-scope")
    with pytest.raises(VariableError):
        stream.set(name, 1)
    assert len(stream) == 0


@pytest.mark.parametrize("name", [
    pytest.param(None, id="none"),
    pytest.param(42, id="int"),
    pytest.param(b"txn.x", id="bytes"),
])
def test_a_name_that_is_not_a_str_is_a_type_error_everywhere(name):
    stream = Vars()
    stream.set("txn.x", 1)
    calls = [lambda: stream.get(name), lambda: stream.get(name, 0), lambda: stream[name],
             lambda: stream.set(name, 1), lambda: stream.unset(name),
             lambda: Session().get(name), lambda: ProcVars().get(name),
             lambda: Session().set(name, 1)]
    for call in calls:
        with pytest.raises(TypeError, match="a variable name is a str"):
            call()
    assert name not in stream  # membership of a non-name is simply False
    assert stream.try_set(name, 1) == "invalid-name"  # the non-raising API


# --------------------------------------------------------------------------- Mapping


def _filled() -> Vars:
    vars = Vars(Session(), ProcVars(["proc.app.known"]))
    vars.set("proc.app.known", 1)
    vars.set("sess.app.user", "bob")
    vars.set("txn.app.score", 87)
    vars.start_response()
    vars.set("res.app.ok", True)
    return vars


def test_vars_is_a_read_only_mapping_of_every_scope():
    from collections.abc import Mapping, MutableMapping

    vars = _filled()
    assert isinstance(vars, Mapping) and not isinstance(vars, MutableMapping)
    expected = {"proc.app.known": 1, "sess.app.user": "bob", "txn.app.score": 87, "res.app.ok": True}
    assert dict(vars) == expected  # raised TypeError before Vars was a Mapping
    assert list(vars.keys()) == list(expected) and list(vars.values()) == list(expected.values())
    assert ("txn.app.score", 87) in vars.items() and "sess.app.user" in vars.keys()
    assert len(vars) == len(vars.keys()) == 4
    with pytest.raises(TypeError):
        vars["txn.app.score"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        del vars["txn.app.score"]  # type: ignore[attr-defined]


def test_the_mapping_views_are_live():
    vars = _filled()
    keys = vars.keys()
    vars.set("res.app.late", b"x")
    vars.unset("sess.app.user")
    assert "res.app.late" in keys and "sess.app.user" not in keys
    assert dict(vars)["res.app.late"] == b"x"


def test_vars_compare_and_hash_by_identity():
    a, b = _filled(), _filled()
    assert a != b and a == a and dict(a) == dict(b)
    assert len({a, b}) == 2  # still usable as a dict key or in a set


def test_stores_made_empty_share_nothing_and_their_views_stay_live():
    # A store starts with a shared read-only bag per scope (one dict per
    # request instead of one per scope): its first variable, or its first
    # view, gets it a dict of its own.
    first, second = Vars(), Vars()
    txn_view, sess_view = first.scope("txn"), first.scope("sess")
    first.set("txn.a.x", 1)
    first.set("sess.a.y", 2)
    second.set("req.a.z", 3)
    assert dict(txn_view) == {"a.x": 1} and dict(sess_view) == {"a.y": 2}
    assert dict(second) == {"req.a.z": 3} and dict(first) == {"sess.a.y": 2, "txn.a.x": 1}
    assert dict(Vars()) == {} and len(Vars()) == 0
    proc = ProcVars(["proc.a.reg"])
    assert proc.exists("proc.a.reg") and not proc.exists("proc.a.other")
    proc.set("proc.a.other", 4)
    assert ProcVars().get("proc.a.other") is None
    first.unset("txn.a.x")
    first.clear("res")
    assert dict(txn_view) == {} and Vars().scope("res") == {}


def test_a_store_without_session_makes_its_private_one_when_first_used():
    limits = VarLimits(max_vars=3, max_bytes=1000)
    first, second = Vars(limits=limits), Vars(limits=limits)
    assert len(first) == 0 and first.get("sess.a.x") is None
    first.set("sess.a.x", 1)
    assert first.session is first.session and first.session is not second.session
    assert first.session.limits is limits and dict(first) == {"sess.a.x": 1}
    assert dict(second) == {} and len(first) == 1


# --------------------------------------------------------------------------- req/res phases


def test_req_and_res_share_one_store_of_one_scope_at_a_time():
    """HAProxy 2.6 (src/vars.c get_vars(), stream.c): req.* until the response phase, then the
    store is emptied and holds res.*; a write to the other scope fails, a read finds nothing."""
    vars = Vars()
    vars.set("req.a", 1)
    with pytest.raises(VariableError) as info:
        vars.set("res.b", 2)  # a res variable in the request phase: refused
    assert info.value.reason == REASON_SCOPE_CLOSED
    assert vars.try_set("res.b", 2) == REASON_SCOPE_CLOSED
    assert vars.get("res.b") is None and vars.get("req.a") == 1
    vars.start_response()
    assert vars.get("req.a") is None and "req.a" not in vars and vars.nbytes == 0
    assert vars.try_set("req.a", 1) == REASON_SCOPE_CLOSED
    vars.set("res.b", 2)
    vars.start_response()  # idempotent: res.* stays
    assert dict(vars) == {"res.b": 2}


def test_new_streams_share_one_read_only_scope_table_until_they_change_it():
    # Memory (issue 15, target 4): a waiting stream holds no variable yet, so its
    # Vars keeps the shared table; every change of a scope's bag copies it first.
    from spoe_sync.engine.vars import _NEW_STREAM

    a, b, c, d = Vars(), Vars(), Vars(), Vars()
    assert a._data is b._data is _NEW_STREAM
    a.set("txn.x", 1)
    b.scope("req")  # a live view
    c.start_response()
    d.set("req.y", 2)
    d.start_response()
    for changed in (a, b, c, d):
        assert changed._data is not _NEW_STREAM
    assert dict(_NEW_STREAM) == {"txn": {}, "req": {}, "res": {}}
    fresh = Vars()
    assert dict(fresh) == {} and fresh._data is _NEW_STREAM
    fresh.set("req.z", 3)  # still the request phase for a new stream
    with pytest.raises(VariableError):
        fresh.set("res.z", 3)
    assert dict(a) == {"txn.x": 1} and dict(d) == {} and dict(c) == {}
    c.set("res.r", 4)
    assert dict(c) == {"res.r": 4} and Vars().get("res.r") is None


@pytest.mark.parametrize("value", [
    pytest.param(70000, id="int"), pytest.param("\u00e9t\u00e9", id="str"),
    pytest.param(b"xyz" * 5, id="bytes"), pytest.param(IPv6Address("::1"), id="ipv6"),
])
def test_setting_the_same_value_object_again_counts_as_an_equal_copy_would(value):
    """A store replacing a value by the very same object skips re-measuring the old
    one (an ACK's plan hands out the same objects each time): the byte count and
    the cap's verdict are those of the general path, fed an equal copy."""
    def copy(v):
        return type(v)(str(v)) if isinstance(v, IPv6Address) else (
            v[:1] + v[1:] if isinstance(v, (str, bytes)) else v + 0)

    size = var_size("a", value) + var_size("b", value)
    same, equal = Vars(limits=VarLimits(max_bytes=size)), Vars(limits=VarLimits(max_bytes=size))
    for store, second in ((same, value), (equal, copy(value))):
        store.set("txn.a", value)
        store.set("txn.b", value)
        store.set("txn.a", second)  # at the cap: refused if counted as new bytes
        assert store.nbytes == size
        assert store["txn.a"] == value
    assert dict(same) == dict(equal) and same.nbytes == equal.nbytes


_NAMES = ("txn.a", "txn.b", "req.r", "res.s", "sess.s", "sess.none", "proc.p", "proc.q",
          "nonsense", "txn.", ".a", "", "TXN.a", "txn.a.b", "tx.a", "sess", "proc")


def _get_by_owner(vars, full_name, default=None):
    # Vars.get's definition: the store that owns the scope (_owner), then its bag;
    # Vars.get writes _owner out and must agree with this
    scope, _, name = full_name.partition(".")
    store = vars._owner(scope)
    if store is None:
        return default
    value = store._data[scope].get(name)
    return default if value is None else value


@pytest.mark.parametrize("phase", ["new", "req-only", "request", "response", "private-session"])
def test_get_equals_the_owner_lookup_in_every_scope_and_phase(phase):
    proc = ProcVars(["proc.q"])
    proc.set("proc.p", 7)
    session = None if phase == "private-session" else Session()
    vars = Vars(session, proc)
    if phase == "req-only":  # a table of its own, txn still the shared empty bag
        vars.set("req.r", "r")
    elif phase != "new":
        vars.set("txn.a", 1)
        vars.set("req.r", "r")
        vars.set("sess.s", b"s")
    if phase == "response":
        vars.start_response()
        vars.set("res.s", True)
    for name in _NAMES:
        for default in (None, 0, "dflt"):
            assert vars.get(name, default) == _get_by_owner(vars, name, default), (name, default)
    with pytest.raises(TypeError):
        vars.get(None)  # type: ignore[arg-type]
