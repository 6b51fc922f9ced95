"""SPOE log lines against HAProxy 2.6 (SPOE.txt §4, behaviour spec §6): HAProxy sends
its SPOE log to UDP listeners in every `format`, and spoe_sync must build the same
datagram byte for byte (given HAProxy's pid and timestamp) and the same line field by
field, at notice for st=0 and warning for an error (a processing timeout)."""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest

from spoe_sync.config import load_config
from spoe_sync.engine.log import LogCounters, format_spoe_line
from spoe_sync.engine.result import Timings
from spoe_sync.engine.syslog import NOTICE, WARNING, facility_code, format_line, make_sink
from tests.kit import free_port

from . import cfgkit
from .cfgkit import spoe_line_fields, udp_receiver
from .harness import http_request, run_haproxy

# (format words as written in the log line, format name for spoe_sync, facility, len)
TARGETS = [
    ("", None, "local0", 1024),
    ("len 200 format rfc5424", "rfc5424", "local3", 200),
    ("len 80 format rfc3164", "rfc3164", "local1", 80),
    ("format short", "short", "local2", 1024),
    ("format timed", "timed", "local4", 1024),
    ("format iso", "iso", "local5", 1024),
    ("format priority", "priority", "local6", 1024),
    ("format raw", "raw", "local7", 1024),
]

ISO_RE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d")
BSD_RE = re.compile(rb"^<\d+>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ")
PID_RE = re.compile(rb"haproxy\[(\d+)\]|haproxy (\d+) ")


def spoe_conf(ports: list[int], processing: str) -> str:
    logs = "".join(f"    log 127.0.0.1:{port} {words} {facility} info\n"
                   for port, (words, _, facility, _) in zip(ports, TARGETS))
    return f"""\
[e]
spoe-agent iprep
    messages m
    timeout hello 2s
    timeout idle 30s
    timeout processing {processing}
    use-backend agents
{logs}spoe-message m
    args ip=src
    event on-frontend-http-request
"""


def haproxy_cfg(http_port: int, agent_port: int) -> str:
    return cfgkit.haproxy_cfg(http_port, "filter spoe engine e config spoe.conf",
                              'http-request return status 200 content-type text/plain lf-string "ok"',
                              agent_port=agent_port)


def stamp_of(datagram: bytes) -> datetime | None:
    iso = ISO_RE.search(datagram)
    if iso:
        return datetime.fromisoformat(iso.group().decode())
    bsd = BSD_RE.match(datagram)
    if bsd:
        return datetime.strptime(f"{datetime.now().year} {bsd.group(1).decode()}", "%Y %b %d %H:%M:%S")
    return None


@pytest.fixture
def receivers():
    socks = [udp_receiver() for _ in TARGETS]
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    ("processing", "ack_delay", "status", "severity"),
    [
        pytest.param("2s", 0.0, 0, NOTICE, id="st0-notice"),
        pytest.param("100ms", 0.4, 1, WARNING, id="timeout-warning"),
    ],
)
def test_spoe_log_datagrams_match_haproxy(haproxy_bin, recording_agent, receivers, tmp_path,
                                           processing, ack_delay, status, severity):
    recording_agent.ack_payload = lambda _f: (time.sleep(ack_delay), b"")[1]
    ports = [s.getsockname()[1] for s in receivers]
    port = free_port()
    conf = spoe_conf(ports, processing)
    with run_haproxy(haproxy_bin, haproxy_cfg(port, recording_agent.port), tmp_path,
                     files={"spoe.conf": conf}, ready_port=port):
        assert http_request(port).status == 200
        datagrams = [s.recv(65536) for s in receivers]

    line = datagrams[-1].decode().rstrip("\n")  # format raw: the bare line
    fields = spoe_line_fields(line)
    assert (fields["agent"], fields["kind"], fields["name"], int(fields["st"])) == (
        "iprep", "EVENT", "on-frontend-http-request", status)
    ours = format_spoe_line(
        fields["agent"], "event", fields["name"], int(fields["sid"]), int(fields["st"]),
        Timings(*(int(x) for x in fields["t"].split("/"))),
        LogCounters(*(int(fields[k]) for k in ("idles", "applets", "sending", "waiting", "errors",
                                                 "processed"))))
    assert ours == line

    for (_, fmt, facility, maxlen), datagram in zip(TARGETS, datagrams):
        pid = next((int(a or b) for a, b in PID_RE.findall(datagram)), 0)
        built = format_line(line, fmt=fmt, facility=facility_code(facility), severity=severity,
                            maxlen=maxlen, tag="haproxy", pid=pid, now=stamp_of(datagram))
        assert built == datagram, fmt

    # The same file through spoe_sync's config layer: every explicit format matches.
    agent = load_config(conf, engine="e").agent
    for target, datagram, (words, *_) in zip(agent.logs, datagrams, TARGETS):
        sink = make_sink(target, tag="haproxy")
        pid = next((int(a or b) for a, b in PID_RE.findall(datagram)), 0)
        built = format_line(line, fmt=sink.format, facility=sink.facility, severity=severity,
                            maxlen=sink.maxlen, tag="haproxy", pid=pid, now=stamp_of(datagram))
        if words:
            assert built == datagram, words


def test_a_log_line_without_format_keeps_haproxys_default_header():
    agent = load_config(spoe_conf([514] * len(TARGETS), "2s"), engine="e").agent
    assert make_sink(agent.logs[0]).format == "local"
