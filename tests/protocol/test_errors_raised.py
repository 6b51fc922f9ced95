"""Every exception spoe_sync exports is one it raises (issue 11): a class nobody
raises promises callers a failure mode that never comes.  And an agent's
AGENT-DISCONNECT is an event of the sans-IO connection, not an exception."""

from __future__ import annotations

import pathlib
import re

import spoe_sync
from spoe_sync import errors
from spoe_sync.protocol import AgentDisconnected
from spoe_sync.protocol.events import Event

_SOURCE = pathlib.Path(spoe_sync.__file__).parent
#: Bases that are caught, never raised themselves (their docstrings say so).
_ABSTRACT = {"SpoeError", "ProtocolError", "ProcessingError"}


def _raised_names() -> set[str]:
    text = "\n".join(p.read_text() for p in _SOURCE.rglob("*.py") if p.name != "errors.py")
    names = set(re.findall(r"raise (\w+)\(", text))
    names |= set(re.findall(r"(\w+Warning)\(", text))  # built, then given to warnings.warn()
    # raise_for_status() raises through a status -> class table.
    names |= set(re.findall(r"^\s*\d+: (\w+),$", text, re.MULTILINE))
    return names


def test_every_exported_exception_is_raised_somewhere():
    raised = _raised_names()
    never = [name for name in errors.__all__ if name not in raised and name not in _ABSTRACT]
    assert never == []


def test_agent_disconnected_is_only_the_protocol_event():
    assert not hasattr(errors, "AgentDisconnected")
    assert "AgentDisconnected" not in spoe_sync.__all__
    assert not issubclass(AgentDisconnected, BaseException)
    assert AgentDisconnected in Event.__args__  # type: ignore[attr-defined]
