"""The immutable result of loading a SPOE configuration (SPOE.txt §2).

Times are in seconds (``None`` = not set, HAProxy's "eternity"); every object keeps
the file and line it was declared at, so later layers can report ``[file:line]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..protocol.constants import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_WAITING_FRAMES

if TYPE_CHECKING:  # the rules layer is below us; only its types are named here
    from ..rules import Condition, SampleExpr

__all__ = [
    "EVENTS",
    "AgentConfig",
    "ArgConfig",
    "GroupConfig",
    "LogTarget",
    "MessageConfig",
    "SpoeConfig",
    "Timeouts",
]

#: The eight SPOE events, in HAProxy's order (SPOE.txt §2.3).
EVENTS: tuple[str, ...] = (
    "on-client-session",
    "on-server-session",
    "on-frontend-tcp-request",
    "on-backend-tcp-request",
    "on-tcp-response",
    "on-frontend-http-request",
    "on-backend-http-request",
    "on-http-response",
)


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@dataclass(frozen=True)
class Timeouts:
    """``timeout hello|idle|processing`` of a ``spoe-agent``, in seconds (``None`` = unset)."""

    hello: float | None = None
    idle: float | None = None
    processing: float | None = None


@dataclass(frozen=True)
class LogTarget:
    """One ``log`` line of a ``spoe-agent`` (HAProxy's proxy ``log`` syntax).

    :attr kind: ``"udp"`` (syslog over UDP, ``address`` is ``host:port``), ``"unix"``
        (datagram socket path), ``"stdout"``, ``"stderr"``, or ``"fd"`` (``address`` is
        the descriptor number) / ``"abns"`` (abstract socket name).
    :attr format: ``local`` (HAProxy 2.6's default: RFC3164 without the hostname),
        ``rfc3164``, ``rfc5424``, ``raw``, ``short``, ...
    :attr maxlen: ``len N`` (HAProxy's default 1024).
    """

    kind: str
    address: str | None
    facility: str
    level: str | None = None
    minlevel: str | None = None
    format: str = "local"
    maxlen: int = 1024
    sample: str | None = None


@dataclass(frozen=True)
class AgentConfig:
    """A ``spoe-agent`` section with HAProxy 2.6's defaults (SPOE.txt §2.2).

    :attr messages: the names of the agent's ``messages`` lines, in order (the order
        of messages inside one NOTIFY).
    :attr groups: the names of its ``groups`` lines.
    :attr var_prefix: ``option var-prefix``, else the agent name.
    :attr register_var_names: full names ``proc.<prefix>.<name>``.
    :attr logs: the ``log`` targets; ``log_global`` says ``log global`` was given.
    """

    name: str
    var_prefix: str
    use_backend: str
    messages: tuple[str, ...]
    groups: tuple[str, ...]
    timeouts: Timeouts
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_waiting_frames: int = DEFAULT_MAX_WAITING_FRAMES
    maxconnrate: int = 0
    maxerrrate: int = 0
    pipelining: bool = True
    async_: bool = True
    send_frag_payload: bool = True
    dontlog_normal: bool = False
    continue_on_error: bool = False
    force_set_var: bool = False
    set_on_error: str | None = None
    set_process_time: str | None = None
    set_total_time: str | None = None
    register_var_names: tuple[str, ...] = ()
    logs: tuple[LogTarget, ...] = ()
    log_global: bool = False
    filename: str | None = None
    lineno: int | None = None

    def var_name(self, name: str, scope: str = "txn") -> str:
        """The full name of an agent variable: ``<scope>.<var-prefix>.<name>``."""
        return f"{scope}.{self.var_prefix}.{name}"


@dataclass(frozen=True)
class ArgConfig:
    """One ``args`` item: ``name=expr`` (``name`` is ``""`` for an unnamed arg)."""

    name: str
    expr: SampleExpr


@dataclass(frozen=True)
class MessageConfig:
    """A ``spoe-message`` section (SPOE.txt §2.3).

    :attr event: the last ``event`` line's event, or ``None``.
    :attr condition: its ``if``/``unless`` condition (message-local ACLs resolved), or
        ``None``.
    :attr group: the group (used by the agent) this message belongs to, or ``None``.
    """

    name: str
    args: tuple[ArgConfig, ...]
    event: str | None
    condition: Condition | None
    filename: str | None = None
    lineno: int | None = None
    group: str | None = None
    event_lineno: int | None = None

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)


@dataclass(frozen=True)
class GroupConfig:
    """A ``spoe-group`` section: messages sent together by ``send-spoe-group``."""

    name: str
    messages: tuple[str, ...]
    filename: str | None = None
    lineno: int | None = None


@dataclass(frozen=True)
class SpoeConfig:
    """One loaded engine: the selected scope's agent, messages and groups.

    :attr engine_id: the ``filter spoe engine`` name, else the agent name (HAProxy's
        ``conf->id``, what ``send-spoe-group`` names).
    :attr messages: every ``spoe-message`` of the scope, by name.
    :attr groups: the groups the agent uses (``groups`` lines), by name.
    :attr events: event name -> the messages bound to it, in the agent's ``messages``
        order (messages without event are left out, with a warning).
    """

    engine_id: str
    scope: str | None
    agent: AgentConfig
    messages: Mapping[str, MessageConfig]
    groups: Mapping[str, GroupConfig]
    events: Mapping[str, tuple[MessageConfig, ...]]
    filename: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", _frozen_map(self.messages))
        object.__setattr__(self, "groups", _frozen_map(self.groups))
        object.__setattr__(self, "events", _frozen_map(self.events))

    def group_messages(self, group: str) -> tuple[MessageConfig, ...]:
        """The messages of a group, in the group's order (``KeyError`` if unknown)."""
        return tuple(self.messages[m] for m in self.groups[group].messages)
