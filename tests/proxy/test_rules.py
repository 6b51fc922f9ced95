"""tcp-request content and tcp-response content rules in the TCP proxy (docs/explanation/agents.md §6,
docs/explanation/haproxy-behaviour.md §7.5): reject/accept/silent-drop, send-spoe-group, set-var and
unset-var, evaluated in order with the ACL engine after the event of their point, with the
agent's variables; an agent that is down leaves the decision to the rules; bad rules are refused
at construction."""

from __future__ import annotations

from typing import Any

import gevent
import pytest

from spoe_sync.errors import ConfigError
from spoe_sync.protocol import Message, SetVar, VarScope
from spoe_sync.proxy import RuleSet, TCPProxy, Verdict
from spoe_sync.testing import FakeAgent
from tests.kit import closed_address, wait_until

from .proxykit import Upstream, connect, exchange, make_engine, running

pytestmark = pytest.mark.timeout(30)

LOW_SCORE = "content reject if { var(sess.iprep.ip_score) -m int lt 20 }"


def score(value: int) -> Any:
    return lambda message: [SetVar(VarScope.SESS, "ip_score", value)]


@pytest.mark.parametrize("ip_score, allowed", [
    pytest.param(10, False, id="low-score-rejected"),
    pytest.param(19, False, id="just-under"),
    pytest.param(20, True, id="at-threshold"),
    pytest.param(90, True, id="good-score"),
])
def test_reject_on_the_agent_score(ip_score: int, allowed: bool) -> None:
    with FakeAgent({"at-client": score(ip_score)}) as agent, Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[make_engine(agent.address)],
                         tcp_request=[LOW_SCORE])
        with running(proxy):
            answer = exchange(proxy, b"data")
        assert answer == (b"data" if allowed else b"")
        assert up.connections == (1 if allowed else 0)  # a rejected client never reaches it
        assert proxy.stats.rejected == (0 if allowed else 1)


@pytest.mark.parametrize("rules, allowed", [
    pytest.param(["reject"], False, id="reject-always"),
    pytest.param(["accept if { src 127.0.0.1 }", "reject"], True, id="accept-stops-the-rules"),
    pytest.param(["accept if { src 10.0.0.0/8 }", "reject"], False, id="accept-not-matching"),
    pytest.param(["reject unless { src 127.0.0.0/8 }"], True, id="unless"),
    pytest.param(["reject if { req.payload(0,4) -m str EVIL }"], True, id="payload-clean"),
    pytest.param(["reject if { req.len gt 100 }"], True, id="req-len"),
    pytest.param(["set-var(txn.x) str(1)", "reject if { var(txn.x) -m int eq 1 }"], False,
                 id="set-var-then-reject"),
    pytest.param(["set-var(txn.x) str(1)", "unset-var(txn.x)",
                  "reject if { var(txn.x) -m found }"], True, id="unset-var"),
    pytest.param(["set-var(txn.x) int(1)", "set-var(txn.x,ifnotexists) int(2)",
                  "reject if { var(txn.x) -m int eq 2 }"], True, id="set-var-ifnotexists-kept"),
    pytest.param(["set-var(txn.x,ifexists) int(2)", "reject if { var(txn.x) -m found }"], True,
                 id="set-var-ifexists-unset"),
    pytest.param(["set-var(txn.x) int(5)", "set-var(txn.x,ifgt) int(2)",
                  "reject if { var(txn.x) -m int eq 2 }"], False, id="set-var-ifgt"),
    pytest.param(["tcp-request content reject if TRUE"], False, id="full-keyword"),
])
def test_rules_without_an_agent(rules: list[str], allowed: bool) -> None:
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, tcp_request=rules, inspect_delay=1)
        with running(proxy):
            assert exchange(proxy, b"hello") == (b"hello" if allowed else b"")
        assert up.connections == (1 if allowed else 0)


def test_reject_on_the_request_payload() -> None:
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, inspect_delay=1,
                         tcp_request=["reject if { req.payload(0,4) -m str EVIL }"])
        with running(proxy):
            assert exchange(proxy, b"EVIL payload") == b""
            assert exchange(proxy, b"GOOD payload") == b"GOOD payload"
        assert up.connections == 1


def test_named_acls() -> None:
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, inspect_delay=1,
                         acls=["acl is_ping req.payload(0,4) -m str PING", "is_quit req.len 4"],
                         tcp_request=["reject unless is_ping or is_quit"])
        with running(proxy):
            assert exchange(proxy, b"PING 1") == b"PING 1"
            assert exchange(proxy, b"QUIT") == b"QUIT"
            assert exchange(proxy, b"OTHER") == b""


def test_silent_drop_resets_the_client() -> None:
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, tcp_request=["silent-drop"])
        with running(proxy):
            sock = connect(proxy)
            sock.sendall(b"x")
            sock.settimeout(5)
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
            sock.close()
        assert up.connections == 0


def test_send_spoe_group_and_set_var() -> None:
    groups: list[dict[str, Any]] = []

    def in_group(message: Message) -> list[SetVar]:
        args = dict(message.args)
        groups.append(args)
        verdict = "deny" if args["first"] == b"EVIL" else "allow"
        return [SetVar(VarScope.TXN, "verdict", verdict)]

    rules = ["set-var(txn.iprep.kind) req.payload(0,2)",
             "send-spoe-group iprep grp",
             "reject if { var(txn.iprep.verdict) -m str deny }"]
    with FakeAgent({"in-group": in_group, "*": lambda m: []}) as agent, Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[make_engine(agent.address)],
                         tcp_request=rules, inspect_delay=1)
        with running(proxy):
            assert exchange(proxy, b"EVIL") == b""
            assert exchange(proxy, b"NICE") == b"NICE"
    assert groups == [{"first": b"EVIL", "kind": b"EV"}, {"first": b"NICE", "kind": b"NI"}]


