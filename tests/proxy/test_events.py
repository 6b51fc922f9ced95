"""SPOE events in the TCP proxy (SPOE.txt §3.3, docs/explanation/haproxy-behaviour.md §7.5):
on-client-session at accept, on-frontend-tcp-request after the inspect delay with req.payload,
on-server-session once connected, on-tcp-response with the first response bytes; several
engines in declaration order; sess variables per client connection; an agent that is down
(fail open, bounded); engine.close() on stop (HAPROXY-DISCONNECT to the agents).
Real Engine, FakeAgent and upstream sockets."""

from __future__ import annotations

import time
from ipaddress import IPv4Address
from typing import Any

import gevent
import pytest
from gevent import socket

from spoe_sync.errors import ConfigError
from spoe_sync.protocol import Message, SetVar, VarScope
from spoe_sync.proxy import TCPProxy
from spoe_sync.testing import FakeAgent
from tests.kit import closed_address, read_until_eof, wait_until

from .proxykit import Upstream, connect, exchange, make_engine, running

pytestmark = pytest.mark.timeout(30)


def recorder(seen: list[tuple[str, dict[str, Any]]]) -> Any:
    def handle(message: Message) -> list[SetVar]:
        seen.append((message.name, dict(message.args)))
        return [SetVar(VarScope.SESS, f"seen_{message.name.replace('-', '_')}", 1)]
    return handle


def test_every_event_point_in_order_with_its_samples() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    vars_after: list[dict[str, Any]] = []
    with FakeAgent({"*": recorder(seen)}) as agent, Upstream("banner", banner=b"WELCOME") as up:
        engine = make_engine(agent.address)
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[engine], inspect_delay=1,
                         on_connection=lambda s, v: vars_after.append(v.as_dict()))
        with running(proxy):
            assert exchange(proxy, b"GET / HTTP/1.0\r\n\r\n") == b"WELCOMEGET / HTTP/1.0\r\n\r\n"
            assert wait_until(lambda: vars_after)
    assert [name for name, _ in seen] == ["at-client", "at-request", "at-server", "at-response"]
    args = dict(seen)
    assert args["at-client"] == {"ip": IPv4Address("127.0.0.1"), "port": proxy.server_port}
    assert args["at-request"] == {"payload": b"GET / HTTP/1.0\r\n\r\n", "len": 18, "mark": None}
    assert args["at-response"] == {"payload": b"WELCOME", "len": 7}
    assert vars_after[0] == {f"sess.iprep.seen_at_{p}": 1
                             for p in ("client", "request", "server", "response")}
    # the agent got HAPROXY-DISCONNECT when the proxy stopped
    assert wait_until(lambda: len(agent.disconnects) >= 1)
    assert engine.closed


def test_inspect_delay_waits_for_the_first_bytes() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    with FakeAgent({"*": recorder(seen)}) as agent, Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[make_engine(agent.address)],
                         inspect_delay=2)
        with running(proxy):
            sock = connect(proxy)
            gevent.sleep(0.2)  # the proxy is waiting: nothing sent yet
            start = time.monotonic()
            sock.sendall(b"late")
            sock.shutdown(socket.SHUT_WR)
            assert read_until_eof(sock) == b"late"
            sock.close()
            assert time.monotonic() - start < 1.5  # it did not sit out the whole delay
    assert dict(seen)["at-request"] == {"payload": b"late", "len": 4, "mark": None}


def test_inspect_delay_is_a_bound() -> None:
    # a client that never speaks: the event fires with an empty payload after the delay
    seen: list[tuple[str, dict[str, Any]]] = []
    with FakeAgent({"*": recorder(seen)}) as agent, Upstream("banner") as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[make_engine(agent.address)],
                         inspect_delay=0.2)
        with running(proxy):
            sock = connect(proxy)
            start = time.monotonic()
            sock.settimeout(5)
            assert sock.recv(100) == b"HELLO\n"
            assert 0.15 < time.monotonic() - start < 2
            sock.close()
    assert dict(seen)["at-request"] == {"payload": b"", "len": 0, "mark": None}


