"""The protocol layer against HAProxy 2.6 itself (SPOE.txt §3.2.3-3.2.6,
haproxy-engine-behaviour.md §1-2).

HAProxy talks to the recording agent; then, for what it sent:

* our decoder reads every frame (HELLO, NOTIFY with every type HAProxy
  produces, fragmented NOTIFY, health-check HELLO, DISCONNECT);
* ``EngineConnection.initiate()`` builds the same HAPROXY-HELLO field for field
  and, once HAProxy's engine-id is substituted, byte for byte, for several
  ``spoe-agent`` option sets and for ``option spop-check``;
* our fragment splitting gives HAProxy's frames, and our reassembly reads them;
* an AGENT-HELLO HAProxy refuses is refused by us with the same status code.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

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

from .harness import (
    HAPROXY_DISCONNECT,
    HAPROXY_HELLO,
    NOTIFY,
    agent_hello,
    frame,
    free_port,
    http_request,
    kv_string,
    kv_uint32,
    run_haproxy,
)

SPOE_CONF = """\
[conf]
spoe-agent conf
    messages {messages}
    option var-prefix conf
    option set-on-error err
{options}
    timeout hello 2s
    timeout idle 30s
    timeout processing {processing}
    use-backend agents
    log global

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


def haproxy_cfg(http_port: int, agent_port: int, check: bool = False) -> str:
    checks = "    option spop-check\n" if check else ""
    server_check = " check inter 100ms" if check else ""
    return f"""\
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
frontend fe
    bind 127.0.0.1:{http_port}
    filter spoe engine conf config spoe.conf
    http-request return status 200 content-type text/plain lf-string "err=%[var(txn.conf.err)]"
backend agents
    mode tcp
{checks}    server a1 127.0.0.1:{agent_port}{server_check}
"""


def run(haproxy_bin, agent, tmp_path, *, options="", messages="check-client-ip", check=False,
        processing="2s", headers=None):
    """Start HAProxy, make one request (unless only checking), and return the
    HTTP response (None for checks)."""
    port = free_port()
    spoe = SPOE_CONF.format(messages=messages, options=options, processing=processing)
    with run_haproxy(haproxy_bin, haproxy_cfg(port, agent.port, check), tmp_path,
                     files={"spoe.conf": spoe}, ready_port=port):
        if check:
            agent.wait_for(HAPROXY_HELLO)
            return None
        hdrs = [("Host", "conformance.test"), *(headers or [])]
        return http_request(port, target="/some/path?q=1", headers=hdrs)


def decode_all(agent):
    """Every recorded frame goes through our decoder without error."""
    frames = [decode_frame(received.data) for received in agent.frames]
    assert frames, "HAProxy sent nothing"
    return frames


# --------------------------------------------------------------------------- HELLO


HELLO_CASES = [
    pytest.param("", {}, "pipelining,async", 16380, id="defaults"),
    pytest.param("    no option pipelining\n    no option async", {"pipelining": False, "async_": False},
                 "", 16380, id="no_pipelining_no_async"),
    pytest.param("    no option pipelining", {"pipelining": False}, "async", 16380, id="no_pipelining"),
    pytest.param("    max-frame-size 1024", {"max_frame_size": 1024}, "pipelining,async", 1024,
                 id="max_frame_size_1024"),
]


@pytest.mark.parametrize("options, ours, capabilities, size", HELLO_CASES)
def test_our_hello_is_haproxys(haproxy_bin, recording_agent, tmp_path, options, ours, capabilities, size):
    recording_agent.hello = agent_hello(max_frame_size=size)
    response = run(haproxy_bin, recording_agent, tmp_path, options=options)
    assert response is not None and response.body == b"err="
    frames = decode_all(recording_agent)
    theirs = frames[0]
    assert isinstance(theirs, HaproxyHello)
    assert (theirs.capabilities, theirs.max_frame_size, theirs.supported_versions) == (capabilities, size, "2.0")
    conn = EngineConnection(**ours)
    mine = decode_frame(conn.initiate())
    assert isinstance(mine, HaproxyHello)
    # Field for field, engine-id aside (HAProxy draws its own UUIDv4).
    strip = lambda hello: [(k, type(v), v) for k, v in hello.items if k != "engine-id"]  # noqa: E731
    assert strip(mine) == strip(theirs)
    assert [k for k, _ in mine.items] == [k for k, _ in theirs.items]
    # Byte for byte once its engine-id is ours.
    assert isinstance(theirs.engine_id, str) and len(theirs.engine_id) == 36
    same_id = EngineConnection(engine_id=theirs.engine_id, **ours)
    assert same_id.initiate() == recording_agent.frames[0].data
    notify = frames[1]
    assert isinstance(notify, Notify)
    assert notify.messages[0].args == (("ip", IPv4Address("127.0.0.1")), ("path", "/some/path"))


