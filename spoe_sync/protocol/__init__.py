"""The SPOP protocol, sans I/O: frame codec and engine-side connection state.

Nothing here touches a socket, gevent or a logger (SPOE.txt §3).
"""

from __future__ import annotations

from .constants import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_WAITING_FRAMES,
    FLAG_ABORT,
    FLAG_FIN,
    MIN_FRAME_SIZE,
    ActionType,
    DataType,
    FrameStatus,
    FrameType,
    StreamStatus,
    VarScope,
    frame_status_reason,
)
from .frames import (
    KV,
    Ack,
    Action,
    AgentDisconnect,
    AgentHello,
    Fragment,
    Frame,
    HaproxyDisconnect,
    HaproxyHello,
    Message,
    Notify,
    SetVar,
    UnknownFrame,
    UnsetVar,
)
from .values import Int32, Int64, UInt32, UInt64, Value, data_type_of

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_WAITING_FRAMES",
    "FLAG_ABORT",
    "FLAG_FIN",
    "KV",
    "MIN_FRAME_SIZE",
    "Ack",
    "Action",
    "ActionType",
    "AgentDisconnect",
    "AgentHello",
    "DataType",
    "Fragment",
    "Frame",
    "FrameStatus",
    "FrameType",
    "HaproxyDisconnect",
    "HaproxyHello",
    "Int32",
    "Int64",
    "Message",
    "Notify",
    "SetVar",
    "StreamStatus",
    "UInt32",
    "UInt64",
    "UnknownFrame",
    "UnsetVar",
    "Value",
    "VarScope",
    "data_type_of",
    "frame_status_reason",
]
