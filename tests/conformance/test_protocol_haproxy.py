"""The protocol layer against HAProxy 2.6 itself (SPOE.txt §3.2.3-3.2.6,
docs/explanation/haproxy-behaviour.md §1-2).

HAProxy talks to recording agents; then, for what it sent:

* our decoder reads every frame (HELLO, NOTIFY with every type HAProxy
  produces, fragmented NOTIFY, health-check HELLO, DISCONNECT);
* ``EngineConnection.initiate()`` builds the same HAPROXY-HELLO field for field
  and, once HAProxy's engine-id is substituted, byte for byte, for several
  ``spoe-agent`` option sets and for ``option spop-check``;
* our fragment splitting gives HAProxy's frames, and our reassembly reads them;
* an AGENT-HELLO HAProxy refuses is refused by us with the same status code,
  and our HAPROXY-DISCONNECT is HAProxy's, byte for byte.

To stay fast, each group of cases shares one HAProxy process: one frontend,
SPOE scope, backend and recording agent per case.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from spoe_sync.errors import RemoteProtocolError
from spoe_sync.protocol import (
    FLAG_FIN,
    Fragment,
    HaproxyDisconnect,
    HaproxyHello,
    Notify,
    decode_frame,
    decode_payload,
)
from spoe_sync.protocol.connection import EngineConnection, HelloDone
from spoe_sync.protocol.fragments import Reassembler, fragment_notify
from tests.kit import free_port

from .harness import (
    HAPROXY_DISCONNECT,
    HAPROXY_HELLO,
    NOTIFY,
    HTTPResponse,
    RecordingAgent,
    agent_hello,
    frame,
    http_request,
    kv_string,
    kv_uint32,
    run_haproxy,
)

MESSAGES = """\
spoe-message check-client-ip
    args ip=src path=path
    event on-frontend-http-request

spoe-message all-types
    args ip=src method=method t=always_true missing=req.hdr(x-missing) ip6=ipv6(2001:db8::1) bin=bin(deadbeef) str=str(hello) neg=int(-5) i240=int(240) max=int(9223372036854775807) min=int(-9223372036854775808) hdrs=req.hdrs_bin src
    event on-frontend-http-request

spoe-message big
    args big=req.hdr(x-big)
    event on-frontend-http-request
"""


@dataclass
class Case:
    """One frontend + SPOE scope + backend + recording agent of a shared HAProxy."""

    name: str
    hello: bytes = field(default_factory=agent_hello)
    options: str = ""
    messages: str = "check-client-ip"
    headers: list[tuple[str, str]] = field(default_factory=list)
    check: bool = False
    agent: Any = None
    port: int = 0
    response: HTTPResponse | None = None


def spoe_conf(cases: list[Case], processing: str) -> str:
    scopes = []
    for case in cases:
        options = "".join(f"    {line}\n" for line in case.options.split(";") if line)
        scopes.append(f"""\
[{case.name}]
spoe-agent {case.name}
    messages {case.messages}
    option var-prefix conf
    option set-on-error err
{options}    timeout hello 2s
    timeout idle 30s
    timeout processing {processing}
    use-backend be_{case.name}
    log global

{MESSAGES}""")
    return "\n".join(scopes)


def haproxy_cfg(cases: list[Case]) -> str:
    parts = ["""\
global
    nbthread 1
    log stdout format raw local0 info
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout check 1s
"""]
    for case in cases:
        if not case.check:
            parts.append(f"""\
frontend fe_{case.name}
    bind 127.0.0.1:{case.port}
    filter spoe engine {case.name} config spoe.conf
    http-request return status 200 content-type text/plain lf-string "err=%[var(txn.conf.err)]"
""")
        check = "    option spop-check\n" if case.check else ""
        server_check = " check inter 100ms" if case.check else ""
        parts.append(f"""\
