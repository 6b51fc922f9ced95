"""Events of the sans-IO connection (what ``EngineConnection.next_event()`` returns).

Frozen dataclasses in h11's style, plus the ``NEED_DATA`` sentinel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from .frames import Ack, AgentHello
from .hello import Mode
from .trusted import trusted_constructor

__all__ = ["NEED_DATA", "AckReceived", "AgentDisconnected", "ConnectionClosed", "Event", "HelloDone"]


class _Sentinel(type):
    """Metaclass of sentinels: the class is its own instance, so that
    ``type(NEED_DATA) is NEED_DATA`` and its repr is its name (as in h11)."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _Sentinel:
        cls = super().__new__(mcs, name, bases, namespace)
        cls.__class__ = cls  # type: ignore[assignment]
        return cls

    def __repr__(cls) -> str:
        return cls.__name__


class NEED_DATA(_Sentinel, metaclass=_Sentinel):
    """No whole frame is buffered: read from the socket and call ``receive_data``."""


@dataclass(frozen=True, slots=True)
class HelloDone:
    """The agent's AGENT-HELLO was accepted; the connection is ready.

    :attr hello: the frame as received.
    :attr mode: ``"sync"``, ``"pipelining"`` or ``"async"``.
    :attr max_frame_size: the negotiated frame size, the limit both ways from now.
    :attr fragmentation: the agent can receive fragmented NOTIFY frames.
    """

    hello: AgentHello
    mode: Mode
    max_frame_size: int
    fragmentation: bool


@trusted_constructor
@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK arrived (put together first if the agent sent it in fragments).

    :attr ack: the frame; ``ack.actions`` are the actions to apply.
    :attr matched: it answers a NOTIFY sent on this connection, which is no
        longer waiting.  Only async connections report unmatched ACKs: the
        engine matches those across its connections (SPOE.txt §3.2.1 "async").
    :attr fragmented: the NOTIFY it answers was sent in fragments.
    :attr aborted: the agent aborted the processing (ABORT on the ACK of a
        fragmented NOTIFY, or an aborted fragmented ACK): the stream fails with
        status 4 and no action applies.  ABORT on an ordinary ACK is ignored, as
        in HAProxy (docs/explanation/haproxy-behaviour.md §2.3).
    """

    _trusted: ClassVar[Callable[..., AckReceived]]  # one per ACK: see .trusted
    ack: Ack
    matched: bool = True
    fragmented: bool = False
    aborted: bool = False


@dataclass(frozen=True, slots=True)
class AgentDisconnected:
    """The agent sent AGENT-DISCONNECT (SPOE.txt §3.2.9): close the socket; no
    HAPROXY-DISCONNECT is due in reply (HAProxy sends none).

    :attr status_code: the agent's code; None when its frame had none or could
        not be read.
    :attr message: the agent's text, None when absent.
    """

    status_code: int | None
    message: str | None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Nothing more will come from the agent: it closed (EOF) or the
    conversation is over.  Close the socket.

    :attr partial: bytes of an incomplete frame left unread at EOF.
    """

    partial: int = 0


Event = Union[HelloDone, AckReceived, AgentDisconnected, ConnectionClosed]
