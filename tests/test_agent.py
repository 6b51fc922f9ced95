"""spoe_sync.agent and the example IP-reputation agent over real sockets, with
spoe_sync's engine side as the peer (AppletPool, health checks, and a bare
EngineConnection on a gevent socket): SPOE.txt §2.5 (the ip-reputation
example), §3.2.1 (pipelining: ACKs in any order on the connection; async: ACKs
on any connection of the engine), §3.2.3 (health check, DISCONNECT both ways,
errors answered with AGENT-DISCONNECT), §3.4 (set-var actions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import gevent
import pytest
from gevent import socket

from spoe_sync.agent import Agent, AgentServer, Request
from spoe_sync.config import load_config
from spoe_sync.engine import AppletPool, healthcheck
from spoe_sync.examples.iprep import CONFIG_PATH, build_agent, reputation
from spoe_sync.protocol import (
    NEED_DATA,
    AckReceived,
    AgentDisconnected,
    ConnectionClosed,
    EngineConnection,
    HelloDone,
    Message,
    SetVar,
    VarScope,
    encode_messages,
)
from tests.kit import read_until_eof

IPREP = load_config(CONFIG_PATH, "ip-reputation")


class EngineClient:
    """One engine connection to the agent: EngineConnection on a gevent socket."""

    def __init__(self, address: str, **options: Any) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.conn = EngineConnection(**options)
        self.sock.sendall(self.conn.initiate())
        self.hello = self.next_event()

    def next_event(self, timeout: float = 3.0) -> Any:
        with gevent.Timeout(timeout):
            while True:
                event = self.conn.next_event()
                if event is not NEED_DATA:
                    return event
                self.conn.receive_data(self.sock.recv(65536))

    def notify(self, stream_id: int, frame_id: int, *messages: Message) -> None:
        for data in self.conn.send_notify(stream_id, frame_id, encode_messages(messages)):
            self.sock.sendall(data)

    def silent(self, seconds: float) -> bool:
        """Nothing arrives for ``seconds``."""
        try:
            event = self.next_event(seconds)
        except gevent.Timeout:
            return True
        raise AssertionError(f"unexpected {event!r}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def servers() -> Iterator[list[AgentServer]]:
    started: list[AgentServer] = []
    yield started
    for server in started:
        server.stop(timeout=1.0)


def slow_agent(capabilities: tuple[str, ...] = ("pipelining", "async")) -> Agent:
    """Sleeps ``delay`` seconds, then sets txn.done to its ``n`` arg."""
    agent = Agent("slow", capabilities=capabilities)

    @agent.message("work")
    def work(message: Message, request: Request) -> list[SetVar]:
        gevent.sleep(float(message.get("delay") or 0))  # type: ignore[arg-type]
        return [SetVar(VarScope.TXN, "done", message.get("n"))]

    @agent.message("fail")
    def fail(message: Message, request: Request) -> list[SetVar]:
        raise RuntimeError("handler bug")

    return agent


def work(n: int, delay: float = 0.0) -> Message:
    return Message("work", (("n", n), ("delay", str(delay))))


# --------------------------------------------------------------------------- the example agent


def process(pool: AppletPool, frame_id: int, *messages: Message) -> Any:
    outcome = pool.process(1, frame_id, encode_messages(messages), time.monotonic() + 3)
    assert outcome.status == 0, outcome
    return {(a.scope.label, a.name): a.value for a in outcome.ack.actions}


# (the ip arg, the TABLE score it must get, or None for an unlisted address: a hash score)
@pytest.mark.parametrize(("ip", "score"), [
    pytest.param(IPv4Address("192.0.2.77"), 5, id="test-net-1"),
    pytest.param(IPv4Address("198.51.100.1"), 5, id="test-net-2"),
    pytest.param(IPv6Address("2001:db8::5"), 5, id="ipv6-doc"),
    pytest.param(IPv4Address("127.0.0.1"), 100, id="loopback"),
    pytest.param(IPv6Address("::1"), 100, id="ipv6-loopback"),
    pytest.param(IPv4Address("203.0.113.9"), None, id="hash-v4"),
    pytest.param(IPv6Address("2a01::7"), None, id="hash-v6"),
    pytest.param("192.0.2.1", 5, id="string-arg"),
    pytest.param(("", IPv4Address("192.0.2.3")), 5, id="unnamed-arg"),
])
def test_iprep_scores(servers: list[AgentServer], ip: Any, score: int | None) -> None:
    servers.append(build_agent().start())
    pool = AppletPool(IPREP.agent, [servers[0].address])
    try:
        if isinstance(ip, tuple):  # (arg name, value)
            message = Message("get-ip-reputation", (ip,))
            ip = ip[1]
        else:
            message = Message("get-ip-reputation", (("ip", ip), ("path", "/x")))
        got = process(pool, 1, message)
        want_score, want_reason = reputation(ip_address(ip))
        # what the agent sends on the wire is what reputation() says, in the
        # scopes and names of the example's SPOE configuration
        assert got == {("sess", "ip_score"): want_score, ("txn", "reason"): want_reason}
        if score is not None:
            assert want_score == score and not want_reason.startswith("unlisted")
        else:
            # unlisted: a hash score, over the usual `lt 20` threshold
            assert want_reason == "unlisted (hash score)" and 30 <= want_score <= 100
        assert process(pool, 2, message) == got  # deterministic
    finally:
        pool.close(timeout=1.0)


def test_iprep_ignores_other_messages_and_bad_args(servers: list[AgentServer]) -> None:
    servers.append(build_agent().start())
    pool = AppletPool(IPREP.agent, [servers[0].address])
    try:
        assert process(pool, 1, Message("something-else", (("ip", IPv4Address("192.0.2.1")),))) == {}
        got = process(pool, 2, Message("get-ip-reputation", (("ip", 42),)))
        assert ("sess", "ip_score") not in got and ("txn", "reason") in got
    finally:
        pool.close(timeout=1.0)


def test_many_concurrent_streams_through_the_pool(servers: list[AgentServer]) -> None:
    servers.append(build_agent().start())
    pool = AppletPool(IPREP.agent, [servers[0].address])
    try:
        def one(i: int) -> int:
            ip = IPv4Address("192.0.2.1") if i % 2 else IPv4Address("127.0.0.2")
            outcome = pool.process(i, 1, encode_messages(
                [Message("get-ip-reputation", (("ip", ip),))]), time.monotonic() + 5)
            assert outcome.status == 0
            return int(outcome.ack.actions[0].value)  # type: ignore[union-attr]
        jobs = [gevent.spawn(one, i) for i in range(300)]
        gevent.joinall(jobs, timeout=10, raise_error=True)
        assert [job.value for job in jobs] == [5 if i % 2 else 100 for i in range(300)]
        assert servers[0].notifies == 300 and servers[0].acks == 300
    finally:
        pool.close(timeout=1.0)


# --------------------------------------------------------------------------- concurrency


def test_pipelining_acks_leave_as_handlers_finish(servers: list[AgentServer]) -> None:
    servers.append(slow_agent().start())
    client = EngineClient(servers[0].address, async_=False)
    try:
        assert client.hello.mode == "pipelining"
        start = time.monotonic()
        delays = ((1, 0.6), (2, 0.35), (3, 0.1))
        for fid, delay in delays:
            client.notify(9, fid, work(fid, delay))
        acks = [client.next_event() for _ in range(3)]
        elapsed = time.monotonic() - start
        assert [a.ack.frame_id for a in acks] == [3, 2, 1]
        assert all(a.matched and a.ack.actions[0].value == a.ack.frame_id for a in acks)
        # Concurrent: about the slowest (0.6 s).  One after the other cannot take
        # less than the sum (1.05 s), whatever the load.
        assert elapsed < sum(d for _, d in delays) - 0.05, elapsed
    finally:
        client.close()


def test_sync_mode_one_frame_at_a_time(servers: list[AgentServer]) -> None:
    servers.append(slow_agent(capabilities=()).start())
    client = EngineClient(servers[0].address)
    try:
        assert client.hello.mode == "sync"
        for fid in (1, 2):
            client.notify(1, fid, work(fid))
            event = client.next_event()
            assert isinstance(event, AckReceived) and event.ack.frame_id == fid
    finally:
        client.close()


@pytest.mark.parametrize(("capabilities", "moved"), [
    pytest.param(("pipelining", "async"), True, id="async"),
    pytest.param(("pipelining",), False, id="pipelining"),
])
def test_ack_of_a_dead_connection_goes_to_the_same_engine(
        servers: list[AgentServer], capabilities: tuple[str, ...], moved: bool) -> None:
    servers.append(slow_agent(capabilities).start())
    address = servers[0].address
    first = EngineClient(address, engine_id="engine-A")
    second = EngineClient(address, engine_id="engine-A")
    other = EngineClient(address, engine_id="engine-B")
    try:
        first.notify(4, 2, work(7, 0.3))
        gevent.sleep(0.05)
        first.close()  # the NOTIFY's own connection is gone before its ACK
        if moved:
            event = second.next_event()
            assert isinstance(event, AckReceived) and not event.matched
            assert (event.ack.stream_id, event.ack.frame_id) == (4, 2)
            assert event.ack.actions[0].value == 7
        else:
            assert second.silent(0.5)
        assert other.silent(0.1)
    finally:
        for client in (first, second, other):
            client.close()


def test_fragmented_notify_from_the_pool(servers: list[AgentServer]) -> None:
    agent = Agent("frag", capabilities=("pipelining", "async", "fragmentation"), max_frame_size=1024)

    @agent.message("body")
    def body(message: Message, request: Request) -> list[SetVar]:
        return [SetVar(VarScope.TXN, "size", len(message.get("data")))]  # type: ignore[arg-type]

    servers.append(agent.start())
    pool = AppletPool(IPREP.agent, [servers[0].address])
    try:
        assert process(pool, 1, Message("body", (("data", b"b" * 5000),))) == {("txn", "size"): 5000}
    finally:
        pool.close(timeout=1.0)


# --------------------------------------------------------------------------- faults


def test_handler_exception_gives_an_empty_ack(servers: list[AgentServer],
                                              caplog: pytest.LogCaptureFixture) -> None:
    servers.append(slow_agent().start())
    client = EngineClient(servers[0].address)
    try:
        with caplog.at_level(logging.ERROR, logger="spoe_sync.agent"):
            client.notify(1, 1, work(1), Message("fail"))
            event = client.next_event()
        assert isinstance(event, AckReceived) and event.ack.actions == ()
        assert any("handler of message 'fail' failed" in r.getMessage() for r in caplog.records)
        client.notify(1, 2, work(2))  # the connection lives on
        assert client.next_event().ack.actions[0].value == 2
    finally:
        client.close()


def test_healthcheck(servers: list[AgentServer]) -> None:
    servers.append(build_agent(async_=False).start())
    result = healthcheck(servers[0].address, timeout=2.0)
    assert result.ok and result.version == "2.0" and result.max_frame_size == 16380
    assert result.capabilities == ("pipelining",)
    client = EngineClient(servers[0].address, healthcheck=True)
    assert isinstance(client.hello, HelloDone)
    assert isinstance(client.next_event(), ConnectionClosed)  # the agent closed
    client.close()


def test_haproxy_disconnect_is_answered(servers: list[AgentServer]) -> None:
    servers.append(build_agent().start())
    client = EngineClient(servers[0].address)
    client.sock.sendall(client.conn.disconnect(0))
    assert client.next_event() == AgentDisconnected(0, "normal")
    assert client.sock.recv(10) == b""
    client.close()


@pytest.mark.parametrize(("data", "status"), [
    pytest.param(b"\x00\x00\x00\x0a\x03\x00\x00\x00\x01\x01\x01\x05abc", 4, id="malformed-notify"),
    pytest.param(b"\x7f\xff\xff\xff" + b"\x03" * 8, 3, id="oversized"),
    pytest.param(b"\x00\x00\x00\x07\x03\x00\x00\x00\x00\x01\x01", 10, id="fragment-unannounced"),
])
def test_garbage_gets_a_disconnect_with_its_status(servers: list[AgentServer], data: bytes,
                                                   status: int) -> None:
    servers.append(build_agent().start())
    client = EngineClient(servers[0].address)
    client.sock.sendall(data)
    event = client.next_event()
    assert isinstance(event, AgentDisconnected) and event.status_code == status
    assert client.sock.recv(10) == b""
    client.close()
    assert servers[0].errors == 1
    assert healthcheck(servers[0].address).ok  # the server is fine


def test_hello_timeout(servers: list[AgentServer]) -> None:
    agent = build_agent()
    agent.hello_timeout = 0.2
    servers.append(agent.start())
    host, _, port = servers[0].address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        data = read_until_eof(sock, timeout=3)
    conn = EngineConnection()
    conn.initiate()
    conn.receive_data(data)
    assert conn.next_event() == AgentDisconnected(2, "a timeout occurred")


def test_stop_is_graceful(servers: list[AgentServer]) -> None:
    server = slow_agent().start()
    client = EngineClient(server.address)
    try:
        client.notify(1, 1, work(5, 0.3))
        gevent.sleep(0.05)
        start = time.monotonic()
        server.stop(timeout=2.0)
        assert time.monotonic() - start < 1.5
        event = client.next_event()
        assert isinstance(event, AckReceived) and event.ack.actions[0].value == 5
        assert client.next_event() == AgentDisconnected(0, "agent stopping")
        with pytest.raises(OSError):
            healthcheck_sock = socket.create_connection(("127.0.0.1", server.port), timeout=1)
            healthcheck_sock.close()
    finally:
        client.close()


def test_agent_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown capabilities: pipelinnig"):
        Agent(capabilities=("pipelinnig",))
    with pytest.raises(Exception, match="max-frame-size 100"):
        Agent(max_frame_size=100)
