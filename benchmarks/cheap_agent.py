"""The cheap benchmark agent shared by ``engine.py`` and ``wsgi.py``.

A separate process pinned to the other core that reads only the frame ids and
answers each NOTIFY with a pre-built ACK, so that it is never the bottleneck of
what is measured.  It writes its port to ``port_file`` and stops by itself after
ten minutes if nobody stops it.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import time

_LEN = struct.Struct(">I")


def _varint_len(buf: bytes, pos: int) -> int:
    if buf[pos] < 240:
        return 1
    end = pos + 1
    while buf[end] >= 128:
        end += 1
    return end - pos + 1


def run_agent(port_file: str, delay: float = 0.0) -> None:
    """Answers HELLO, ACKs each NOTIFY with no action (after ``delay`` seconds)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the measured process runs on core 0
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from spoe_sync.protocol import AgentDisconnect, AgentHello
    from spoe_sync.protocol.codec import encode_frame

    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining,async"))
    bye = encode_frame(AgentDisconnect.make(0))
    ack_head = b"\x67\x00\x00\x00\x01"
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytes] = {}
    held: list[tuple[float, socket.socket, bytes]] = []
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)

    def drop(conn: socket.socket) -> None:
        if conn in buffers:
            sel.unregister(conn)
            conn.close()
            buffers.pop(conn, None)

    def send(conn: socket.socket, data: bytes) -> None:
        if conn not in buffers:
            return
        conn.setblocking(True)  # ACK bursts may exceed the socket buffer
        try:
            conn.sendall(data)
        except OSError:
            drop(conn)
            return
        conn.setblocking(False)

    deadline = time.monotonic() + 600  # never outlive a forgotten run
    while time.monotonic() < deadline:
        timeout = 1.0 if not held else max(held[0][0] - time.monotonic(), 0.0)
        for key, _ in sel.select(timeout=timeout):
            if key.data is None:
                conn, _addr = listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, 1)
                buffers[conn] = b""
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                chunk = conn.recv(262144)
            except OSError:
                chunk = b""
            if not chunk:
                drop(conn)
                continue
            buf = buffers[conn] + chunk
            out, acks, pos, close = [], [], 0, False
            while len(buf) - pos >= 4:
                (size,) = _LEN.unpack_from(buf, pos)
                if len(buf) - pos - 4 < size:
                    break
                ftype = buf[pos + 4]
                if ftype == 3:
                    start = pos + 9
                    n = _varint_len(buf, start)
                    n += _varint_len(buf, start + n)
                    acks.append(_LEN.pack(5 + n) + ack_head + buf[start:start + n])
                elif ftype == 1:
                    out.append(hello)
                elif ftype == 2:
                    out.append(bye)
                    close = True
                pos += 4 + size
            buffers[conn] = buf[pos:]
            if delay and acks:
                held.append((time.monotonic() + delay, conn, b"".join(acks)))
            else:
                out.extend(acks)
            if out:
                send(conn, b"".join(out))
            if close:
                drop(conn)
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, conn, data = held.pop(0)
            send(conn, data)