def test_healthcheck_hello_is_haproxys(haproxy_bin, recording_agent, tmp_path):
    run(haproxy_bin, recording_agent, tmp_path, check=True)
    received = recording_agent.frames[0]
    theirs = decode_frame(received.data)
    assert isinstance(theirs, HaproxyHello) and theirs.healthcheck and theirs.engine_id is None
    assert EngineConnection(healthcheck=True).initiate() == received.data


def test_the_handshake_haproxy_accepts_we_accept(haproxy_bin, recording_agent, tmp_path):
    """The recording agent's AGENT-HELLO, which HAProxy took (the NOTIFY came),
    completes our handshake too."""
    run(haproxy_bin, recording_agent, tmp_path)
    recording_agent.wait_for(NOTIFY)
    conn = EngineConnection()
    conn.initiate()
    conn.receive_data(recording_agent.hello)
    event = conn.next_event()
    assert isinstance(event, HelloDone) and event.mode == "async"


# --------------------------------------------------------------------------- NOTIFY


def test_decoder_reads_every_type_haproxy_sends(haproxy_bin, recording_agent, tmp_path):
    run(haproxy_bin, recording_agent, tmp_path, messages="all-types")
    notify = next(f for f in decode_all(recording_agent) if isinstance(f, Notify))
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


def test_fragmented_notify_is_ours(haproxy_bin, recording_agent, tmp_path):
    """With ``max-frame-size 256`` and an agent announcing fragmentation, HAProxy
    cuts the NOTIFY (it encodes against its configured size: the agent's answer
    alone is learnt too late for the first request); our reassembly reads it and our splitting gives the same
    frames (the cuts fall inside one long STRING here)."""
    recording_agent.hello = agent_hello(capabilities="pipelining,async,fragmentation", max_frame_size=256)
    big = "b" * 1000
    response = run(haproxy_bin, recording_agent, tmp_path, messages="big", headers=[("X-Big", big)],
                   options="    max-frame-size 256")
    assert response is not None and response.body == b"err="
    received = [r for r in recording_agent.frames if r.type in (NOTIFY, 0)]
    frames = [decode_frame(r.data) for r in received]
    assert len(frames) == 5 and all(isinstance(f, Fragment) for f in frames)
    assert all(len(r.data) - 4 <= 256 for r in received)
    reassembler = Reassembler(1 << 20)
    done = [reassembler.feed(f) for f in frames]  # type: ignore[arg-type]
    assert done[:-1] == [None] * 4 and done[-1] is not None and done[-1].flags == FLAG_FIN
    notify = decode_payload(done[-1].frame_type, done[-1].payload, stream_id=done[-1].stream_id,
                            frame_id=done[-1].frame_id)
    assert isinstance(notify, Notify)
    assert notify.messages[0].args == (("big", big),)
    ours = fragment_notify(done[-1].stream_id, done[-1].frame_id, done[-1].payload, 256)
    assert ours == [r.data for r in received]


# --------------------------------------------------------------------------- refused AGENT-HELLO


def hello_body(payload: bytes, flags: int = FLAG_FIN, ids: tuple[int, int] = (0, 0)) -> bytes:
    return frame(101, payload, ids[0], ids[1], flags)


REFUSED = [
    pytest.param(agent_hello(max_frame_size=20000), 9, id="max_frame_size_too_big"),
    pytest.param(agent_hello(version="2.0.1"), 8, id="version_2_0_1"),
    pytest.param(hello_body(kv_uint32("max-frame-size", 16380) + kv_string("capabilities", "")), 5,
                 id="no_version"),
    pytest.param(hello_body(kv_string("version", "2.0") + kv_string("capabilities", "")), 6,
                 id="no_max_frame_size"),
    pytest.param(hello_body(kv_string("version", "2.0") + kv_uint32("max-frame-size", 16380), flags=0), 10,
                 id="fin_not_set"),
    pytest.param(hello_body(kv_string("version", "2.0") + kv_uint32("max-frame-size", 16380), ids=(1, 0)), 4,
                 id="stream_id_not_zero"),
]


@pytest.mark.parametrize("hello, status", REFUSED)
def test_refused_hello_same_status_as_haproxy(haproxy_bin, recording_agent, tmp_path, hello, status):
    recording_agent.hello = hello
    run(haproxy_bin, recording_agent, tmp_path, processing="150ms")
    disconnect = decode_frame(recording_agent.wait_for(HAPROXY_DISCONNECT)[0].data)
    assert isinstance(disconnect, HaproxyDisconnect)
    assert disconnect.status_code == status
    conn = EngineConnection()
    conn.initiate()
    conn.receive_data(hello)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status == status
    assert conn.disconnect(info.value.status) == recording_agent.of_type(HAPROXY_DISCONNECT)[0].data
