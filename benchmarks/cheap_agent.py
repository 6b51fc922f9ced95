"""The cheap benchmark agent shared by ``engine.py`` and ``wsgi.py``.

A separate process pinned to the other core that reads only the frame ids and
answers each NOTIFY with a pre-built ACK, so that it is never the bottleneck of
what is measured.  It writes its port to ``port_file`` and stops by itself after
ten minutes if nobody stops it.

The ACK is empty, or with ``set_vars`` carries the two set-var actions of
:data:`SET_VARS` (what a reputation agent answers: a score and a verdict), so
that the engine's ACK path is measured as real agents exercise it.

    python benchmarks/cheap_agent.py --port-file FILE [--delay SECONDS] [--set-vars]
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import time

_LEN = struct.Struct(">I")
#: the two set-var actions of an ACK with ``set_vars``: (scope, name, value), scope txn.
#: ``score`` stays under the deny threshold of the benchmarks (``ge 100``), so that every
#: request is answered by the app and the rule still runs in full.
SET_VARS = ((2, "score", 10), (2, "verdict", "clean"))


def _varint_len(buf: bytes, pos: int) -> int:
    if buf[pos] < 240:
        return 1
    end = pos + 1
    while buf[end] >= 128:
        end += 1
    return end - pos + 1


def ack_actions() -> bytes:
    """The ACK payload holding the :data:`SET_VARS` actions, encoded by the project's codec."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from spoe_sync.protocol import Ack, SetVar, VarScope
    from spoe_sync.protocol.codec import encode_frame

    frame = encode_frame(Ack(0, 0, tuple(SetVar(VarScope(scope), name, value)
                                         for scope, name, value in SET_VARS)))
    return frame[11:]  # length (4), type (1), flags (4), stream-id 0 and frame-id 0 (1 each)


def run_agent(port_file: str, delay: float = 0.0, set_vars: bool = False) -> None:
    """Answers HELLO, ACKs each NOTIFY (after ``delay`` seconds) with no action, or with
    the two :data:`SET_VARS` actions if ``set_vars``."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the measured process runs on core 0
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from spoe_sync.protocol import AgentDisconnect, AgentHello
    from spoe_sync.protocol.codec import encode_frame

    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining,async"))
    bye = encode_frame(AgentDisconnect.make(0))
    ack_head = b"\x67\x00\x00\x00\x01"
    actions = ack_actions() if set_vars else b""
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
                    acks.append(_LEN.pack(5 + n + len(actions)) + ack_head + buf[start:start + n]
                                + actions)
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


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--set-vars", action="store_true")
    cli = parser.parse_args()
    run_agent(cli.port_file, cli.delay, cli.set_vars)