def test_tcp_response_reject_on_the_response_payload() -> None:
    with Upstream("banner", banner=b"BAD banner") as bad, \
            Upstream("banner", banner=b"OK banner") as good:
        for up, expected in ((bad, b""), (good, b"OK bannerq")):
            proxy = TCPProxy(("127.0.0.1", 0), up.address,
                             tcp_response=["reject if { res.payload(0,3) -m str BAD }"])
            with running(proxy):
                assert exchange(proxy, b"q") == expected
                assert proxy.stats.rejected == (1 if expected == b"" else 0)


def test_tcp_response_rule_on_an_agent_variable() -> None:
    def at_response(message: Message) -> list[SetVar]:
        leak = dict(message.args)["payload"].startswith(b"SECRET")
        return [SetVar(VarScope.TXN, "leak", leak)]

    with FakeAgent({"at-response": at_response, "*": lambda m: []}) as agent, \
            Upstream("banner", banner=b"SECRET data") as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[make_engine(agent.address)],
                         tcp_response=["content reject if { var(txn.iprep.leak) -m bool }"])
        with running(proxy):
            assert exchange(proxy, b"q") == b""
        assert proxy.stats.rejected == 1


def test_hook_rule() -> None:
    calls: list[bytes] = []

    def hook(samples: Any, vars: Any) -> str | None:
        calls.append(samples.req_payload)
        return "reject" if samples.req_payload.startswith(b"no") else None

    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, tcp_request=[hook], inspect_delay=1)
        with running(proxy):
            assert exchange(proxy, b"no thanks") == b""
            assert exchange(proxy, b"yes") == b"yes"
    assert calls == [b"no thanks", b"yes"]


@pytest.mark.parametrize("rules, fail_closed", [
    pytest.param([LOW_SCORE], False, id="fail-open"),
    pytest.param(["reject unless { var(sess.iprep.ip_score) -m found }"], True, id="fail-closed"),
])
def test_agent_down_rules_decide_and_nothing_hangs(rules: list[str], fail_closed: bool) -> None:
    address = closed_address()
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, tcp_request=rules,
                         engines=[make_engine(address, processing="300ms")])
        with running(proxy):
            with gevent.Timeout(10):
                jobs = [gevent.spawn(exchange, proxy, b"d%d" % i) for i in range(10)]
                gevent.joinall(jobs, raise_error=True)
        expected = [b"" if fail_closed else b"d%d" % i for i in range(10)]
        assert [j.value for j in jobs] == expected
        assert proxy.stats.rejected == (10 if fail_closed else 0)


@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"tcp_request": ["deny"]}, "expects 'send-spoe-group'", id="http-only-action"),
    pytest.param({"tcp_request": ["reject if { nope }"]}, "unknown fetch", id="bad-fetch"),
    pytest.param({"tcp_request": ["reject if missing_acl"]}, "no such ACL", id="no-such-acl"),
    pytest.param({"tcp_request": ["send-spoe-group other grp"]},
                 "unable to find SPOE engine 'other'", id="unknown-engine"),
    pytest.param({"tcp_request": ["send-spoe-group iprep nogroup"]},
                 "unable to find SPOE group 'nogroup'", id="unknown-group"),
    pytest.param({"acls": ["bad"]}, "expects an ACL name", id="bad-acl-line"),
])
def test_bad_rules_are_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TCPProxy(("127.0.0.1", 0), "127.0.0.1:9", engines=[make_engine("127.0.0.1:1")],
                 **kwargs)


def test_ruleset_object_passes_through() -> None:
    rules = RuleSet(())
    proxy = TCPProxy(("127.0.0.1", 0), "127.0.0.1:9", tcp_request=rules)
    assert proxy.tcp_request is rules and len(rules) == 0
    assert Verdict("reject") is Verdict.REJECT


def test_rejected_connection_gets_a_fin_not_a_reset() -> None:
    # the proxy reads what it peeked before closing, so the client sees a clean EOF
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, tcp_request=["reject"], inspect_delay=1)
        with running(proxy):
            sock = connect(proxy)
            sock.sendall(b"payload")
            sock.settimeout(5)
            assert sock.recv(10) == b""
            sock.close()
            assert wait_until(lambda: proxy.stats.active == 0)


@pytest.mark.parametrize("answer, allowed", [
    pytest.param(Verdict.ACCEPT, True, id="verdict-accept-skips-the-reject"),
    pytest.param("accept", True, id="text-accept"),
    pytest.param(None, False, id="none-goes-on"),
    pytest.param(42, False, id="other-values-go-on"),
])
def test_hook_answers(answer: Any, allowed: bool) -> None:
    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address,
                         tcp_request=[lambda samples, vars: answer, "reject"])
        with running(proxy):
            assert exchange(proxy, b"h") == (b"h" if allowed else b"")


def test_a_failing_hook_ends_only_its_connection() -> None:
    def broken(samples: Any, vars: Any) -> None:
        raise RuntimeError("bug in a hook")

    with Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, tcp_request=[broken])
        with running(proxy):
            assert exchange(proxy, b"a") == b""
            assert exchange(proxy, b"b") == b""
            assert proxy.stats.aborted == 2 and up.connections == 0
