"""Judging an AGENT-HELLO exactly as HAProxy 2.6 does (SPOE.txt §3.2.5).

The rules and status codes are those of ``spoe_handle_agenthello_frame()`` in
HAProxy 2.6's ``flt_spoe.c`` (docs/explanation/haproxy-behaviour.md §1.2), quirks
included, because agents in the field were tested against it:

* keys are matched by prefix (``versionfoo`` counts as ``version``);
* several ``capabilities`` items add up; a later ``version`` or
  ``max-frame-size`` item replaces an earlier one;
* a missing ``capabilities`` item is accepted (status 7 is never sent): the
  connection is then in sync mode;
* the version text is ``MAJOR.MINOR`` with optional surrounding white space,
  a non-zero major and a minor of at most 999; only 2.0 is accepted.

The checks run in two steps, in HAProxy's order: :func:`check_hello_header` on
the raw frame body (type, size, FIN, ids), then :func:`negotiate` on the decoded
:class:`~spoe_sync.protocol.frames.AgentHello`.  One difference is unavoidable:
HAProxy judges items one by one while it reads them, whereas our decoder reads
the whole frame first, so a malformed item *after* a bad version or
max-frame-size gives status 4 here where HAProxy gives 8 or 9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import RemoteProtocolError
from .constants import FLAG_FIN, MIN_FRAME_SIZE, FrameStatus, FrameType
from .frames import AgentHello

__all__ = [
    "SUPPORTED_VERSION",
    "Mode",
    "Negotiated",
    "check_hello_header",
    "negotiate",
    "parse_capabilities",
    "parse_version",
    "select_mode",
]

Mode = Literal["sync", "pipelining", "async"]

#: ``supported_versions`` of HAProxy 2.6: only 2.0 (1.0 was dropped because of
#: a bug about frame flags), as MAJOR * 1000 + MINOR.
SUPPORTED_VERSION = 2000

_VERSION_KEY = "version"
_MAX_FRAME_SIZE_KEY = "max-frame-size"
_CAPABILITIES_KEY = "capabilities"
# isspace() in the C locale.
_SPACES = frozenset(" \t\n\v\f\r")
_CAPABILITIES = ("pipelining", "async", "fragmentation")
_UINT64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What a successful handshake settled for one connection.

    :attr version: the agent's version text as sent.
    :attr max_frame_size: the agent's max-frame-size, now the limit both ways.
    :attr pipelining: both sides allow pipelining.
    :attr async_: both sides allow async.
    :attr fragmentation: the agent can receive fragmented NOTIFY frames.
    :attr mode: ``"async"`` if async was negotiated, else ``"pipelining"`` if
        pipelining was, else ``"sync"``.
    """

    version: str
    max_frame_size: int
    pipelining: bool
    async_: bool
    fragmentation: bool

    @property
    def mode(self) -> Mode:
        return select_mode(pipelining=self.pipelining, async_=self.async_)


def select_mode(*, pipelining: bool, async_: bool) -> Mode:
    """The connection mode after negotiation: async wins over pipelining."""
    if async_:
        return "async"
    if pipelining:
        return "pipelining"
    return "sync"


def _invalid(why: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"invalid AGENT-HELLO: {why}", status=FrameStatus.INVALID)


def check_hello_header(body: bytes) -> None:
    """The checks HAProxy makes on the raw frame before reading its items.

    :param body: the frame without its 4-byte length prefix.
    :raises RemoteProtocolError: status 4 for a type other than AGENT-HELLO,
        fewer than 7 bytes, or non-zero stream-id/frame-id; status 10 when FIN
        is not set (a HELLO cannot be fragmented).
    """
    if not body or body[0] != FrameType.AGENT_HELLO:
        kind = body[0] if body else "nothing"
        raise _invalid(f"expected frame type {int(FrameType.AGENT_HELLO)}, got {kind}")
    if len(body) < 7:
        raise _invalid(f"{len(body)} bytes is shorter than a frame header")
    flags = int.from_bytes(body[1:5], "big")
    if not flags & FLAG_FIN:
        raise RemoteProtocolError("AGENT-HELLO without the FIN flag: a HELLO cannot be fragmented",
                                  status=FrameStatus.FRAG_NOT_SUPPORTED)
    if body[5] != 0 or body[6] != 0:
        raise _invalid("stream-id and frame-id must be 0")


