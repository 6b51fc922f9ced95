"""The compiled form of a condition (``Condition.evaluate``) agrees with its definition
(``Condition.evaluate_general``: any suite whose terms all hold, ``!`` and ``unless``) on every
shape of condition and every kind of value: the direct ``var(x) -m found`` lookup, the int and
bool matchers with values of other types, 64-bit wrap-around, named ACLs given more lines after
the first evaluation, and a variable store that fails."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoe_sync.protocol.values import Int32, Int64, UInt64
from spoe_sync.rules import AclRegistry, EvalContext, RequestInfo, SampleSource, parse_condition
from spoe_sync.rules.condition import Condition

# one ACL line per word: single-valued (var, path...) and multi-valued (hdr) fetches, every
# method with a fast path (found, int, bool, str, beg, end, sub; with -i and non-ASCII text)
# and some without (ip, len)
LINES = (
    "{ var(txn.t.a) -m found }", "{ var(txn.t.b) -m found }", "{ var(txn.t.a,dflt) -m found }",
    "{ var(txn.t.a) -m int ge 100 }", "{ var(txn.t.a) -m int lt 0 }",
    "{ var(txn.t.b) -m int 5 10:20 }", "{ var(txn.t.a) -m int 1: }",
    "{ var(txn.t.a) -m bool }", "{ var(txn.t.b) -m bool }", "{ var(txn.t.a) -m str clean }",
    "{ var(txn.t.a) -m beg cl }", "{ var(txn.t.b) -m len 5 }", "{ var(txn.t.a) -m ip 10.0.0.0/8 }",
    "{ var(txn.t.a),add(txn.t.b) -m int gt 3 }", "{ var(txn.t.a) -m int }",
    "{ var(txn.t.a) -m str -i CLEAN other }", "{ var(txn.t.a) -m sub -i LE }",
    "{ var(txn.t.b) -m end an }", "{ var(txn.t.a) -m str -i É x -- Cl }",
    "{ var(txn.t.a) -m beg -i \xff }",
    "{ path_beg /api }", "{ hdr(x) -m int gt 3 }", "{ hdr(x) -m found }", "{ req.hdr_cnt(x) 2 }",
    "named", "api", "TRUE", "FALSE", "konst",
    # constant lines (the fetch reads its arguments only): answered once, at compile time
    "{ always_true }", "{ always_false }", "{ int(5) gt 3 }", "{ int(5) lt 3 }",
    "{ str(abc) -m beg a }", "{ str(abc) -m str x }", "{ str(10.0.0.1) -m ip 10.0.0.0/8 }",
    "{ bool(1) }", "{ bool(0) -m bool }", "{ bin(4142) -m str AB }", "{ ipv4(10.0.0.1) 10.0.0.1 }",
    "{ ipv6(::1) ::1 }", "{ int(5),add(txn.t.b) gt 7 }", "{ str(abc),length 3 }",
)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([0, 1, 5, 10, 15, 20, 99, 100, 101, -1, (1 << 63) - 1, -(1 << 63), 1 << 63,
                     1 << 64, Int32(7), Int64(100), UInt64((1 << 64) - 1), True, False]),
    st.sampled_from(["clean", "CLEAN", "Clean", "cl", "Cl", "é", "É", "\udcff", "ÿ", "an", "",
                     "100", "12abc", "10.1.2.3", b"clean", b"CLEAN", b"\x00\x01",
                     bytearray(b"100"), IPv4Address("10.9.8.7"), IPv6Address("::1")]),
    st.text(max_size=8),
)


def registry() -> AclRegistry:
    acls = AclRegistry()
    acls.add("named", ["var(txn.t.a)", "-m", "found"])
    acls.add("api", ["path_beg", "/api"])
    acls.add("konst", ["int(7)", "gt", "3"])
    return acls


def condition_text(draw_terms: list[list[tuple[bool, str]]], unless: bool) -> str:
    suites = [" ".join(("!" if neg else "") + line for neg, line in suite)
              for suite in draw_terms]
    return ("unless " if unless else "if ") + " || ".join(suites)


conditions = st.builds(
    condition_text,
    st.lists(st.lists(st.tuples(st.booleans(), st.sampled_from(LINES)), min_size=1, max_size=3),
             min_size=1, max_size=3),
    st.booleans())


def context(a: object, b: object, headers: list[tuple[str, str]], path: str,
            with_vars: bool = True) -> EvalContext:
    store = {}
    if a is not None:
        store["txn.t.a"] = a
    if b is not None:
        store["txn.t.b"] = b
    samples = SampleSource(client=(IPv4Address("10.1.2.3"), 1),
                           request=RequestInfo("GET", path, headers=headers))
    return EvalContext(samples, store if with_vars else None)  # type: ignore[arg-type]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(conditions, VALUES, VALUES,
       st.lists(st.tuples(st.sampled_from(["x", "X", "y"]), st.sampled_from(["1", "4", "a", ""])),
                max_size=3),
       st.sampled_from(["/api/x", "/", "/apix"]), st.booleans())
def test_compiled_agrees_with_the_definition(text, a, b, headers, path, with_vars):
    cond = parse_condition(text.split(), registry())
    ctx = context(a, b, headers, path, with_vars)
    expected = cond.evaluate_general(ctx)
    assert cond.evaluate(ctx) is expected
    assert cond.evaluate(ctx) is expected  # the cached compiled form, a second time


def test_the_compiled_form_is_built_once_and_reused():
    cond = parse_condition("if { var(txn.t.a) -m int ge 100 }".split(), registry())
    assert cond._test is None
    assert cond.evaluate(context(100, None, [], "/")) is True
    compiled = cond._test
    assert compiled is not None
    assert cond.evaluate(context(99, None, [], "/")) is False
    assert cond._test is compiled
    # the cache is no part of the value
    assert cond == Condition(cond.unless, cond.suites, cond.text)


def test_a_named_acl_given_a_line_after_the_first_evaluation_is_seen():
    acls = registry()
    cond = parse_condition("if named".split(), acls)
    ctx = context(None, 3, [], "/")
    assert cond.evaluate(ctx) is False  # compiled: txn.t.a is not set
    acls.add("named", ["var(txn.t.b)", "-m", "found"])  # ORed with the first line
    assert cond.evaluate(ctx) is True
    assert cond.evaluate_general(ctx) is True


def test_a_named_constant_acl_given_a_line_after_the_first_evaluation_is_seen():
    acls = AclRegistry()
    acls.add("k", ["always_false"])
    cond = parse_condition("if k".split(), acls)
    ctx = context(None, None, [], "/")
    assert cond.evaluate(ctx) is False
    acls.add("k", ["always_true"])
    assert cond.evaluate(ctx) is cond.evaluate_general(ctx) is True


def test_a_user_acl_named_as_a_predefined_one_replaces_it():
    acls = AclRegistry()
    acls.add("TRUE", ["var(txn.t.a)", "-m", "found"])
    cond = parse_condition("if TRUE".split(), acls)
    for a in (None, 1):
        ctx = context(a, None, [], "/")
        assert cond.evaluate(ctx) is cond.evaluate_general(ctx) is (a is not None)
    acls.add("TRUE", ["always_true"])  # a line more: seen, as for any named ACL
    assert cond.evaluate(context(None, None, [], "/")) is True


class FailingVars:
    """A variable store that fails (a bug elsewhere must not become a traceback here)."""

    def get(self, full_name: str) -> object:
        raise RuntimeError("broken store")


def test_a_failing_variable_store_is_an_absent_variable_on_both_paths():
    samples = SampleSource(request=RequestInfo("GET", "/"))
    ctx = EvalContext(samples, FailingVars())
    for text in ("if { var(txn.t.a) -m found }", "unless { var(txn.t.a) -m found }",
                 "if { var(txn.t.a) -m int ge 1 }", "if { var(txn.t.a) -m bool }"):
        cond = parse_condition(text.split(), registry())
        assert cond.evaluate(ctx) is cond.evaluate_general(ctx) is text.startswith("unless")


TEXT_LINES = ("{ var(txn.t.a) -m str clean }", "{ var(txn.t.a) -m str -i CLEAN other }",
              "{ var(txn.t.a) -m beg -i cl }", "{ var(txn.t.a) -m end -i AN }",
              "{ var(txn.t.a) -m sub le }", "{ var(txn.t.a) -m str -i É }",
              "{ var(txn.t.a) -m beg \\xff }", "{ var(txn.t.a) -m str -i -- -x }")
TEXT_VALUES = ("clean", "CLEAN", "Clean", "cl", "", "É", "é", "éclean", "\udcff", "ÿ", "-X",
               "an", "AN", 5, None, True, b"CLEAN", b"\xff", IPv4Address("10.0.0.1"))


def test_text_methods_agree_on_every_line_and_value():
    for line in TEXT_LINES:
        for negate in ("", "!"):
            cond = parse_condition(["if", *(negate + line).split()], registry())
            for value in TEXT_VALUES:
                ctx = context(value, None, [], "/")
                assert cond.evaluate(ctx) is cond.evaluate_general(ctx), (line, value)


def test_patterns_of_files_read_with_and_without_minus_i(tmp_path):
    # "-f a -i -f b": the patterns of a are case-sensitive, those of b are not
    (tmp_path / "a.lst").write_text("Alpha\n")
    (tmp_path / "b.lst").write_text("Beta\n")
    acls = AclRegistry()
    acls.add("lists", ["var(txn.t.a)", "-m", "str", "-f", "a.lst", "-i", "-f", "b.lst"],
             base_dir=str(tmp_path))
    cond = parse_condition(["if", "lists"], acls)
    for value, expected in (("Alpha", True), ("alpha", False), ("BETA", True), ("beta", True)):
        ctx = context(value, None, [], "/")
        assert cond.evaluate(ctx) is cond.evaluate_general(ctx) is expected, value
