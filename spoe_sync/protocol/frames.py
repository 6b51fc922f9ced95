"""SPOP frames as frozen dataclasses (SPOE.txt §3.2).

These are what :func:`spoe_sync.protocol.encode_frame` takes and
:func:`spoe_sync.protocol.decode_frame` returns; no construct ``Container`` ever
leaves the codec.  They check structure only: an :class:`AgentHello` without a
version is a valid *frame*; the sans-IO connection judges its meaning.

Every frame carries its header fields (``flags``, ``stream_id``, ``frame_id``) so
that a frame with odd metadata (a HELLO without FIN, with non-zero ids) can be
decoded and then judged.

KV-list frames (the HELLOs and DISCONNECTs) keep their items in wire order in
``items``, which makes decoding lossless: re-encoding a decoded frame gives the
same bytes.  Their ``make()`` class methods build them the way HAProxy 2.6 does,
and their properties read the usual keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar, Union

from .constants import (
    DEFAULT_MAX_FRAME_SIZE,
    FLAG_ABORT,
    FLAG_FIN,
    SPOP_VERSION,
    FrameType,
    VarScope,
    frame_status_reason,
)
from .trusted import trusted_constructor
from .values import UInt32, Value

__all__ = [
    "KV",
    "Ack",
    "Action",
    "AgentDisconnect",
    "AgentHello",
    "Fragment",
    "Frame",
    "HaproxyDisconnect",
    "HaproxyHello",
    "Message",
    "Notify",
    "SetVar",
    "UnknownFrame",
    "UnsetVar",
]

KV = tuple[str, Value]


def _lookup(items: tuple[KV, ...], key: str) -> Value:
    """The value of the first item named exactly ``key`` (None when absent)."""
    for name, value in items:
        if name == key:
            return value
    return None


class _FrameBase:
    """Header helpers shared by every frame class."""

    __slots__ = ()
    TYPE: ClassVar[FrameType]
    flags: int

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    @property
    def abort(self) -> bool:
        return bool(self.flags & FLAG_ABORT)


# --------------------------------------------------------------------------- payload parts


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a NOTIFY: a name and its arguments in declaration order.

    ``args`` is a tuple of ``(name, value)`` pairs; names may repeat and may be
    empty (an unnamed arg is sent with a zero-length name).  At most 255 args
    (NB-ARGS is one byte).
    """

    name: str
    args: tuple[KV, ...] = ()

    def get(self, name: str, default: Value = None) -> Value:
        """The value of the first arg called ``name``."""
        for key, value in self.args:
            if key == name:
                return value
        return default


@trusted_constructor
@dataclass(frozen=True, slots=True)
class SetVar:
    """ACK action set-var (type 1, 3 args): scope, name, value."""

    _trusted: ClassVar[Callable[..., SetVar]]  # the decoder's (see .trusted)
    scope: VarScope
    name: str
    value: Value


@trusted_constructor
@dataclass(frozen=True, slots=True)
class UnsetVar:
    """ACK action unset-var (type 2, 2 args): scope, name."""

    _trusted: ClassVar[Callable[..., UnsetVar]]
    scope: VarScope
    name: str


Action = Union[SetVar, UnsetVar]


# --------------------------------------------------------------------------- KV frames


@dataclass(frozen=True, slots=True)
class _KVFrame(_FrameBase):
    """The frames made of a KV-LIST, on stream 0 (SPOE.txt §3.2.4-§3.2.9)."""

    items: tuple[KV, ...] = ()
    flags: int = FLAG_FIN
    stream_id: int = 0
    frame_id: int = 0


@dataclass(frozen=True, slots=True)
class _Hello(_KVFrame):
    @property
    def max_frame_size(self) -> Value:
        return _lookup(self.items, "max-frame-size")

    @property
    def capabilities(self) -> Value:
        return _lookup(self.items, "capabilities")


@dataclass(frozen=True, slots=True)
class HaproxyHello(_Hello):
    """HAPROXY-HELLO (type 1), SPOE.txt §3.2.4."""

    TYPE: ClassVar[FrameType] = FrameType.HAPROXY_HELLO

    @classmethod
    def make(
        cls,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        capabilities: str = "pipelining,async",
        engine_id: str | None = None,
        healthcheck: bool = False,
        supported_versions: str = SPOP_VERSION,
    ) -> HaproxyHello:
        """Build the frame exactly as HAProxy 2.6 does (key order, UINT32
        max-frame-size; ``engine-id`` only outside checks, ``healthcheck`` only in
        checks)."""
        items: list[KV] = [
            ("supported-versions", supported_versions),
            ("max-frame-size", UInt32(max_frame_size)),
            ("capabilities", capabilities),
        ]
        if engine_id is not None:
            items.append(("engine-id", engine_id))
        if healthcheck:
            items.append(("healthcheck", True))
        return cls(tuple(items))

    @property
    def supported_versions(self) -> Value:
        return _lookup(self.items, "supported-versions")

    @property
    def engine_id(self) -> Value:
        return _lookup(self.items, "engine-id")

    @property
    def healthcheck(self) -> bool:
        return _lookup(self.items, "healthcheck") is True


