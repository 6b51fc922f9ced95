"""The TCP proxy against HAProxy 2.6 ``mode tcp`` on random payloads (issue 13, item 3).

A seeded generator makes the first bytes a client sends: random bytes, TLS ClientHellos made by
OpenSSL (with and without SNI and ALPN, TLS 1.2 and 1.3 ceilings), the same cut short at random,
HTTP/1.x request heads and near misses, the HTTP fuzz tier's nasty requests whole and cut.  Each payload goes, byte for byte, through HAProxy
(``tcp-request content send-spoe-group ... if { req.len gt 0 }`` then ``reject``) and through
:class:`spoe_sync.proxy.TCPProxy` with the same SPOE file and rules; the recording agent must get
the same arguments, type and value, for every payload fetch the proxy serves (``req.payload``,
``req.len``, ``req.ssl_*``, ``req.proto_http``).

The default run is small and seeded (CI); ``SPOE_SYNC_FUZZ_TCP_N=2000
SPOE_SYNC_FUZZ_TCP_SEED=7 pytest tests/conformance/test_fuzz_tcp_haproxy.py`` runs more.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
from pathlib import Path
from typing import Any

import gevent
import pytest

from spoe_sync.protocol import decode_frame
from spoe_sync.proxy import TCPProxy
from tests.kit import free_port, make_engine

from . import cfgkit
from .fuzz.generator import generate
from .harness import NOTIFY, RecordingAgent, run_haproxy
from .test_rules_args_haproxy import _typed, spoe_conf

pytestmark = pytest.mark.timeout(300)

SEED = int(os.environ.get("SPOE_SYNC_FUZZ_TCP_SEED", "20261205"))
COUNT = int(os.environ.get("SPOE_SYNC_FUZZ_TCP_N", "80"))

ARGS = [("len", "req.len"), ("head", "req.payload(0,8)"), ("mid", "req.payload(5,16)"),
        ("all", "req.payload(0,0)"), ("hello", "req.ssl_hello_type"), ("ver", "req.ssl_ver"),
        ("sni", "req.ssl_sni"), ("alpn", "req.ssl_alpn"), ("ec", "req.ssl_ec_ext"),
        ("st", "req.ssl_st_ext"), ("http", "req.proto_http")]
RULES = ["send-spoe-group conf grp if { req.len gt 0 }", "reject"]


def client_hello(rng: random.Random) -> bytes:
    """A real ClientHello, as OpenSSL writes it, for a random SNI, ALPN and TLS ceiling."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if rng.random() < 0.4:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if rng.random() < 0.5:
        context.set_alpn_protocols(rng.sample(["h2", "http/1.1", "spdy/3", "x" * 20], 2))
    sni = rng.choice([None, "example.com", "a.b.c.d.example", "x" * 60, "Mixed.Case.Test"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def payloads(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.35:
            data = client_hello(rng)
        elif kind < 0.55:
            data = client_hello(rng)
            data = data[:rng.randrange(1, len(data))]
        elif kind < 0.62:  # the HTTP fuzz tier's nasty requests, whole or cut
            data = generate(rng.randrange(1 << 30), 1)[0].raw
            if rng.random() < 0.3:
                data = data[:rng.randrange(1, len(data) + 1)]
        elif kind < 0.7:
            method = rng.choice([b"GET", b"POST", b"HEAD", b"OPTIONS", b"BREW", b"get"])
            version = rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1", b""])
            data = method + b" /" + rng.randbytes(rng.randrange(0, 8)).hex().encode() + b" " \
                + version + rng.choice([b"\r\nHost: x\r\n\r\n", b"\r\n", b"\n", b""])
        elif kind < 0.8:  # a TLS record header with random contents
            data = bytes([rng.choice([0x16, 0x15, 0x17, 0x80]), 3, rng.randrange(0, 5)]) \
                + rng.randbytes(rng.randrange(0, 200))
        else:
            data = rng.randbytes(rng.randrange(1, 300))
        out.append(data)
    return out


def _send(port: int, data: bytes) -> None:
    """One blocking client: the payload, then wait for the reject (run in the thread pool: the
    agent's peer, our proxy, lives in this process's hub)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        try:
            for _ in range(100):
                if not sock.recv(4096):
                    break
        except OSError:
            pass


def _collect(agent: RecordingAgent, port: int, cases: list[bytes]) -> list[Any]:
    seen = []
    for i, data in enumerate(cases):
        gevent.get_hub().threadpool.apply(_send, (port, data))
        frame = decode_frame(agent.wait_for(NOTIFY, i + 1)[i].data)
        seen.append(_typed(list(frame.messages[0].args)))
    return seen


def test_the_proxy_sends_what_haproxy_sends_for_random_payloads(haproxy_bin: str,
                                                                  tmp_path: Path) -> None:
    cases = payloads(SEED, COUNT)
    conf = spoe_conf(ARGS).replace("    event on-frontend-http-request\n", "")
    port = free_port()
    with RecordingAgent() as agent:
        cfg = cfgkit.haproxy_cfg(
            port, "tcp-request inspect-delay 2s", "filter spoe engine conf config spoe.conf",
            *(f"tcp-request content {rule}" for rule in RULES),
            mode="tcp", name="ft", agent_port=agent.port)
        with run_haproxy(haproxy_bin, cfg, tmp_path / "haproxy", files={"spoe.conf": conf},
                         ready_port=port):
            theirs = _collect(agent, port, cases)
    with RecordingAgent() as agent:
        engine = make_engine(conf, "conf", agent.address)
        proxy = TCPProxy(("127.0.0.1", 0), "127.0.0.1:9", engines=[engine],
                         tcp_request=[f"content {rule}" for rule in RULES], inspect_delay=2.0)
        proxy.start()
        try:
            ours = _collect(agent, proxy.server_port, cases)
        finally:
            proxy.stop()
            engine.close()
    mismatches = [(i, cases[i][:64], {n: (t, v) for n, t, v in a},
                   {n: (t, v) for n, t, v in b})
                  for i, (a, b) in enumerate(zip(theirs, ours)) if a != b]
    report = "\n".join(
        f"payload {i} {head!r}...: " + ", ".join(
            f"{name}: HAProxy {h.get(name)} ours {o.get(name)}"
            for name in sorted(set(h) | set(o)) if h.get(name) != o.get(name))
        for i, head, h, o in mismatches[:20])
    assert not mismatches, f"{len(mismatches)} of {len(cases)} payloads differ:\n{report}"
