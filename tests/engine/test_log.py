"""SPOE logging (SPOE.txt §4, behaviour spec §6): the log line field by field, when it
is emitted (pT != -1, not skipped, dontlog-normal, no `log` line = no log), its
notice/warning level, and the `log` destinations of SPOE.txt §2.2: syslog over a real
UDP socket and real unix/abstract datagram sockets in HAProxy 2.6's formats with
PRI, len, level/minlevel and sample, stdout/stderr/fd, and `log global` through
loguru, disabled until the application enables "spoe_sync"."""

from __future__ import annotations

import os
import socket
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from loguru import logger

from spoe_sync.config import load_config
from spoe_sync.config.logsrv import parse_log_target
from spoe_sync.engine import PoolMetrics
from spoe_sync.engine.log import LogCounters, SpoeLog, format_spoe_line
from spoe_sync.engine.result import ProcessingResult, Timings
from spoe_sync.engine.syslog import (
    NOTICE,
    WARNING,
    FdSink,
    StreamSink,
    SyslogSink,
    facility_code,
    format_line,
    level_code,
    make_sink,
)

COUNTERS = LogCounters(idles=1, applets=1, nb_sending=0, nb_waiting=0, nb_errors=0, nb_processed=1)
MSG = "SPOE: [ag] <EVENT:on-frontend-http-request> sid=0 st=0 0/0/0/0/0 1/1 0/0 0/1"
NOW = datetime(2026, 11, 27, 14, 19, 17, 824197, tzinfo=timezone.utc)


# --------------------------------------------------------------------------- the line


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(("iprep", "event", "on-frontend-http-request", 0, 0, Timings(0, 1, 0, 0, 2),
                      LogCounters(1, 1, 0, 0, 0, 1)),
                     "SPOE: [iprep] <EVENT:on-frontend-http-request> sid=0 st=0 0/1/0/0/2 1/1 0/0 0/1",
                     id="observed-haproxy-line"),
        pytest.param(("iprep", "event", "on-frontend-http-request", 7, 1, Timings(0, -1, -1, -1, 500),
                      LogCounters(0, 1, 0, 0, 3, 9)),
                     "SPOE: [iprep] <EVENT:on-frontend-http-request> sid=7 st=1 0/-1/-1/-1/500 0/1 0/0 3/9",
                     id="timeout-while-queued"),
        pytest.param(("a-b", "group", "grp1", 12, 257, Timings(0, 0, 3, -1, 4),
                      LogCounters(2, 3, 4, 5, 6, 7)),
                     "SPOE: [a-b] <GROUP:grp1> sid=12 st=257 0/0/3/-1/4 2/3 4/5 6/7", id="group"),
    ],
)
def test_format_spoe_line(args, line):
    assert format_spoe_line(*args) == line


def test_counters_from_the_pool_metrics():
    pool = PoolMetrics(applets=3, idles=2, nb_sending=1, nb_waiting=4)
    assert LogCounters.from_pool(pool, nb_errors=5, nb_processed=6) == LogCounters(2, 3, 1, 4, 5, 6)


# --------------------------------------------------------------------------- syslog formats


@pytest.mark.parametrize(
    ("fmt", "options", "expected"),
    [
        pytest.param(None, {}, b"<133>Nov 27 14:19:17 haproxy[42]: " + MSG.encode() + b"\n",
                     id="default-local"),
        pytest.param("rfc3164", {}, b"<133>Nov 27 14:19:17 localhost haproxy[42]: " + MSG.encode() + b"\n",
                     id="rfc3164"),
        pytest.param("rfc3164", {"hostname": "web1"},
                     b"<133>Nov 27 14:19:17 web1 haproxy[42]: " + MSG.encode() + b"\n", id="rfc3164-host"),
        pytest.param("rfc5424", {"facility": 19},
                     b"<157>1 2026-11-27T14:19:17.824197+00:00 - haproxy 42 - - " + MSG.encode() + b"\n",
                     id="rfc5424-local3"),
        pytest.param("priority", {}, b"<133>" + MSG.encode() + b"\n", id="priority"),
        pytest.param("short", {}, b"<5>" + MSG.encode() + b"\n", id="short-severity-only"),
        pytest.param("timed", {}, b"<5>2026-11-27T14:19:17.824197+00:00 " + MSG.encode() + b"\n",
                     id="timed"),
        pytest.param("iso", {}, b"2026-11-27T14:19:17.824197+00:00 " + MSG.encode() + b"\n", id="iso"),
        pytest.param("raw", {}, MSG.encode() + b"\n", id="raw"),
        pytest.param("rfc3164", {"maxlen": 80, "pid": 11031},
                     b"<133>Nov 27 14:19:17 localhost haproxy[11031]: SPOE: [ag] <EVENT:on-frontend-htt\n",
                     id="len-80-observed"),
        pytest.param("rfc5424", {"maxlen": 80, "pid": 11031},
                     b"<133>1 2026-11-27T14:19:17.824197+00:00 - haproxy 11031 - - SPOE: [ag] <EVENT:on\n",
                     id="rfc5424-len-80-observed"),
        pytest.param("raw", {"maxlen": 80}, MSG.encode() + b"\n", id="raw-shorter-than-len"),
    ],
)
def test_format_line(fmt, options, expected):
    options = {"facility": 16, "pid": 42, **options}
    got = format_line(MSG, fmt=fmt, severity=NOTICE, tag="haproxy", now=NOW, **options)
    assert got == expected