@dataclass(frozen=True, slots=True)
class AgentHello(_Hello):
    """AGENT-HELLO (type 101), SPOE.txt §3.2.5.  The properties return ``None``
    for an absent key and the value as received otherwise (it may have the wrong
    type: judging it is the connection's job)."""

    TYPE: ClassVar[FrameType] = FrameType.AGENT_HELLO

    @classmethod
    def make(
        cls,
        *,
        version: str = SPOP_VERSION,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        capabilities: str = "",
    ) -> AgentHello:
        return cls((("version", version), ("max-frame-size", UInt32(max_frame_size)),
                    ("capabilities", capabilities)))

    @property
    def version(self) -> Value:
        return _lookup(self.items, "version")


_D = TypeVar("_D", bound="_Disconnect")


@dataclass(frozen=True, slots=True)
class _Disconnect(_KVFrame):

    @classmethod
    def make(cls: type[_D], status_code: int = 0, message: str | None = None) -> _D:
        """``message`` defaults to HAProxy's reason text for the code."""
        text = frame_status_reason(status_code) if message is None else message
        return cls((("status-code", UInt32(status_code)), ("message", text)))

    @property
    def status_code(self) -> Value:
        return _lookup(self.items, "status-code")

    @property
    def message(self) -> Value:
        return _lookup(self.items, "message")


@dataclass(frozen=True, slots=True)
class HaproxyDisconnect(_Disconnect):
    """HAPROXY-DISCONNECT (type 2), SPOE.txt §3.2.8."""

    TYPE: ClassVar[FrameType] = FrameType.HAPROXY_DISCONNECT


@dataclass(frozen=True, slots=True)
class AgentDisconnect(_Disconnect):
    """AGENT-DISCONNECT (type 102), SPOE.txt §3.2.9."""

    TYPE: ClassVar[FrameType] = FrameType.AGENT_DISCONNECT


# --------------------------------------------------------------------------- NOTIFY / ACK


@dataclass(frozen=True, slots=True)
class Notify(_FrameBase):
    """NOTIFY (type 3), SPOE.txt §3.2.6: the messages of one event or group."""

    TYPE: ClassVar[FrameType] = FrameType.NOTIFY
    stream_id: int
    frame_id: int
    messages: tuple[Message, ...] = ()
    flags: int = FLAG_FIN


@trusted_constructor
@dataclass(frozen=True, slots=True)
class Ack(_FrameBase):
    """ACK (type 103), SPOE.txt §3.2.7.

    ``truncated`` is true when the action list turned malformed part-way: as in
    HAProxy (``spoe_process_actions``), the actions before the first malformed one
    are kept in ``actions`` and the rest of the payload is dropped.

    ``undecoded`` counts the bytes of the action list left undecoded because the
    decoder was given a bound on the actions (``max_actions``, the connection's
    ``max_ack_actions``) and the ACK carried more: ``actions`` holds the first
    ones and the rest was never looked at (0: nothing was left).
    """

    TYPE: ClassVar[FrameType] = FrameType.ACK
    _trusted: ClassVar[Callable[..., Ack]]  # the decoder's (see .trusted)
    stream_id: int
    frame_id: int
    actions: tuple[Action, ...] = ()
    flags: int = FLAG_FIN
    truncated: bool = False
    undecoded: int = 0


# --------------------------------------------------------------------------- raw frames


@dataclass(frozen=True, slots=True)
class Fragment(_FrameBase):
    """A frame whose payload is one piece of a fragmented payload (SPOE.txt §3.2):
    either the first frame (typed NOTIFY/ACK, FIN clear) or a continuation
    (type 0 UNSET).  ``payload`` is the raw bytes; the connection reassembles them
    and decodes the whole with :func:`spoe_sync.protocol.decode_payload`.
    ``frame_type`` is the type byte as sent."""

    TYPE: ClassVar[FrameType] = FrameType.UNSET
    frame_type: int
    stream_id: int
    frame_id: int
    payload: bytes = b""
    flags: int = 0


@dataclass(frozen=True, slots=True)
class UnknownFrame(_FrameBase):
    """A frame of a type SPOP does not define (SPOE.txt §3.2.2: "Unknown frames
    may be silently skipped").  Kept raw."""

    TYPE: ClassVar[FrameType] = FrameType.UNSET
    frame_type: int
    stream_id: int
    frame_id: int
    payload: bytes = b""
    flags: int = FLAG_FIN


Frame = Union[HaproxyHello, AgentHello, HaproxyDisconnect, AgentDisconnect, Notify, Ack,
              Fragment, UnknownFrame]
