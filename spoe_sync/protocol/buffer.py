"""Cutting the agent's byte stream into whole frames (SPOE.txt §3.2).

Every SPOP frame is prefixed by its length on 4 bytes.  HAProxy reads that
length first and refuses the frame at once if it exceeds the connection's
*current* max-frame-size (the configured value before the handshake, the
negotiated one after it): status 3, fatal (``spoe_recv_frame()``).  We do the
same **before** buffering the body, so that an agent announcing a 4 GiB frame
never makes us wait for, or keep, more than max-frame-size bytes of it.
"""

from __future__ import annotations

import struct

from ..errors import LocalProtocolError, RemoteProtocolError
from .constants import FrameStatus

__all__ = ["ReceiveBuffer"]

_PREFIX = 4
_U32 = struct.Struct(">I")


class ReceiveBuffer:
    """Bytes received from an agent, yielded back one whole frame at a time.

    :param max_frame_size: the largest frame body (length prefix excluded) we
        accept; assign :attr:`max_frame_size` when the handshake negotiates a
        new value, it applies to every frame not yet returned.

    ``next_frame()`` returns the frame *body* (type byte onwards, as
    :func:`spoe_sync.protocol.decode_frame_body` takes it) or ``None`` when no
    whole frame is buffered yet.  Bytes that follow an oversized length prefix
    are dropped on arrival: they cannot be used (the stream is lost) and must
    not pile up.
    """

    __slots__ = ("_buf", "_eof", "_oversized", "_pos", "_scan", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = int(max_frame_size)
        # bytes while it holds one read as it came (no copy), a bytearray once
        # a partial frame must be completed by the next read.
        self._buf: bytes | bytearray = b""
        self._pos = 0  # start of the unread part of _buf
        self._scan = 0  # start of the first frame not known to be complete
        self._eof = False
        self._oversized = False

    def __len__(self) -> int:
        """Bytes received and not yet returned as a frame."""
        return len(self._buf) - self._pos

    def __repr__(self) -> str:
        return (f"<ReceiveBuffer {len(self)} bytes, max_frame_size={self.max_frame_size}, "
                f"eof={self._eof}>")

    @property
    def eof(self) -> bool:
        """True once :meth:`feed` was called with ``b""`` (the agent closed)."""
        return self._eof

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes read from the socket; ``b""`` records the end of the stream.

        :raises LocalProtocolError: when data is fed after the end of the stream.
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data received after the end of the stream")
        if self._oversized:
            return
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            # Nothing left over (a read usually ends on a frame boundary): keep
            # the bytes as they came, frames are sliced straight out of them.
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = self._scan = 0
        else:
            if type(buf) is bytes:
                buf = self._buf = bytearray(buf[pos:])
                self._scan = max(self._scan - pos, 0)
                self._pos = 0
            buf += data  # in place: buf is the bytearray self._buf
        self._find_oversized()

    def next_frame(self) -> bytes | None:
        """The body of the next whole frame, or ``None`` if more bytes are needed.

        :raises RemoteProtocolError: status 3 when the next frame announces a
            length over :attr:`max_frame_size` (raised again on every call: the
            stream cannot be resynchronised after that).
        """
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if size - pos < _PREFIX:
            return None
        length: int = _U32.unpack_from(buf, pos)[0]
        if length > self.max_frame_size:
            raise RemoteProtocolError(
                f"the agent announced a frame of {length} bytes, over the max-frame-size of "
                f"{self.max_frame_size}", status=FrameStatus.TOO_BIG)
        end = pos + _PREFIX + length
        if size < end:
            return None
        body = buf[pos + _PREFIX : end]
        if end >= size:
            self._buf = b""
            self._pos = self._scan = 0
        else:
            self._pos = end
            if end > self._scan:
                self._scan = end
            if end > 65536 and end * 2 > size and type(buf) is bytearray:
                # Compact now and then rather than on every frame: deleting the
                # head of a bytearray moves everything behind it.
                del buf[:end]
                self._scan -= end
                self._pos = 0
        return body if type(body) is bytes else bytes(body)

    def _find_oversized(self) -> None:
        """Walk the complete frames buffered after the read position and stop at
        the first incomplete one: if its prefix is over the limit, drop its body."""
        buf = self._buf
        size = len(buf)  # once: this walks every frame of a read
        limit = self.max_frame_size
        scan = max(self._scan, self._pos)
        while size - scan >= _PREFIX:
            length = _U32.unpack_from(buf, scan)[0]
            if length > limit:
                self._buf = buf[: scan + _PREFIX]
                self._oversized = True
                break
            if size < scan + _PREFIX + length:
                break
            scan += _PREFIX + length
        self._scan = scan
