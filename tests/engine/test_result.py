"""Processing results: the reqT/qT/wT/resT/pT timings with -1 semantics (SPOE.txt §4),
status codes and raise_for_status (SPOE.txt §2.2 "set-on-error", behaviour spec §5.1),
and the engine-set variables set-on-error / set-process-time / set-total-time with
HAProxy's rules on when each is set (behaviour spec §5.2, §5.4)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from spoe_sync.config import AgentConfig, Timeouts
from spoe_sync.engine.actions import apply_actions
from spoe_sync.engine.result import (
    ProcessingResult,
    Timings,
    elapsed_ms,
    set_engine_vars,
    status_text,
)
from spoe_sync.engine.vars import VarLimits, Vars
from spoe_sync.errors import (
    MessageTooLarge,
    ProcessingError,
    ProcessingInterrupted,
    ProcessingTimeout,
    ResourceError,
)
from spoe_sync.protocol import SetVar, StreamStatus, VarScope
from spoe_sync.rules import EvalContext, StaticSamples, parse_sample


def agent(**options):
    return AgentConfig(name="iprep-agent", var_prefix=options.pop("var_prefix", "iprep"),
                       use_backend="agents", messages=(), groups=(),
                       timeouts=Timeouts(None, None, None), **options)


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        pytest.param(dict(start=0.0, queued=0.0012, sent=0.0015, acked=0.0035, applied=0.0036,
                          end=0.0040), "1/0/2/0/4", id="complete-sub-ms-truncated"),
        pytest.param(dict(start=10.0, end=10.5), "-1/-1/-1/-1/500", id="never-queued"),
        pytest.param(dict(start=0.0, queued=0.0, end=0.5), "0/-1/-1/-1/500",
                     id="timed-out-in-queue"),
        pytest.param(dict(start=0.0, queued=0.001, sent=0.002, end=0.502), "1/1/-1/-1/502",
                     id="timed-out-waiting-for-ack"),
        pytest.param(dict(start=0.0), "-1/-1/-1/-1/-1", id="never-ended"),
    ],
)
def test_timings_measure(marks, expected):
    timings = Timings.measure(**marks)
    assert str(timings) == expected
    assert [timings.request, timings.queue, timings.wait, timings.response, timings.process] == [
        int(x) for x in expected.split("/")]


@pytest.mark.parametrize(
    ("start", "end", "ms"),
    [
        pytest.param(None, 1.0, -1, id="no-start"),
        pytest.param(1.0, None, -1, id="no-end"),
        pytest.param(1.0, 1.0009, 0, id="sub-ms"),
        pytest.param(1.0, 2.25, 1250, id="seconds"),
        pytest.param(2.0, 1.0, 0, id="clock-never-negative"),
    ],
)
def test_elapsed_ms(start, end, ms):
    assert elapsed_ms(start, end) == ms


def test_default_timings_are_all_minus_one():
    assert str(Timings()) == "-1/-1/-1/-1/-1"


@pytest.mark.parametrize(
    ("status", "exc", "text"),
    [
        pytest.param(1, ProcessingTimeout, "processing timeout", id="1-timeout"),
        pytest.param(2, ResourceError, "no agent connection available", id="2-resources"),
        pytest.param(3, MessageTooLarge, "message too large and not fragmentable", id="3-too-big"),
        pytest.param(4, ProcessingInterrupted, "fragmented NOTIFY aborted by the agent", id="4-aborted"),
        pytest.param(5, ProcessingInterrupted, "processing interrupted", id="5-interrupted"),
        pytest.param(255, ProcessingError, "unknown error", id="255-unknown"),
        pytest.param(256, ProcessingError, "SPOP error 0: normal", id="256-normal-disconnect"),
        pytest.param(257, ProcessingError, "SPOP error 1: I/O error", id="257-io"),
        pytest.param(355, ProcessingError, "SPOP error 99: an unknown error occurred", id="355-agent-99"),
        pytest.param(256 + 42, ProcessingError, "SPOP error 42: an unknown error occurred",
                     id="agent-own-code"),
    ],
)
def test_raise_for_status(status, exc, text):
    result = ProcessingResult("event", "on-frontend-http-request", status=status)
    assert not result.ok and status_text(status) == text
    with pytest.raises(exc) as info:
        result.raise_for_status()
    assert type(info.value) is exc
    assert info.value.status == status and info.value.result is result
    assert text in str(info.value) and "on-frontend-http-request" in str(info.value)
    assert f"st={status}" in str(info.value)


def test_ok_result_returns_itself():
    result = ProcessingResult("group", "grp")
    assert result.ok and result.raise_for_status() is result
    assert result.label == "GROUP:grp" and str(result.timings) == "-1/-1/-1/-1/-1"


def test_processing_timeout_is_also_a_timeouterror():
    with pytest.raises(TimeoutError):
        ProcessingResult("event", "e", status=1).raise_for_status()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(0, StreamStatus.NONE, id="0"),
        pytest.param(1, StreamStatus.TOUT, id="1"),
        pytest.param(StreamStatus.from_frame_status(3), StreamStatus(259), id="259"),
        pytest.param(7, 7, id="unassigned-kept-as-int"),
    ],
)
def test_status_is_a_streamstatus_when_it_can_be(status, expected):
    result = ProcessingResult("event", "e", status=status)
    assert result.status == expected and type(result.status) is type(expected)


def test_result_is_frozen_and_read_only():
    result = ProcessingResult("event", "e", vars_set={"txn.p.a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.vars_set["txn.p.b"] = 2  # type: ignore[index]
    with pytest.raises(ValueError):
        ProcessingResult("message", "e")


def test_from_report_carries_the_action_outcome():
    vars = Vars()
    actions = (SetVar(VarScope.TXN, "a", 1), SetVar(VarScope.TXN, "b-ad", 2))
    report = apply_actions(actions, vars, var_prefix="p", truncated=True)
    result = ProcessingResult.from_report("event", "e", report, actions, timings=Timings(0, 0, 1, 0, 1))
    assert result.actions == actions and dict(result.vars_set) == {"txn.p.a": 1}
    assert [d.name for d in result.dropped_vars] == ["txn.p.b-ad"]
    assert result.actions_truncated and result.ok


@pytest.mark.parametrize(
    ("options", "status", "interrupted", "expected"),
    [
        pytest.param(dict(set_on_error="err", set_process_time="pt", set_total_time="tt"), 0, False,
                     {"txn.iprep.pt": 12, "txn.iprep.tt": 30}, id="success-no-error-var"),
        pytest.param(dict(set_on_error="err", set_process_time="pt", set_total_time="tt"), 1, False,
                     {"txn.iprep.pt": 12, "txn.iprep.tt": 30, "txn.iprep.err": 1}, id="timeout"),
        pytest.param(dict(set_on_error="err"), 256, False, {"txn.iprep.err": 256},
                     id="spop-error-stores-the-int-code"),
        pytest.param(dict(set_on_error="err", set_process_time="pt", set_total_time="tt"), 5, True,
                     {"txn.iprep.err": 5}, id="interrupt-sets-only-the-error"),
        pytest.param(dict(set_process_time="pt"), 3, False, {"txn.iprep.pt": 12},
                     id="no-set-on-error-option"),
        pytest.param({}, 1, False, {}, id="no-options"),
        pytest.param(dict(set_on_error="e.r_r", var_prefix="my.pfx"), 2, False,
                     {"txn.my.pfx.e.r_r": 2}, id="dotted-prefix-and-name"),
    ],
)
def test_set_engine_vars(options, status, interrupted, expected):
    vars = Vars()
    report = set_engine_vars(vars, agent(**options), status=status, process_ms=12, total_ms=30,
                             interrupted=interrupted)
    assert dict(report.vars_set) == expected and report.dropped == ()
    assert vars.as_dict() == expected
    for value in vars.as_dict().values():
        assert type(value) is int


def test_set_on_error_reads_as_the_code_and_is_never_cleared():
    vars = Vars()
    cfg = agent(set_on_error="err", set_process_time="pt")
    set_engine_vars(vars, cfg, status=257, process_ms=3, total_ms=3)
    set_engine_vars(vars, cfg, status=0, process_ms=1, total_ms=4)
    assert vars.get("txn.iprep.err") == 257 and vars.get("txn.iprep.pt") == 1
    ctx = EvalContext(StaticSamples({}), vars)
    assert parse_sample("var(txn.iprep.err)").evaluate(ctx) == 257


def test_engine_var_names_over_63_bytes_are_dropped():
    vars = Vars()
    report = set_engine_vars(vars, agent(set_on_error="e" * 60, set_process_time="pt"), status=1,
                             process_ms=5, total_ms=5)
    assert dict(report.vars_set) == {"txn.iprep.pt": 5}
    assert [(d.name, d.reason) for d in report.dropped] == [("txn.iprep." + "e" * 60, "name-too-long")]
    assert list(vars) == ["txn.iprep.pt"]


def test_engine_vars_bypass_a_full_store():
    vars = Vars(limits=VarLimits(max_vars=1))
    apply_actions([SetVar(VarScope.TXN, f"v{i}", i) for i in range(5)], vars, var_prefix="iprep")
    assert len(vars) == 1
    set_engine_vars(vars, agent(set_on_error="err"), status=1, process_ms=0, total_ms=0)
    assert vars.get("txn.iprep.err") == 1


def test_the_trusted_constructors_build_what_the_classes_build():
    from spoe_sync.engine.result import stream_status

    timings = Timings._trusted(1, 2, 3, 4, 10)
    assert timings == Timings(1, 2, 3, 4, 10)
    fields = ("event", "e", stream_status(259), (), MappingProxyType({"txn.p.a": 1}), (), timings,
              False, "boom", False)
    assert ProcessingResult._trusted(*fields) == ProcessingResult(*fields)
    assert int(ProcessingResult._trusted(*fields).status) == 259
    assert stream_status(1) is StreamStatus.TOUT and stream_status(7) == 7


@pytest.mark.parametrize(("marks", "expected"), [
    # request_ms, process_ms, status, t_start, written, acked, t_end, queued, end, applied
    pytest.param((0, 1000, 0, 2.0, 2.25, 2.5, 2.5, 2.0, 3.0, True), Timings(0, 250, 250, 500, 1000),
                 id="acked"),
    pytest.param((1, 1000, 1, 2.0, 2.25, -1.0, 3.0, 2.0, 3.0, False),
                 Timings(1, 250, -1, -1, 1000), id="timeout"),
    pytest.param((0, 750, 257, 2.0, 2.25, -1.0, 2.75, 2.0, 2.75, False),
                 Timings(0, 250, 500, -1, 750), id="connection-lost"),
    pytest.param((0, 500, 258, 2.0, -1.0, -1.0, 2.5, 2.0, 2.5, False),
                 Timings(0, -1, -1, -1, 500), id="never-written"),
])
def test_a_result_made_from_marks_reads_like_an_eager_one(marks, expected):
    import copy

    from spoe_sync.engine.result import _measured, stream_status

    fields = ("event", "e", stream_status(marks[2]), (), MappingProxyType({}), (), "why", False)
    lazy = _measured(*fields[:7], False, marks)
    eager = ProcessingResult("event", "e", marks[2], (), {}, (), expected, False, "why", False)
    assert lazy.timings == expected and lazy.timings is lazy.timings  # made once
    for other in (_measured(*fields[:7], False, marks), copy.copy(_measured(*fields[:7], False, marks))):
        assert other == eager and repr(other) == repr(eager)
    assert [getattr(lazy, f.name) for f in dataclasses.fields(lazy)] == \
        [getattr(eager, f.name) for f in dataclasses.fields(eager)]
    assert dataclasses.replace(lazy, error=None).timings == expected
    with pytest.raises(AttributeError):
        lazy.nonsense  # noqa: B018
