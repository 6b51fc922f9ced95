"""Fragmented payloads both ways (SPOE.txt §3.2, "fragmentation").

Sending: a NOTIFY payload too big for one frame is cut into pieces.  The first
frame is a typed NOTIFY without FIN, the following ones are type 0 (UNSET), the
last one has FIN; all carry the same stream-id and frame-id.  As HAProxy 2.6
(``spoe_encode_messages()``, docs/explanation/haproxy-behaviour.md §2.4), the cut falls at
any byte, even inside a value, and each piece holds at most
``max_frame_size - FRAME_HDR_SIZE`` bytes, so that every frame, header included,
stays within the negotiated size.  HAProxy sends such fragments only to an agent
that announced ``fragmentation``; the caller checks that.

Receiving: HAProxy cannot read a fragmented ACK (it disconnects with status 10);
we reassemble them.  :class:`Reassembler` follows one fragmented payload at a
time and reports the SPOP status of every way an agent can get it wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RemoteProtocolError
from .codec import encode_raw_frame
from .constants import FLAG_ABORT, FLAG_FIN, FRAME_HDR_SIZE, FrameStatus, FrameType
from .frames import Fragment

__all__ = [
    "Reassembled",
    "Reassembler",
    "abort_frame",
    "fragment_notify",
    "split_payload",
]


def split_payload(payload: bytes, max_frame_size: int) -> list[bytes]:
    """Cut ``payload`` into pieces of ``max_frame_size - FRAME_HDR_SIZE`` bytes
    (the last one shorter), HAProxy's piece size: a header of at most 25 bytes
    (type, flags, two 10-byte varints) always fits in the 32 reserved."""
    piece = max_frame_size - FRAME_HDR_SIZE
    if piece <= 0:
        raise ValueError(f"max-frame-size {max_frame_size} leaves no room for a payload")
    if not payload:
        return [b""]
    return [payload[i : i + piece] for i in range(0, len(payload), piece)]


def fragment_notify(stream_id: int, frame_id: int, payload: bytes, max_frame_size: int) -> list[bytes]:
    """The wire frames (length prefix included) of a NOTIFY payload sent in
    fragments: NOTIFY without FIN, then UNSET frames, FIN on the last one."""
    pieces = split_payload(payload, max_frame_size)
    last = len(pieces) - 1
    frames = []
    for i, piece in enumerate(pieces):
        frame_type = FrameType.NOTIFY if i == 0 else FrameType.UNSET
        flags = FLAG_FIN if i == last else 0
        frames.append(encode_raw_frame(frame_type, flags, stream_id, frame_id, piece))
    return frames


def abort_frame(stream_id: int, frame_id: int) -> bytes:
    """The frame that abandons a NOTIFY whose fragments are not all sent: type 0,
    FIN|ABORT, same ids, empty payload (``spoe_prepare_hafrag_frame()`` with no
    context)."""
    return encode_raw_frame(FrameType.UNSET, FLAG_FIN | FLAG_ABORT, stream_id, frame_id, b"")


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A fragmented payload put back together.

    :attr frame_type: the type of its first frame (ACK for an agent).
    :attr flags: the flags of its last frame (FIN, or FIN|ABORT when the agent
        gave up: the payload is then what had arrived, and is meaningless).
    """

    frame_type: int
    stream_id: int
    frame_id: int
    payload: bytes
    flags: int
    fragments: int

    @property
    def abort(self) -> bool:
        return bool(self.flags & FLAG_ABORT)


class Reassembler:
    """Follows the fragmented payload an agent is sending, one at a time.

    Whole (FIN) frames of other ids may come between the fragments: they are
    complete and harm nothing.  What is refused, with status 11 "invalid
    interlaced frames": a new fragmented payload starting before the current one
    ended, a continuation with other ids, a continuation with nothing started.

    :param max_payload_size: the largest reassembled payload; beyond it the agent
        gets status 3, so that no agent can make us buffer without bound.
    """

    __slots__ = ("_first", "_parts", "_size", "max_payload_size")

    def __init__(self, max_payload_size: int) -> None:
        self.max_payload_size = max_payload_size
        self._first: Fragment | None = None
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def in_progress(self) -> tuple[int, int] | None:
        """``(stream_id, frame_id)`` of the payload being received, if any."""
        if self._first is None:
            return None
        return self._first.stream_id, self._first.frame_id

    def reset(self) -> None:
        """Forget the payload being received."""
        self._first = None
        self._parts = []
        self._size = 0

    def feed(self, fragment: Fragment) -> Reassembled | None:
        """Take one fragment; the whole payload when this one ends it (FIN, or
        ABORT), else None.

        :raises RemoteProtocolError: status 11 for interlaced fragments, 3 when
            the payload grows past :attr:`max_payload_size`.
        """
        first = self._first
        if fragment.frame_type != FrameType.UNSET:
            if first is not None:
                raise RemoteProtocolError(
                    f"a fragmented frame ({fragment.stream_id}, {fragment.frame_id}) started before "
                    f"({first.stream_id}, {first.frame_id}) was finished",
                    status=FrameStatus.INTERLACED_FRAMES)
            self._first = fragment
            self._parts = []
            self._size = 0
            return self._add(fragment)
        if first is None:
            if fragment.abort:
                # The agent abandons a payload we already dropped (or never saw
                # begin): nothing to cancel.
                return None
            raise RemoteProtocolError(
                f"a continuation frame ({fragment.stream_id}, {fragment.frame_id}) with no "
                "fragmented frame in progress", status=FrameStatus.INTERLACED_FRAMES)
        if (fragment.stream_id, fragment.frame_id) != (first.stream_id, first.frame_id):
            raise RemoteProtocolError(
                f"a continuation frame ({fragment.stream_id}, {fragment.frame_id}) inside the "
                f"fragmented frame ({first.stream_id}, {first.frame_id})",
                status=FrameStatus.INTERLACED_FRAMES)
        return self._add(fragment)

    def _add(self, fragment: Fragment) -> Reassembled | None:
        first = self._first
        assert first is not None
        self._size += len(fragment.payload)
        if self._size > self.max_payload_size:
            self.reset()
            raise RemoteProtocolError(
                f"a fragmented payload of more than {self.max_payload_size} bytes",
                status=FrameStatus.TOO_BIG)
        self._parts.append(fragment.payload)
        if not (fragment.fin or fragment.abort):
            return None
        done = Reassembled(first.frame_type, first.stream_id, first.frame_id,
                           b"".join(self._parts), fragment.flags, len(self._parts))
        self.reset()
        return done
