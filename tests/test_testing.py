"""spoe_sync.testing.FakeAgent, driven by a plain socket client: the AGENT-HELLO
it answers (SPOE.txt §3.2.5), ACKs from handlers (§3.2.7), DISCONNECT replies
(§3.2.9), and each scripted misbehaviour."""

from __future__ import annotations

import pytest
from gevent import socket

from spoe_sync.protocol import (
    FLAG_ABORT,
    FLAG_FIN,
    Ack,
    AgentDisconnect,
    AgentHello,
    HaproxyDisconnect,
    HaproxyHello,
    Message,
    SetVar,
    VarScope,
)
from spoe_sync.protocol.codec import decode_frame_body, encode_frame, encode_messages, encode_notify
from spoe_sync.testing import GARBAGE, OVERLONG, FakeAgent
from tests.kit import read_frame, recv_exactly

pytestmark = pytest.mark.timeout(10)


class Client:
    """A SPOP client on a gevent socket (the agent runs in this hub), 2 s per read."""

    def __init__(self, address: str, max_frame_size: int = 16380) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=2)
        self.sock.sendall(encode_frame(HaproxyHello.make(max_frame_size=max_frame_size,
                                                         engine_id="e")))

    def read_raw(self, n: int) -> bytes:
        return recv_exactly(self.sock, n)

    def frame(self):  # type: ignore[no-untyped-def]
        body = read_frame(self.sock)
        return None if body is None else decode_frame_body(body)

    def notify(self, sid: int, fid: int, *messages: Message) -> None:
        self.sock.sendall(encode_notify(sid, fid, encode_messages(messages)))

    def close(self) -> None:
        self.sock.close()


def test_hello_answer_and_disconnect_reply() -> None:
    with FakeAgent(capabilities="pipelining", max_frame_size=1024) as agent:
        client = Client(agent.address, max_frame_size=2048)
        hello = client.frame()
        assert isinstance(hello, AgentHello)
        assert (hello.version, hello.max_frame_size, hello.capabilities) == ("2.0", 1024, "pipelining")
        client.sock.sendall(encode_frame(HaproxyDisconnect.make(0)))
        reply = client.frame()
        assert isinstance(reply, AgentDisconnect) and reply.status_code == 0
        assert client.frame() is None  # then it closes
        assert agent.disconnects[0].message == "normal"
        assert agent.connections == 1 and agent.hellos[0].engine_id == "e"
        client.close()


def test_handlers_answer_each_notify_with_their_actions() -> None:
    handlers = {"a": lambda m: [SetVar(VarScope.TXN, "a", m.get("x"))],
                "*": lambda m: [SetVar(VarScope.REQ, "other", m.name)]}
    with FakeAgent(handlers) as agent:
        client = Client(agent.address)
        client.frame()
        client.notify(5, 1, Message("a", (("x", 7),)), Message("b"))
        ack = client.frame()
        assert isinstance(ack, Ack) and (ack.stream_id, ack.frame_id) == (5, 1)
        assert ack.actions == (SetVar(VarScope.TXN, "a", 7), SetVar(VarScope.REQ, "other", "b"))
        assert (agent.frames, agent.acks_sent) == (1, 1)
        assert "frames: 1 received, 1 acked" in repr(agent)
        client.close()


def test_a_raising_handler_gets_an_ack_without_actions_and_is_recorded() -> None:
    """A handler's bug is the test's, not the engine's: the NOTIFY still gets its
    ACK (no actions, as spoe_sync.agent answers), the connection stays up, and
    the exception is in ``errors`` (not a traceback on stderr)."""
    def broken(message: Message) -> list[SetVar]:
        raise RuntimeError(f"bug in {message.name}")

    handlers = {"bad": broken, "good": lambda m: [SetVar(VarScope.TXN, "ok", 1)]}
    with FakeAgent(handlers) as agent:
        client = Client(agent.address)
        client.frame()
        client.notify(1, 1, Message("good"), Message("bad"))
        ack = client.frame()
        assert isinstance(ack, Ack) and (ack.stream_id, ack.frame_id, ack.actions) == (1, 1, ())
        assert agent.errors == ["handler of message 'bad' raised RuntimeError: bug in bad"]
        client.notify(2, 1, Message("good"))  # the same connection still answers
        ack = client.frame()
        assert isinstance(ack, Ack) and ack.actions == (SetVar(VarScope.TXN, "ok", 1),)
        assert (agent.connections, agent.frames, agent.acks_sent) == (1, 2, 2)
        client.close()


def test_reorder_sends_acks_last_first() -> None:
    with FakeAgent(reorder=3) as agent:
        client = Client(agent.address)
        client.frame()
        for sid in (1, 2, 3):
            client.notify(sid, 1, Message("m"))
        assert [client.frame().stream_id for _ in range(3)] == [3, 2, 1]
        client.close()


@pytest.mark.parametrize(("fault", "check"), [
    pytest.param("unknown-frame-id", lambda c: c.frame().frame_id == 1001, id="unknown-frame-id"),
    pytest.param("abort", lambda c: c.frame().flags == FLAG_FIN | FLAG_ABORT, id="abort"),
    pytest.param("garbage", lambda c: c.read_raw(len(GARBAGE)) == GARBAGE, id="garbage"),
    pytest.param("overlong", lambda c: c.read_raw(len(OVERLONG)) == OVERLONG, id="overlong"),
    pytest.param("close", lambda c: c.frame() is None, id="close"),
    pytest.param("disconnect", lambda c: c.frame().status_code == 99, id="disconnect"),
])
def test_scripted_faults(fault: str, check) -> None:  # type: ignore[no-untyped-def]
    with FakeAgent(fault=fault) as agent:
        client = Client(agent.address)
        client.frame()
        client.notify(1, 1, Message("m"))
        assert check(client)
        client.close()


def test_fragment_fault_cuts_acks_in_three_frames() -> None:
    with FakeAgent({"*": lambda m: [SetVar(VarScope.TXN, "v", "x" * 30)]}, fault="fragment") as agent:
        client = Client(agent.address)
        client.frame()
        client.notify(1, 1, Message("m"))
        frames = [client.frame() for _ in range(3)]
        assert [f.fin for f in frames] == [False, False, True]
        assert [f.frame_type for f in frames] == [103, 0, 0]
        client.close()


def test_faults_limited_to_the_first_connections() -> None:
    with FakeAgent(hello="close", fault_connections=1) as agent:
        first = Client(agent.address)
        assert first.frame() is None
        second = Client(agent.address)
        assert isinstance(second.frame(), AgentHello)
        first.close()
        second.close()


def test_hello_replaced_by_a_frame_or_bytes() -> None:
    with FakeAgent(hello=AgentHello.make(version="9.9")) as agent:
        client = Client(agent.address)
        assert client.frame().version == "9.9"
        client.close()
    with FakeAgent(hello=b"\x00\x00\x00\x01") as agent:
        client = Client(agent.address)
        assert client.read_raw(4) == b"\x00\x00\x00\x01"
        client.close()


def test_bad_scripts_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FakeAgent(fault="explode")
    with pytest.raises(ValueError, match="unknown hello fault"):
        FakeAgent(hello="explode")
