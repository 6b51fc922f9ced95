"""What the engine prepares once per configuration: each ``spoe-message`` as a
:class:`PreparedMessage`, its encoder built once (name and arg names
pre-encoded).  (A processing's result is built by ``result._measured``, its
timings made from its marks only when read.)
"""

from __future__ import annotations

from typing import Any

from ..protocol.codec import MessageEncoder

__all__ = ["PreparedMessage", "messages_head"]


class PreparedMessage:
    """One ``spoe-message`` ready for the hot path: its encoder (name and arg
    names pre-encoded), its arg expressions and its condition."""

    __slots__ = ("condition", "encoder", "exprs", "head_size", "name")

    def __init__(self, config: Any) -> None:
        self.name: str = config.name
        self.encoder = MessageEncoder(config.name, [a.name for a in config.args])
        self.exprs = tuple(a.expr for a in config.args)
        self.condition = config.condition
        # name + NB-ARGS: the least of the message that must fit one frame.
        self.head_size = len(MessageEncoder(config.name, ()).encode(()))


def messages_head(messages: tuple[PreparedMessage, ...]) -> int:
    """The bytes of the first message's name and NB-ARGS: if they do not fit a
    frame, even fragmentation cannot send it (docs/explanation/haproxy-behaviour.md §2.4)."""
    return messages[0].head_size if messages else 0