backend be_{case.name}
    mode tcp
{check}    server a1 127.0.0.1:{case.agent.port}{server_check}
""")
    return "".join(parts)


def run_cases(haproxy_bin: str, workdir: Any, cases: list[Case], processing: str = "2s") -> Iterator[dict[str, Case]]:
    """Start one HAProxy for all cases, make one request per (non-check) case,
    wait for the check HELLOs; yields the cases by name, agents closed after."""
    for case in cases:
        case.agent = RecordingAgent(hello=case.hello)
        case.port = free_port()
    try:
        first = next(c.port for c in cases if not c.check)
        with run_haproxy(haproxy_bin, haproxy_cfg(cases), workdir,
                         files={"spoe.conf": spoe_conf(cases, processing)}, ready_port=first):
            for case in cases:
                if case.check:
                    case.agent.wait_for(HAPROXY_HELLO)
                else:
                    headers = [("Host", "conformance.test"), *case.headers]
                    case.response = http_request(case.port, target="/some/path?q=1", headers=headers)
        yield {case.name: case for case in cases}
    finally:
        # Each close waits for the agent's threads to notice; wait for all at once.
        closers = [threading.Thread(target=case.agent.close) for case in cases]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(timeout=5)


# --------------------------------------------------------------------------- accepted handshakes

HELLO_CASES = {
    # name: (spoe-agent options, EngineConnection options, capabilities, max-frame-size)
    "defaults": ("", {}, "pipelining,async", 16380),
    "nopipe_noasync": ("no option pipelining;no option async", {"pipelining": False, "async_": False},
                       "", 16380),
    "nopipe": ("no option pipelining", {"pipelining": False}, "async", 16380),
    "frame1024": ("max-frame-size 1024", {"max_frame_size": 1024}, "pipelining,async", 1024),
}
BIG = "b" * 1000


@pytest.fixture(scope="module")
def accepted(haproxy_bin, tmp_path_factory):
    cases = [Case(name, agent_hello(max_frame_size=size), options)
             for name, (options, _, _, size) in HELLO_CASES.items()]
    cases += [
        Case("types", messages="all-types"),
        # HAProxy encodes against its own max-frame-size (the agent's answer is
        # learnt too late for the first request), so both are 256 here.
        Case("frag", agent_hello(capabilities="pipelining,async,fragmentation", max_frame_size=256),
             "max-frame-size 256", "big", [("X-Big", BIG)]),
        Case("check", check=True),
    ]
    yield from run_cases(haproxy_bin, tmp_path_factory.mktemp("accepted"), cases)


def decoded(case: Case) -> list[Any]:
    """Every frame HAProxy sent to this agent, through our decoder."""
    frames = [decode_frame(received.data) for received in case.agent.frames]
    assert frames, "HAProxy sent nothing"
    return frames


@pytest.mark.parametrize("name", list(HELLO_CASES))
def test_our_hello_is_haproxys(accepted, name):
    _, ours, capabilities, size = HELLO_CASES[name]
    case = accepted[name]
    assert case.response.body == b"err="
    frames = decoded(case)
    theirs = frames[0]
    assert isinstance(theirs, HaproxyHello)
    assert (theirs.capabilities, theirs.max_frame_size, theirs.supported_versions) == (capabilities, size, "2.0")
    mine = decode_frame(EngineConnection(**ours).initiate())
    assert isinstance(mine, HaproxyHello)

    # Field for field, engine-id aside (HAProxy draws its own UUIDv4)...
    def fields(hello: HaproxyHello) -> list[tuple[str, type, object]]:
        return [(k, type(v), v) for k, v in hello.items if k != "engine-id"]

    assert fields(mine) == fields(theirs)
    assert [k for k, _ in mine.items] == [k for k, _ in theirs.items]
    # ...and byte for byte once its engine-id is ours.
    assert isinstance(theirs.engine_id, str) and len(theirs.engine_id) == 36
    assert EngineConnection(engine_id=theirs.engine_id, **ours).initiate() == case.agent.frames[0].data
    notify = frames[1]
    assert isinstance(notify, Notify)
    assert notify.messages[0].args == (("ip", IPv4Address("127.0.0.1")), ("path", "/some/path"))


def test_healthcheck_hello_is_haproxys(accepted):
    received = accepted["check"].agent.frames[0]
    theirs = decode_frame(received.data)
    assert isinstance(theirs, HaproxyHello) and theirs.healthcheck and theirs.engine_id is None
    assert EngineConnection(healthcheck=True).initiate() == received.data


def test_the_agent_hello_haproxy_accepts_we_accept(accepted):
    case = accepted["defaults"]
    case.agent.wait_for(NOTIFY)  # HAProxy took the AGENT-HELLO
    conn = EngineConnection()
    conn.initiate()
    conn.receive_data(case.hello)
    event = conn.next_event()
    assert isinstance(event, HelloDone) and event.mode == "async"


def test_decoder_reads_every_type_haproxy_sends(accepted):
    notify = next(f for f in decoded(accepted["types"]) if isinstance(f, Notify))
    (message,) = notify.messages
    args = dict(message.args)
    assert message.name == "all-types"
    assert args["ip"] == IPv4Address("127.0.0.1")
    assert args["method"] == "GET"
    assert args["t"] is True
    assert args["missing"] is None
    assert args["ip6"] == IPv6Address("2001:db8::1")
    assert args["bin"] == bytes.fromhex("deadbeef")
    assert args["str"] == "hello"
    assert (args["neg"], args["i240"], args["max"], args["min"]) == (-5, 240, 2**63 - 1, -(2**63))
    assert isinstance(args["hdrs"], bytes) and b"conformance.test" in args["hdrs"]
    assert message.args[-1] == ("", IPv4Address("127.0.0.1"))  # the unnamed arg


def test_fragmented_notify_is_ours(accepted):
    """HAProxy cuts the NOTIFY; our reassembly reads it and our splitting gives
    the same frames (the cuts fall inside one long STRING here)."""
    case = accepted["frag"]
    assert case.response.body == b"err="
    received = [r for r in case.agent.frames if r.type in (NOTIFY, 0)]
    frames = [decode_frame(r.data) for r in received]
    assert len(frames) == 5 and all(isinstance(f, Fragment) for f in frames)
    assert all(len(r.data) - 4 <= 256 for r in received)
    reassembler = Reassembler(1 << 20)
    done = [reassembler.feed(f) for f in frames]
    whole = done[-1]
    assert done[:-1] == [None] * 4 and whole is not None and whole.flags == FLAG_FIN
    notify = decode_payload(whole.frame_type, whole.payload, stream_id=whole.stream_id,
                            frame_id=whole.frame_id)
    assert isinstance(notify, Notify)
    assert notify.messages[0].args == (("big", BIG),)
    ours = fragment_notify(whole.stream_id, whole.frame_id, whole.payload, 256)
    assert ours == [r.data for r in received]


# --------------------------------------------------------------------------- refused AGENT-HELLO


def hello_with(payload: bytes, flags: int = FLAG_FIN, stream_id: int = 0) -> bytes:
    return frame(101, payload, stream_id, 0, flags)


VERSION = kv_string("version", "2.0")
SIZE = kv_uint32("max-frame-size", 16380)
REFUSED = {
    "too_big": (agent_hello(max_frame_size=20000), 9),
    "version_2_0_1": (agent_hello(version="2.0.1"), 8),
    "no_version": (hello_with(SIZE + kv_string("capabilities", "")), 5),
    "no_size": (hello_with(VERSION + kv_string("capabilities", "")), 6),
    "no_fin": (hello_with(VERSION + SIZE, flags=0), 10),
    "stream_id": (hello_with(VERSION + SIZE, stream_id=1), 4),
}


@pytest.fixture(scope="module")
def refused(haproxy_bin, tmp_path_factory):
    cases = [Case(name, hello) for name, (hello, _) in REFUSED.items()]
    # HAProxy reconnects in a loop after each refusal until the processing timeout.
    yield from run_cases(haproxy_bin, tmp_path_factory.mktemp("refused"), cases, processing="100ms")


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_hello_same_status_as_haproxy(refused, name):
    hello, status = REFUSED[name]
    case = refused[name]
    theirs = case.agent.wait_for(HAPROXY_DISCONNECT)[0].data
    disconnect = decode_frame(theirs)
    assert isinstance(disconnect, HaproxyDisconnect)
    assert disconnect.status_code == status
    conn = EngineConnection()
    conn.initiate()
    conn.receive_data(hello)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status == status
    assert conn.disconnect(info.value.status) == theirs
