"""What the conformance tests share besides the harness: the haproxy.cfg every
HAProxy run starts from (one thread, so that events come in a fixed order; the
same timeouts everywhere), the backend of the agent, and the SPOE log line
(SPOE.txt §4) as HAProxy prints it, with UDP sockets to receive it."""

from __future__ import annotations

import re
import socket

__all__ = ["SPOE_LINE_RE", "agents_backend", "haproxy_cfg", "head", "section", "spoe_line_fields",
           "udp_receiver"]

#: One SPOE log line, field by field (docs/explanation/haproxy-behaviour.md §6).
SPOE_LINE_RE = re.compile(
    r"SPOE: \[(?P<agent>[^\]]+)\] <(?P<kind>EVENT|GROUP):(?P<name>[^>]+)> sid=(?P<sid>\d+) "
    r"st=(?P<st>\d+) (?P<t>-?\d+/-?\d+/-?\d+/-?\d+/-?\d+) (?P<idles>\d+)/(?P<applets>\d+) "
    r"(?P<sending>\d+)/(?P<waiting>\d+) (?P<errors>\d+)/(?P<processed>\d+)$")


def head(mode: str = "http") -> str:
    """``global`` and ``defaults``: one thread, connect 2 s, client and server 5 s."""
    return ("global\n    nbthread 1\n"
            f"defaults\n    mode {mode}\n    timeout connect 2s\n    timeout client 5s\n"
            "    timeout server 5s\n")


def section(title: str, *lines: str) -> str:
    """``title`` then each line indented by four spaces."""
    return title + "\n" + "".join(f"    {line}\n" for line in lines)


def agents_backend(agent_port: int) -> str:
    """The ``agents`` backend the SPOE files' ``use-backend agents`` names."""
    return section("backend agents", "mode tcp", f"server a1 127.0.0.1:{agent_port}")


def haproxy_cfg(port: int, *frontend: str, agent_port: int | None = None, mode: str = "http",
                name: str = "fe", tail: str = "") -> str:
    """:func:`head`, a frontend bound on 127.0.0.1:``port`` with the ``frontend``
    lines, ``tail`` (more sections), then the agents' backend on ``agent_port``."""
    cfg = head(mode) + section(f"frontend {name}", f"bind 127.0.0.1:{port}", *frontend) + tail
    if agent_port is not None:
        cfg += agents_backend(agent_port)
    return cfg


def spoe_line_fields(line: bytes | str) -> dict[str, str]:
    """The fields of a SPOE log line (a ``format raw`` datagram, or the bare line)."""
    text = line.decode() if isinstance(line, bytes) else line
    match = SPOE_LINE_RE.match(text.rstrip("\n"))
    assert match, line
    return match.groupdict()


def udp_receiver(timeout: float = 3.0) -> socket.socket:
    """A UDP socket on 127.0.0.1:0 for a ``log`` line to send to, reads bounded by ``timeout``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(timeout)
    return sock