def test_sess_vars_live_per_client_connection() -> None:
    marks = iter(range(1, 100))
    seen_marks: list[Any] = []

    def at_client(message: Message) -> list[SetVar]:
        return [SetVar(VarScope.SESS, "mark", next(marks)), SetVar(VarScope.TXN, "t", 7)]

    def at_request(message: Message) -> list[SetVar]:
        seen_marks.append(dict(message.args)["mark"])
        return []

    finals: list[dict[str, Any]] = []
    with FakeAgent({"at-client": at_client, "at-request": at_request}) as agent, \
            Upstream() as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[make_engine(agent.address)],
                         inspect_delay=5, on_connection=lambda s, v: finals.append(v.as_dict()))
        with running(proxy):
            socks = [connect(proxy) for _ in range(3)]  # three sessions open at once
            assert wait_until(lambda: agent.frames == 3)  # every on-client-session ran
            for i, sock in enumerate(socks):
                sock.sendall(b"%d" % i)
                sock.shutdown(socket.SHUT_WR)
            assert [read_until_eof(s) for s in socks] == [b"0", b"1", b"2"]
            for sock in socks:
                sock.close()
            assert wait_until(lambda: len(finals) == 3)
    # a later event of a connection reads that connection's sess variable, not another's
    assert sorted(seen_marks) == [1, 2, 3]
    assert sorted(f["sess.iprep.mark"] for f in finals) == [1, 2, 3]
    assert all(f["txn.iprep.t"] == 7 for f in finals)


def test_several_engines_fire_in_declaration_order() -> None:
    order: list[str] = []

    def tag(name: str) -> Any:
        def handle(message: Message) -> list[SetVar]:
            order.append(f"{name}:{message.name}")
            return [SetVar(VarScope.TXN, "score", 10 if name == "a" else 20)]
        return handle

    finals: list[dict[str, Any]] = []
    with FakeAgent({"*": tag("a")}) as agent_a, FakeAgent({"*": tag("b")}) as agent_b, \
            Upstream() as up:
        engines = [make_engine(agent_a.address, name="first"),
                   make_engine(agent_b.address, name="second")]
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=engines,
                         on_connection=lambda s, v: finals.append(v.as_dict()))
        with running(proxy):
            assert exchange(proxy, b"y") == b"y"
            assert wait_until(lambda: finals)
    assert order[:2] == ["a:at-client", "b:at-client"]
    assert order[2:4] == ["a:at-request", "b:at-request"]
    assert finals[0] == {"txn.first.score": 10, "txn.second.score": 20}
    assert all(e.closed for e in engines)


def test_duplicate_engine_ids_are_refused() -> None:
    engines = [make_engine("127.0.0.1:1"), make_engine("127.0.0.1:2")]
    with pytest.raises(ConfigError, match="duplicated name for SPOE engine 'iprep'"):
        TCPProxy(("127.0.0.1", 0), "127.0.0.1:9", engines=engines)


@pytest.mark.parametrize("fault", [
    pytest.param("stall", id="agent-stalls"),
    pytest.param("close", id="agent-closes"),
])
def test_agent_faults_fail_open_within_the_processing_timeout(fault: str) -> None:
    with FakeAgent(fault=fault) as agent, Upstream() as up:
        engine = make_engine(agent.address, processing="200ms")
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[engine])
        with running(proxy):
            with gevent.Timeout(5):
                assert exchange(proxy, b"still served") == b"still served"
            assert engine.metrics().nb_errors >= 1


def test_agent_down_fails_open() -> None:
    address = closed_address()
    with Upstream() as up:
        engine = make_engine(address, processing="300ms")
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[engine])
        with running(proxy):
            start = time.monotonic()
            jobs = [gevent.spawn(exchange, proxy, b"z%d" % i) for i in range(20)]
            gevent.joinall(jobs, timeout=10, raise_error=True)
            assert [j.value for j in jobs] == [b"z%d" % i for i in range(20)]
            assert time.monotonic() - start < 5
        metrics = engine.metrics()
        assert metrics.nb_errors >= 20  # every connection's first event failed


def test_no_message_at_an_event_sends_nothing() -> None:
    conf_only_client = ("[x]\nspoe-agent x\n  messages m\n  option var-prefix x\n"
                        "  timeout hello 500ms\n  timeout idle 5s\n  timeout processing 1s\n"
                        "  use-backend agents\nspoe-message m\n  args ip=src\n"
                        "  event on-client-session\n")
    from spoe_sync import Engine
    with FakeAgent({"m": lambda m: []}) as agent, Upstream() as up:
        engine = Engine(conf_only_client, {"agents": [agent.address]}, engine="x")
        with running(TCPProxy(("127.0.0.1", 0), up.address, engines=[engine])) as proxy:
            assert exchange(proxy, b"q") == b"q"
            assert wait_until(lambda: agent.frames == 1)
            gevent.sleep(0.05)
        assert agent.frames == 1  # only on-client-session had a message
