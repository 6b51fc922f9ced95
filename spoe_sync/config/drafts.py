"""Mutable sections being read, and the error/warning collector of one file.

The reader fills these line by line (like HAProxy's ``curagent``/``curmsg``/``curgrp``);
:mod:`.validate` turns them into the frozen model once the file is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = [
    "Abort", "AgentDraft", "ArgDraft", "GroupDraft", "MessageDraft", "Problems", "ReaderState",
    "ScopeDraft",
]


@dataclass
class AgentDraft:
    name: str
    lineno: int
    use_backend: str | None = None
    messages: list[tuple[str, int]] = field(default_factory=list)
    groups: list[tuple[str, int]] = field(default_factory=list)
    timeouts: dict[str, int] = field(default_factory=dict)  # ms; 0 = unset
    max_frame_size: int = 16380
    max_waiting_frames: int = 20
    maxconnrate: int = 0
    maxerrrate: int = 0
    flags: dict[str, bool] = field(default_factory=lambda: {
        "pipelining": True, "async": True, "send-frag-payload": True, "dontlog-normal": False,
        "continue-on-error": False, "force-set-var": False})
    var_prefix: str | None = None
    set_on_error: str | None = None
    set_process_time: str | None = None
    set_total_time: str | None = None
    register_var_names: list[tuple[str, int]] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)
    log_global: bool = False


@dataclass
class ArgDraft:
    name: str
    expr: Any
    lineno: int


@dataclass
class MessageDraft:
    name: str
    lineno: int
    acls: Any = None
    args: list[ArgDraft] = field(default_factory=list)
    event: str | None = None
    event_lineno: int | None = None
    condition: Any = None
    condition_lineno: int | None = None
    acl_lines: list[tuple[Any, int]] = field(default_factory=list)


@dataclass
class GroupDraft:
    name: str
    lineno: int
    messages: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class ScopeDraft:
    agent: AgentDraft | None = None
    messages: dict[str, MessageDraft] = field(default_factory=dict)
    groups: dict[str, GroupDraft] = field(default_factory=dict)


class Problems:
    """Errors and warnings of one load, each with its ``[file:line]``."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.errors: list[ConfigError] = []
        self.warnings: list[tuple[str, int | None]] = []
        self.scopes_seen: list[str] = []

    def error(self, message: str, lineno: int | None) -> None:
        self.errors.append(ConfigError(message, self.filename, lineno))

    def warn(self, message: str, lineno: int | None) -> None:
        self.warnings.append((message, lineno))

    def where(self, lineno: int) -> str:
        """``file:line`` as HAProxy writes it inside messages."""
        return f"{self.filename}:{lineno}"


class Abort(Exception):
    """An ``ERR_ABORT`` error: HAProxy stops reading the file after it."""


@dataclass
class ReaderState:
    """What the section parsers share while one scope is read."""

    problems: Problems
    scope: ScopeDraft
    base_dir: str | None = None
    bufsize: int = 16384  # HAProxy's tune.bufsize: max-frame-size is at most bufsize - 4
    agent: AgentDraft | None = None
    message: MessageDraft | None = None
    group: GroupDraft | None = None

    def error(self, message: str, lineno: int) -> None:
        self.problems.error(message, lineno)

    def abort(self, message: str, lineno: int) -> None:
        self.problems.error(message, lineno)
        raise Abort(message)