def parse_version(text: str) -> int | None:
    """A SPOP version as ``MAJOR * 1000 + MINOR``, or None when unparsable
    (``spoe_str_to_vsn()``): ``" 2.0 "``, ``"02.0"`` and ``"2.00"`` give 2000;
    ``"2"``, ``"0.5"``, ``"2."``, ``"2.0.1"`` and ``"2.1000"`` give None."""
    pos, end = 0, len(text)
    while pos < end and text[pos] in _SPACES:
        pos += 1
    major_start = pos
    while pos < end and "0" <= text[pos] <= "9":
        pos += 1
    if pos == end or text[pos] != "." or pos == major_start:
        return None
    major = int(text[major_start:pos])
    if not major:
        return None
    pos += 1
    minor_start = pos
    while pos < end and "0" <= text[pos] <= "9":
        pos += 1
    if pos == minor_start:
        return None
    minor = int(text[minor_start:pos])
    if minor > 999:
        return None
    while pos < end and text[pos] in _SPACES:
        pos += 1
    if pos != end:
        return None
    return major * 1000 + minor


def parse_capabilities(text: str) -> frozenset[str]:
    """The known capabilities in a comma-separated list, HAProxy's way: leading
    spaces of a token are skipped, a token counts only if the name is followed by
    the end, a space or a comma, and unknown tokens are ignored."""
    found: set[str] = set()
    rest = text
    while rest:
        rest = rest.lstrip(" \t\n\v\f\r")
        for name in _CAPABILITIES:
            if rest.startswith(name):
                rest = rest[len(name):]
                if not rest or rest[0] in _SPACES or rest[0] == ",":
                    found.add(name)
                break
        comma = rest.find(",")
        if comma < 0:
            break
        rest = rest[comma + 1:]
    return frozenset(found)


def negotiate(hello: AgentHello, *, max_frame_size: int, pipelining: bool = True,
              async_: bool = True, healthcheck: bool = False) -> Negotiated:
    """Judge a decoded AGENT-HELLO against what we announced.

    :param max_frame_size: the max-frame-size of our HAPROXY-HELLO; the agent's
        must be between 256 and it.
    :param pipelining: ``option pipelining`` (kept only if the agent has it too).
    :param async_: ``option async`` (kept only if the agent has it too).
    :param healthcheck: a health check negotiates neither pipelining nor async,
        as in HAProxy (no agent is attached to the check).
    :raises RemoteProtocolError: status 4 (empty key, wrong value type), 8 (bad
        or unsupported version), 9 (max-frame-size out of range), 5 (no version),
        6 (no max-frame-size).
    """
    version: str | None = None
    frame_size = 0
    capabilities: set[str] = set()
    for key, value in hello.items:
        if not key:
            raise _invalid("empty key")
        if key.startswith(_VERSION_KEY):
            if not isinstance(value, str):
                raise _invalid(f"'{key}' is not a STRING")
            vsn = parse_version(value)
            if vsn is None or vsn != SUPPORTED_VERSION:
                raise RemoteProtocolError(f"unsupported SPOP version {value!r} (HAProxy speaks 2.0)",
                                          status=FrameStatus.BAD_VSN)
            version = value
        elif key.startswith(_MAX_FRAME_SIZE_KEY):
            if not isinstance(value, int) or isinstance(value, bool):
                raise _invalid(f"'{key}' is not an integer")
            # The varint is read as a uint64: a negative signed value is huge.
            size = int(value) & _UINT64
            if size < MIN_FRAME_SIZE or size > max_frame_size:
                raise RemoteProtocolError(
                    f"max-frame-size {size} is not between {MIN_FRAME_SIZE} and {max_frame_size}",
                    status=FrameStatus.BAD_FRAME_SIZE)
            frame_size = size
        elif key.startswith(_CAPABILITIES_KEY):
            if not isinstance(value, str):
                raise _invalid(f"'{key}' is not a STRING")
            capabilities |= parse_capabilities(value)
    if version is None:
        raise RemoteProtocolError("AGENT-HELLO without a version", status=FrameStatus.NO_VSN)
    if not frame_size:
        raise RemoteProtocolError("AGENT-HELLO without a max-frame-size",
                                  status=FrameStatus.NO_FRAME_SIZE)
    if healthcheck:
        pipelining = async_ = False
    return Negotiated(
        version=version,
        max_frame_size=frame_size,
        pipelining=pipelining and "pipelining" in capabilities,
        async_=async_ and "async" in capabilities,
        fragmentation="fragmentation" in capabilities,
    )
