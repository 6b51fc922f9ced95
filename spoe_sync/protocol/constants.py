"""SPOP numbers: frame types, data types, flags, scopes, status codes and limits.

Every value is HAProxy's (SPOE.txt §3, ``include/haproxy/spoe-t.h`` in 2.6).
"""

from __future__ import annotations

import enum

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_WAITING_FRAMES",
    "FLAG_ABORT",
    "FLAG_FIN",
    "FRAME_HDR_SIZE",
    "MAX_VARINT_BYTES",
    "MIN_FRAME_SIZE",
    "SPOP_VERSION",
    "ActionType",
    "DataType",
    "FrameStatus",
    "FrameType",
    "StreamStatus",
    "VarScope",
    "frame_status_reason",
]

#: SPOE.txt §3.2: "The maximum size supported by peers for a frame must be greater
#: than or equal to 256 bytes."
MIN_FRAME_SIZE = 256
#: HAProxy's default: tune.bufsize (16384) - 4 bytes for the length prefix.  Some
#: agents (krrg/haproxy-python-spoa) always answer 16380, so we must offer at least that.
DEFAULT_MAX_FRAME_SIZE = 16380
#: SPOE.txt §2.2, "max-waiting-frames": default 20.
DEFAULT_MAX_WAITING_FRAMES = 20
#: HAProxy reserves this much of each frame for the header when it cuts a NOTIFY
#: payload into fragments (``FRAME_HDR_SIZE`` in flt_spoe.c).
FRAME_HDR_SIZE = 32
#: A 64-bit value takes at most 10 varint bytes; more is an overlong (hostile) varint.
MAX_VARINT_BYTES = 10
#: The only SPOP version HAProxy 2.6 speaks.
SPOP_VERSION = "2.0"

FLAG_FIN = 0x00000001
FLAG_ABORT = 0x00000002


class FrameType(enum.IntEnum):
    """SPOE.txt §3.2.2."""

    UNSET = 0
    HAPROXY_HELLO = 1
    HAPROXY_DISCONNECT = 2
    NOTIFY = 3
    AGENT_HELLO = 101
    AGENT_DISCONNECT = 102
    ACK = 103


class DataType(enum.IntEnum):
    """SPOE.txt §3.1.  On the wire the type is the LOW nibble of the type byte and
    the flags the high one (BOOL true is 0x11), whatever the spec's diagram says."""

    NULL = 0
    BOOL = 1
    INT32 = 2
    UINT32 = 3
    INT64 = 4
    UINT64 = 5
    IPV4 = 6
    IPV6 = 7
    STRING = 8
    BINARY = 9


class VarScope(enum.IntEnum):
    """SPOE.txt §3.4: the scope byte of set-var/unset-var actions."""

    PROC = 0
    SESS = 1
    TXN = 2
    REQ = 3
    RES = 4

    @property
    def label(self) -> str:
        """The scope as HAProxy writes it in variable names (``txn``)."""
        return self.name.lower()


class ActionType(enum.IntEnum):
    """SPOE.txt §3.4."""

    SET_VAR = 1
    UNSET_VAR = 2


class FrameStatus(enum.IntEnum):
    """SPOP status codes (SPOE.txt §3.5) sent in DISCONNECT frames.

    Agents may use codes of their own; :meth:`_missing_` keeps them as
    pseudo-members so that an unknown code round-trips instead of raising.
    """

    NORMAL = 0
    IO = 1
    TIMEOUT = 2
    TOO_BIG = 3
    INVALID = 4
    NO_VSN = 5
    NO_FRAME_SIZE = 6
    NO_CAP = 7
    BAD_VSN = 8
    BAD_FRAME_SIZE = 9
    FRAG_NOT_SUPPORTED = 10
    INTERLACED_FRAMES = 11
    FRAMEID_NOTFOUND = 12
    RES = 13
    UNKNOWN = 99

    @classmethod
    def _missing_(cls, value: object) -> FrameStatus | None:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF:
            member = int.__new__(cls, value)
            member._name_ = f"CODE_{value}"
            member._value_ = value
            return member
        return None

    @property
    def reason(self) -> str:
        return frame_status_reason(int(self))


# HAProxy's fixed table (spoe_frm_err_reasons in flt_spoe.c): these exact texts
# go in the "message" of a HAPROXY-DISCONNECT.
_REASONS = {
    0: "normal",
    1: "I/O error",
    2: "a timeout occurred",
    3: "frame is too big",
    4: "invalid frame received",
    5: "version value not found",
    6: "max-frame-size value not found",
    7: "capabilities value not found",
    8: "unsupported version",
    9: "max-frame-size too big or too small",
    10: "fragmentation not supported",
    11: "invalid interlaced frames",
    12: "frame-id not found",
    13: "resource allocation error",
    99: "an unknown error occurred",
}


def frame_status_reason(code: int) -> str:
    """HAProxy's reason text for a SPOP status code (``"an unknown error occurred"``
    for codes it does not know, as ``spoe_frm_err_reasons`` does)."""
    return _REASONS.get(code, _REASONS[99])


class StreamStatus(enum.IntEnum):
    """Per-processing status codes (``SPOE_CTX_ERR_*``, SPOE.txt §2.2
    "set-on-error"), shown as ``st=`` in SPOE logs.  A connection-level failure
    with SPOP status N is reported as ``256 + N`` (see :func:`from_frame_status`).
    """

    NONE = 0
    TOUT = 1
    RES = 2
    TOO_BIG = 3
    FRAG_ABORTED = 4
    INTERRUPTED = 5
    UNKNOWN = 255

    @classmethod
    def _missing_(cls, value: object) -> StreamStatus | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 256:
            member = int.__new__(cls, value)
            member._name_ = f"SPOP_{value - 256}"
            member._value_ = value
            return member
        return None

    @classmethod
    def from_frame_status(cls, code: int) -> StreamStatus:
        return cls(256 + int(code))
