"""Log destinations of a ``spoe-agent`` ``log`` line: syslog and standard streams.

``log <address> [len <length>] [format <format>] <facility> [<level> [<minlevel>]]``
(SPOE.txt §2.2 "log", HAProxy's configuration manual §4.2 "log").  Lines are
built byte for byte as HAProxy 2.6 sends them (observed on the wire, see
tests/conformance/test_log_haproxy.py)::

    (no format)  <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG
    rfc3164      <PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG        HOST defaults to "localhost"
    rfc5424      <PRI>1 ISO-TIME HOST TAG PID - - MSG           HOST defaults to "-"
    priority     <PRI>MSG
    short        <SEVERITY>MSG
    timed        <SEVERITY>ISO-TIME MSG
    iso          ISO-TIME MSG
    raw          MSG

PRI is ``facility * 8 + severity``.  The line is cut to ``len`` bytes (default
1024) and ends with ``"\\n"``.  A ``level`` drops less severe messages; a
``minlevel`` raises more severe ones' severity to it; ``sample <ranges>:<size>``
keeps only the lines whose position in each cycle of ``size`` is in ``ranges``.

Sending never blocks the caller and never raises into it: sockets are
non-blocking gevent sockets, and a datagram the kernel will not take now is
counted in :attr:`LogSink.dropped` and forgotten, as HAProxy does.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from ipaddress import ip_address
from typing import Any, Protocol

from gevent import socket as gsocket

__all__ = [
    "DEFAULT_MAXLEN",
    "FACILITIES",
    "FORMATS",
    "LEVELS",
    "NOTICE",
    "WARNING",
    "FdSink",
    "LogSink",
    "StreamSink",
    "SyslogSink",
    "facility_code",
    "format_line",
    "level_code",
    "make_sink",
]

#: HAProxy's ``log_facilities[]``.
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
              "uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")
#: HAProxy's ``log_levels[]`` (syslog severities 0..7).
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
WARNING = 4
NOTICE = 5
#: ``local`` is what HAProxy uses when no ``format`` is given.
FORMATS = ("local", "rfc3164", "rfc5424", "priority", "short", "timed", "iso", "raw")
#: HAProxy's default ``len``.
DEFAULT_MAXLEN = 1024
SYSLOG_PORT = 514

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def facility_code(facility: str | int | None) -> int:
    """``"local3"`` -> 19.  ``None`` means ``user`` (1).

    :raises ValueError: unknown facility.
    """
    if facility is None:
        return 1
    if isinstance(facility, int):
        if 0 <= facility < len(FACILITIES):
            return facility
        raise ValueError(f"unknown log facility {facility}")
    try:
        return FACILITIES.index(facility.strip().lower())
    except ValueError:
        raise ValueError(f"unknown log facility '{facility}'") from None


def level_code(level: str | int | None, default: int = 7) -> int:
    """``"notice"`` -> 5; ``None`` -> ``default``.

    :raises ValueError: unknown level.
    """
    if level is None:
        return default
    if isinstance(level, int):
        if 0 <= level < len(LEVELS):
            return level
        raise ValueError(f"unknown log level {level}")
    try:
        return LEVELS.index(level.strip().lower())
    except ValueError:
        raise ValueError(f"unknown log level '{level}'") from None


def _iso(now: datetime) -> str:
    return now.isoformat(timespec="microseconds")


def format_line(message: str, *, fmt: str | None = None, facility: int = 1, severity: int = NOTICE,
                maxlen: int = DEFAULT_MAXLEN, tag: str = "spoe_sync", pid: int | None = None,
                hostname: str | None = None, now: datetime | None = None) -> bytes:
    """One log datagram, HAProxy's way (see the module docstring).

    :param now: the time to stamp: aware (printed in its own offset) or naive
        local time; default: now.
    """
    fmt = (fmt or "local").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format '{fmt}'")
    pri = facility * 8 + severity
    pid = os.getpid() if pid is None else pid
    if fmt in ("local", "rfc3164", "rfc5424", "timed", "iso"):
        now = now or datetime.now()
        if now.tzinfo is None:  # local time, with its UTC offset as HAProxy prints it
            now = now.astimezone()
    if fmt in ("local", "rfc3164"):
        assert now is not None
        stamp = f"{_MONTHS[now.month - 1]} {now.day:2d} {now:%H:%M:%S}"
        host = f"{hostname or 'localhost'} " if fmt == "rfc3164" else ""
        head = f"<{pri}>{stamp} {host}{tag}[{pid}]: "
    elif fmt == "rfc5424":
        assert now is not None
        head = f"<{pri}>1 {_iso(now)} {hostname or '-'} {tag} {pid} - - "
    elif fmt == "priority":
        head = f"<{pri}>"
    elif fmt == "short":
        head = f"<{severity}>"
    elif fmt == "timed":
        assert now is not None
        head = f"<{severity}>{_iso(now)} "
    elif fmt == "iso":
        assert now is not None
        head = f"{_iso(now)} "
    else:
        head = ""
    data = (head + message).encode("utf-8", "surrogateescape")
    return data[:max(0, maxlen)] + b"\n"


class _Target(Protocol):
    """What a :class:`spoe_sync.config.LogTarget` provides."""

    kind: str
    address: object
    facility: object
    level: object
    minlevel: object
    format: object
    maxlen: object


class LogSink:
    """One ``log`` destination: formats and delivers, never raises.

    :attr sent: lines delivered; :attr dropped: lines lost (socket full,
        destination missing, ...); :attr last_error: the last delivery error.
    """

    def __init__(self, *, facility: str | int | None = None, level: str | int | None = None,
                 minlevel: str | int | None = None, fmt: str | None = None,
                 maxlen: int | None = None, tag: str = "spoe_sync",
                 hostname: str | None = None, sample: str | None = None) -> None:
        self.facility = facility_code(facility)
        self._sample = _parse_sample(sample) if sample else None
        self._sample_idx = 0
        self.level = level_code(level, 7)
        self.minlevel = level_code(minlevel, 0)
        self.format = (fmt or "local").lower()
        if self.format not in FORMATS:
            raise ValueError(f"unknown log format '{fmt}'")
        self.maxlen = DEFAULT_MAXLEN if not maxlen else int(maxlen)
        self.tag = tag
        self.hostname = hostname
        self.sent = 0
        self.dropped = 0
        self.last_error: str | None = None

    def emit(self, message: str, severity: int) -> bool:
        """Send ``message`` at ``severity`` (0..7) if the level lets it through;
        True when it was delivered."""
        if severity > self.level:
            return False
        if self._sample is not None:
            positions, size = self._sample
            self._sample_idx = self._sample_idx % size + 1
            if self._sample_idx not in positions:
                return False
        severity = max(severity, self.minlevel)
        try:
            data = format_line(message, fmt=self.format, facility=self.facility, severity=severity,
                               maxlen=self.maxlen, tag=self.tag, hostname=self.hostname)
            self._deliver(data)
        except Exception as exc:  # a log line must never break the stream that logs it
            self.dropped += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        self.sent += 1
        return True

    def _deliver(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the destination (idempotent)."""


