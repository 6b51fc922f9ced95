"""The ``log`` keyword of a ``spoe-agent`` (HAProxy 2.6 ``parse_logsrv()``).

``log global`` | ``no log`` |
``log <target> [len <n>] [format <fmt>] [sample <ranges>:<size>] <facility> [<level> [<minlevel>]]``
(the optional words must come in this order). Messages are HAProxy's, without its
``log : `` prefix, which the caller adds.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import LogTarget

__all__ = ["FACILITIES", "FORMATS", "LEVELS", "LogError", "RingError", "parse_log_target"]

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "auth2", "ftp", "ntp", "audit", "alert", "cron2",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FORMATS = ("local", "rfc3164", "rfc5424", "priority", "short", "timed", "iso", "raw")


class LogError(ValueError):
    """A ``log`` line HAProxy refuses (``str(exc)`` is HAProxy's text)."""


class RingError(LogError):
    """The target is a ring (``ring@name``, ``tcp@addr``): HAProxy only resolves rings
    of haproxy.cfg, at check time; a SPOE file alone never has one."""

    def __init__(self, ring: str) -> None:
        super().__init__(f"uses unknown ring named '{ring}'")
        self.ring = ring


def parse_log_target(args: Sequence[str]) -> LogTarget:
    """Parse the words after ``log`` (not ``global``) into a :class:`LogTarget`.

    ``args[0]`` is the target. The caller handles ``log global`` and ``no log``.
    """
    if len(args) < 2:
        raise LogError("expects <address> and <facility> or global as arguments")
    kind, address = _parse_address(args[0])
    pos = 1
    maxlen = 1024
    fmt = "local"
    sample = None
    if _word(args, pos) == "len":
        value = _word(args, pos + 1)
        number = int(value) if value.isdigit() else 0
        if not 80 <= number <= 65535:
            raise LogError(f"invalid log length '{value}', must be between 80 and 65535")
        maxlen = number
        pos += 2
    if _word(args, pos) == "format":
        value = _word(args, pos + 1)
        if value not in FORMATS:
            raise LogError(f"unknown log format '{value}'")
        fmt = value
        pos += 2
    if _word(args, pos) == "sample":
        sample = _word(args, pos + 1)
        _check_sample(sample)
        pos += 2
    facility = _word(args, pos)
    if facility not in FACILITIES:
        raise LogError(f"unknown log facility '{facility}'")
    level = _word(args, pos + 1) or None
    if level is not None and level not in LEVELS:
        raise LogError(f"unknown optional log level '{level}'")
    minlevel = _word(args, pos + 2) or None
    if minlevel is not None and minlevel not in LEVELS:
        raise LogError(f"unknown optional minimum log level '{minlevel}'")
    extra = _word(args, pos + 3)
    if extra:
        raise LogError(f"cannot handle unexpected argument '{extra}'")
    return LogTarget(kind, address, facility, level, minlevel, fmt, maxlen, sample)


def _word(args: Sequence[str], i: int) -> str:
    return args[i] if i < len(args) else ""


def _check_sample(text: str) -> None:
    ranges, sep, size = text.partition(":")
    if not sep:
        raise LogError("Missing sample size")
    if not size.isdigit() or int(size) == 0:
        raise LogError(f"Invalid sample size '{size}'")
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise LogError(f"Invalid sample range '{part}'")


def _parse_address(text: str) -> tuple[str, str | None]:
    """HAProxy's ``str2sa_range()`` as used by ``log`` (datagram targets)."""
    if text in ("stdout", "stderr"):
        return text, None
    prefix, at, rest = text.partition("@")
    if not at:
        prefix, rest = "", text
    if prefix == "fd":
        if rest == "1":
            return "stdout", None
        if rest == "2":
            return "stderr", None
        if not rest.isdigit():
            raise LogError(f"invalid file descriptor '{rest}'")
        return "fd", rest
    if prefix == "unix" or (not prefix and rest.startswith("/")):
        if not rest:
            raise LogError(f"invalid address: '{text}'")
        return "unix", rest
    if prefix == "abns":
        return "abns", rest
    if prefix in ("ring", "tcp", "tcp4", "tcp6"):
        # HAProxy resolves rings when the whole configuration is checked; a SPOE
        # agent can only name rings of haproxy.cfg, which spoe_sync does not have.
        raise RingError(rest if prefix == "ring" else "ring#1")
    if prefix not in ("", "udp", "udp4", "udp6", "ipv4", "ipv6"):
        raise LogError(f"unknown address family '{prefix}' in '{text}'")
    host, port = _split_host_port(rest, text)
    return "udp", f"{host}:{port}"


def _split_host_port(rest: str, text: str) -> tuple[str, int]:
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise LogError(f"invalid address: '{rest}' in '{text}'")
        host, tail = rest[1:close], rest[close + 1 :]
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise LogError(f"invalid address: '{rest}' in '{text}'")
        host = f"[{host}]"
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            host, port_text = rest, ""
    if not host or host.endswith(":") or host.startswith(":"):
        raise LogError(f"invalid address: '{host or rest}' in '{text}'")
    if "-" in port_text:
        raise LogError(f"port range not permitted here in '{text}'")
    if not port_text:
        return host, 514
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LogError(f"invalid port '{port_text}'")
    return host, int(port_text)