def test_rfc3164_pads_the_day_and_uses_the_given_offset():
    now = datetime(2026, 3, 7, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=2)))
    assert format_line("m", fmt="rfc3164", facility=1, severity=4, pid=1, tag="t", now=now) == (
        b"<12>Mar  7 01:02:03 localhost t[1]: m\n")
    assert format_line("m", fmt="iso", now=now) == b"2026-03-07T01:02:03.000004+02:00 m\n"


@pytest.mark.parametrize(
    ("call", "value"),
    [
        pytest.param(lambda: facility_code("local3"), 19, id="local3"),
        pytest.param(lambda: facility_code("kern"), 0, id="kern"),
        pytest.param(lambda: facility_code(None), 1, id="default-user"),
        pytest.param(lambda: level_code("notice"), 5, id="notice"),
        pytest.param(lambda: level_code(None), 7, id="default-debug"),
    ],
)
def test_codes(call, value):
    assert call() == value


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: facility_code("local9"), id="facility"),
        pytest.param(lambda: level_code("loud"), id="level"),
        pytest.param(lambda: format_line("m", fmt="json"), id="format"),
        pytest.param(lambda: StreamSink("stdin"), id="stream"),
        pytest.param(lambda: SyslogSink("tcp", "127.0.0.1:1"), id="kind"),
    ],
)
def test_bad_options_raise_valueerror(call):
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- real sockets


def drain(sock: socket.socket, limit: int = 50) -> list[bytes]:
    """Every datagram already queued on ``sock`` (bounded): a loopback sendto()
    has queued its datagram by the time it returns."""
    sock.settimeout(0.05)
    out = []
    for _ in range(limit):
        try:
            out.append(sock.recv(65536))
        except (TimeoutError, BlockingIOError):
            break
    return out


def test_udp_sink_sends_haproxy_datagrams(udp_receiver):
    port = udp_receiver.getsockname()[1]
    target = parse_log_target([f"127.0.0.1:{port}", "len", "200", "format", "rfc5424", "local3", "info"])
    sink = make_sink(target, tag="haproxy")
    try:
        assert sink.emit(MSG, NOTICE) and sink.emit(MSG.replace("st=0", "st=1"), WARNING)
        first, second = udp_receiver.recv(4096), udp_receiver.recv(4096)
    finally:
        sink.close()
    assert first.startswith(b"<157>1 ") and second.startswith(b"<156>1 ")
    assert first.endswith(b" haproxy %d - - %s\n" % (os.getpid(), MSG.encode()))
    assert sink.sent == 2 and sink.dropped == 0


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_udp_sink_over_ipv6():
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        receiver.bind(("::1", 0))
    except OSError:
        receiver.close()
        pytest.skip("::1 is not configured")
    receiver.settimeout(2.0)
    with receiver:
        target = parse_log_target([f"[::1]:{receiver.getsockname()[1]}", "format", "raw", "local0"])
        sink = make_sink(target)
        assert sink.emit("hello", NOTICE)
        assert receiver.recv(100) == b"hello\n"
        sink.close()