def _parse_sample(text: str) -> tuple[frozenset[int], int]:
    """``"1-3,7:10"`` -> ({1, 2, 3, 7}, 10): HAProxy's ``sample`` ranges (1-based
    positions in a cycle of ``size`` lines)."""
    ranges, _, size_text = text.partition(":")
    size = int(size_text)
    if size <= 0:
        raise ValueError(f"invalid log sample size in '{text}'")
    positions: set[int] = set()
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        positions.update(range(int(low), int(high or low) + 1))
    return frozenset(positions), size


class StreamSink(LogSink):
    """``log stdout`` / ``log stderr``: one line per message on the process's
    current ``sys.stdout``/``sys.stderr``."""

    def __init__(self, stream: str, **options: object) -> None:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"not a standard stream: {stream!r}")
        super().__init__(**options)  # type: ignore[arg-type]
        self.stream = stream

    def _deliver(self, data: bytes) -> None:
        out = getattr(sys, self.stream)
        out.write(data.decode("utf-8", "replace"))
        out.flush()

    def __repr__(self) -> str:
        return f"<StreamSink {self.stream} {self.format}>"


class FdSink(LogSink):
    """``log fd@<n>``: lines written to an inherited file descriptor.  A write
    that fails (or would block, on a non-blocking descriptor) drops the line."""

    def __init__(self, fd: int | str, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.fd = int(fd)

    def _deliver(self, data: bytes) -> None:
        os.write(self.fd, data)

    def __repr__(self) -> str:
        return f"<FdSink fd@{self.fd} {self.format}>"


def _udp_address(address: object) -> tuple[str, int]:
    """``"127.0.0.1:514"``, ``"udp@host:port"``, ``"[::1]:514"``,
    ``"ipv6@::1:514"`` or ``(host, port)`` -> ``(host, port)``."""
    if isinstance(address, tuple):
        return str(address[0]), int(address[1])
    text = str(address).strip()
    family, at, rest = text.partition("@")
    if at and family in ("udp", "udp4", "udp6", "ipv4", "ipv6"):
        text = rest
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif ":" in text and family in ("udp6", "ipv6"):
        host, _, port = text.rpartition(":")  # HAProxy: the last colon starts the port
    else:
        host, port = text, ""
    return host, int(port) if port else SYSLOG_PORT


def _unix_path(address: object) -> str:
    text = str(address).strip()
    return text[5:] if text.startswith("unix@") else text


class SyslogSink(LogSink):
    """Syslog datagrams over UDP (IPv4/IPv6), a unix datagram socket (e.g.
    ``/dev/log``) or an abstract one (``abns``), through a non-blocking gevent
    socket."""

    def __init__(self, kind: str, address: object, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.kind = kind
        self._sock: gsocket.socket | None = None
        self._dest: Any
        if kind == "unix":
            self._dest = _unix_path(address)
            family = gsocket.AF_UNIX
        elif kind == "abns":
            self._dest = "\0" + str(address)
            family = gsocket.AF_UNIX
        elif kind == "udp":
            host, port = _udp_address(address)
            try:
                family = gsocket.AF_INET6 if ip_address(host).version == 6 else gsocket.AF_INET
                self._dest = (host, port)
            except ValueError:  # a host name: resolved once, as HAProxy does at start-up
                info = gsocket.getaddrinfo(host, port, 0, gsocket.SOCK_DGRAM)[0]
                family, self._dest = info[0], info[4]
        else:
            raise ValueError(f"unknown syslog destination kind {kind!r}")
        self._family = family

    @property
    def destination(self) -> object:
        return self._dest

    def _deliver(self, data: bytes) -> None:
        if self._sock is None:
            sock = gsocket.socket(self._family, gsocket.SOCK_DGRAM)
            sock.setblocking(False)  # gevent raises EAGAIN at once instead of waiting
            self._sock = sock
        self._sock.sendto(data, self._dest)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        return f"<SyslogSink {self.kind} {self._dest!r} {self.format}>"


def make_sink(target: _Target, *, tag: str = "spoe_sync", hostname: str | None = None) -> LogSink:
    """The sink for one :class:`spoe_sync.config.LogTarget`.

    :raises ValueError: unknown kind, facility, level or format, or a UDP host
        name that does not resolve.
    """
    options = {
        "facility": target.facility, "level": target.level, "minlevel": target.minlevel,
        "fmt": target.format, "maxlen": target.maxlen, "tag": tag, "hostname": hostname,
        "sample": getattr(target, "sample", None),
    }
    if target.kind in ("stdout", "stderr"):
        return StreamSink(target.kind, **options)
    if target.kind == "fd":
        return FdSink(str(target.address), **options)
    if target.kind in ("udp", "unix", "abns"):
        try:
            return SyslogSink(target.kind, target.address, **options)
        except OSError as exc:
            raise ValueError(f"log server {target.address!r}: {exc}") from None
    raise ValueError(f"unknown log target kind {target.kind!r}")