def test_unix_datagram_sink(tmp_path):
    path = str(tmp_path / "log.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(2.0)
    with receiver:
        sink = make_sink(parse_log_target([path, "local4"]), tag="haproxy")
        assert sink.emit(MSG, NOTICE)
        data = receiver.recv(4096)
        sink.close()
    assert data.startswith(b"<165>") and data.endswith(b" haproxy[%d]: %s\n" % (os.getpid(), MSG.encode()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_datagram_sink():
    name = f"spoe-sync-test-{os.getpid()}-{time.monotonic_ns()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    receiver.settimeout(2.0)
    with receiver:
        sink = make_sink(parse_log_target([f"abns@{name}", "format", "short", "daemon"]))
        assert sink.emit("x", WARNING)
        assert receiver.recv(100) == b"<4>x\n"
        sink.close()


def test_missing_unix_socket_drops_without_raising(tmp_path):
    sink = SyslogSink("unix", str(tmp_path / "nobody-listens"))
    assert sink.emit(MSG, NOTICE) is False
    assert sink.emit(MSG, NOTICE) is False
    assert sink.dropped == 2 and sink.sent == 0 and "FileNotFoundError" in (sink.last_error or "")


def test_a_full_receiver_never_blocks_the_sender(tmp_path):
    path = str(tmp_path / "full.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    receiver.bind(path)
    with receiver:
        sink = SyslogSink("unix", path, fmt="raw")
        started = time.monotonic()
        for _ in range(5000):  # never read: the socket fills up
            sink.emit("x" * 500, NOTICE)
            if sink.dropped:
                break
        elapsed = time.monotonic() - started
        sink.close()
    assert sink.dropped >= 1 and sink.sent >= 1
    assert elapsed < 2.0


@pytest.mark.parametrize(
    ("level", "minlevel", "severity", "pri"),
    [
        pytest.param("info", None, NOTICE, b"<133>", id="notice-passes-info"),
        pytest.param("warning", None, NOTICE, None, id="notice-dropped-by-warning"),
        pytest.param("warning", None, WARNING, b"<132>", id="warning-passes-warning"),
        pytest.param("debug", "err", NOTICE, b"<133>", id="minlevel-leaves-less-severe"),
        pytest.param("debug", "notice", WARNING, b"<133>", id="minlevel-caps-more-severe"),
    ],
)
def test_level_and_minlevel(udp_receiver, level, minlevel, severity, pri):
    words = [f"127.0.0.1:{udp_receiver.getsockname()[1]}", "format", "priority", "local0", level]
    sink = make_sink(parse_log_target(words + ([minlevel] if minlevel else [])))
    sink.emit("m", severity)
    sink.close()
    got = drain(udp_receiver)
    assert got == ([pri + b"m\n"] if pri else [])


def test_sample_keeps_positions_of_each_cycle(udp_receiver):
    words = [f"127.0.0.1:{udp_receiver.getsockname()[1]}", "format", "raw", "sample", "1-2:4", "local0"]
    sink = make_sink(parse_log_target(words))
    for i in range(1, 9):
        sink.emit(str(i), NOTICE)
    sink.close()
    assert drain(udp_receiver) == [b"1\n", b"2\n", b"5\n", b"6\n"]


@pytest.mark.parametrize("stream", [pytest.param("stdout", id="stdout"), pytest.param("stderr", id="stderr")])
def test_standard_streams(capsys, stream):
    sink = make_sink(parse_log_target([stream, "format", "raw", "local0"]))
    sink.emit(MSG, NOTICE)
    assert getattr(capsys.readouterr(), "out" if stream == "stdout" else "err") == MSG + "\n"


def test_a_missing_standard_stream_drops_without_raising(monkeypatch):
    sink = StreamSink("stdout")
    monkeypatch.setattr(sys, "stdout", None)
    assert sink.emit("m", NOTICE) is False and sink.dropped == 1


def test_fd_sink_writes_to_the_descriptor():
    read_end, write_end = os.pipe()
    try:
        sink = make_sink(parse_log_target([f"fd@{write_end}", "format", "short", "local0"]))
        assert isinstance(sink, FdSink) and sink.emit("m", WARNING)
        assert os.read(read_end, 100) == b"<4>m\n"
    finally:
        os.close(read_end)
        os.close(write_end)
    assert FdSink(write_end).emit("m", WARNING) is False  # closed descriptor: dropped, no raise


# --------------------------------------------------------------------------- SpoeLog


def result(status=0, process=2, skipped=False, kind="event", name="on-frontend-http-request"):
    return ProcessingResult(kind, name, status=status, timings=Timings(0, 1, 0, 0, process),
                            skipped=skipped)


@pytest.mark.parametrize(
    ("dontlog_normal", "res", "pri"),
    [
        pytest.param(False, result(), b"<157>", id="st0-notice"),
        pytest.param(False, result(status=1), b"<156>", id="error-warning"),
        pytest.param(True, result(), None, id="dontlog-normal-drops-st0"),
        pytest.param(True, result(status=257), b"<156>", id="dontlog-normal-keeps-errors"),
        pytest.param(False, result(process=-1), None, id="never-ended"),
        pytest.param(False, result(skipped=True), None, id="skipped"),
        pytest.param(False, result(kind="group", name="grp"), b"<157>", id="group"),
    ],
)
def test_spoe_log_rules(udp_receiver, dontlog_normal, res, pri):
    target = parse_log_target([f"127.0.0.1:{udp_receiver.getsockname()[1]}", "format", "priority",
                               "local3"])
    log = SpoeLog("iprep", [target], dontlog_normal=dontlog_normal)
    line = log.processing(res, 5, COUNTERS)
    log.close()
    got = drain(udp_receiver)
    if pri is None:
        assert line is None and got == []
    else:
        label = "GROUP:grp" if res.kind == "group" else "EVENT:on-frontend-http-request"
        assert line == f"SPOE: [iprep] <{label}> sid=5 st={int(res.status)} 0/1/0/0/{res.timings.process} 1/1 0/0 0/1"
        assert got == [pri + line.encode() + b"\n"]


def test_no_log_line_means_no_log():
    cfg = load_config(SPOE_CONF.replace("    log {log}\n", ""), engine="e")
    log = SpoeLog.from_agent(cfg.agent)
    assert not log.enabled and log.processing(result(status=1), 0, COUNTERS) is None


SPOE_CONF = """\
[e]
spoe-agent iprep
    messages m
    option dontlog-normal
    timeout hello 2s
    timeout idle 30s
    timeout processing 2s
    use-backend agents
    log {log}
spoe-message m
    args ip=src
    event on-frontend-http-request
"""


def test_spoe_log_from_a_loaded_config(udp_receiver):
    port = udp_receiver.getsockname()[1]
    cfg = load_config(SPOE_CONF.format(log=f"127.0.0.1:{port} format raw local0"), engine="e")
    log = SpoeLog.from_agent(cfg.agent)
    assert log.enabled and log.dontlog_normal and not log.log_global
    assert log.processing(result(), 0, COUNTERS) is None
    line = log.processing(result(status=2), 0, COUNTERS)
    log.close()
    assert drain(udp_receiver) == [line.encode() + b"\n"]


@pytest.fixture
def loguru_records():
    records: list = []
    sink_id = logger.add(records.append, level="DEBUG", format="{message}")
    try:
        yield records
    finally:
        logger.disable("spoe_sync")
        logger.remove(sink_id)


def test_log_global_is_silent_until_the_application_enables_spoe_sync(loguru_records):
    log = SpoeLog("iprep", log_global=True)
    assert log.processing(result(), 0, COUNTERS) is not None
    assert loguru_records == []
    logger.enable("spoe_sync")
    ok_line = log.processing(result(), 1, COUNTERS)
    err_line = log.processing(result(status=1), 2, COUNTERS)
    assert [r.record["message"] for r in loguru_records] == [ok_line, err_line]
    assert [r.record["level"].name for r in loguru_records] == ["INFO", "WARNING"]
    extra = loguru_records[1].record["extra"]
    assert extra == {"spoe_agent": "iprep", "spoe_kind": "event",
                     "spoe_name": "on-frontend-http-request", "spoe_status": 1}
    assert all(r.record["name"].startswith("spoe_sync.") for r in loguru_records)


def test_log_global_from_config(loguru_records):
    cfg = load_config(SPOE_CONF.format(log="global").replace("    option dontlog-normal\n", ""),
                      engine="e")
    log = SpoeLog.from_agent(cfg.agent)
    logger.enable("spoe_sync")
    line = log.processing(result(), 3, COUNTERS)
    assert log.log_global and [r.record["message"] for r in loguru_records] == [line]


def test_repr_names_the_destinations(tmp_path):
    log = SpoeLog("a", [SyslogSink("unix", str(tmp_path / "s"))], log_global=True)
    assert "SyslogSink unix" in repr(log) and "loguru" in repr(log)
    assert repr(SpoeLog("a")) == "<SpoeLog [a] -> nowhere>"
