"""The floor's SPOE client: the least a Python engine on gevent must do per event.

``wsgi.py --floor`` runs it inside a WSGI app (:func:`floor_app`), so that the middleware's
cost over the bare app can be read next to the cost of a bare round trip measured under the
same load, with the same server and handler.  Per event:

* one encode from a prepared template (``MessageEncoder`` for the values, ``encode_notify``
  around them);
* one write, shared by the NOTIFYs queued in the same loop iteration (a callback of the event
  loop flushes each connection's queue in one ``send``), as the engine's pipelining writer
  shares its writes;
* one greenlet wait and wake-up (a gevent ``Waiter``, switched to from the hub by the
  connection's io watcher callback, with no reader greenlet);
* one read in that callback, shared by the ACKs it brings, and one decode of each ACK (the
  project's decoder, actions included);
* the ACK's variables stored in a dict.

No deadline, no error handling, no load balancing, no rules, no logging, no metrics: this is
a measuring stick, not an engine.  An agent that goes away leaves its waiters asleep.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

_LEN = struct.Struct(">I")


class FloorClient:
    """``nconn`` SPOP connections to the agent at ``address`` ("host:port"), NOTIFYs spread
    over them by stream id."""

    def __init__(self, address: str, nconn: int = 3) -> None:
        import gevent
        from gevent.hub import Waiter

        from spoe_sync.protocol import HaproxyHello
        from spoe_sync.protocol.codec import decode_frame_body, encode_frame, encode_notify

        # imported here (the scripts put the project on sys.path first), read once per call
        self._waiter, self._decode, self._encode = Waiter, decode_frame_body, encode_notify

        host, port = address.rsplit(":", 1)
        self.socks: list[socket.socket] = []
        for _ in range(max(1, nconn)):
            # the standard library's socket: written to directly, read from an io watcher
            sock = socket.create_connection((host, int(port)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(encode_frame(HaproxyHello.make(engine_id="floor")))
            buf = b""
            while len(buf) < 4 or len(buf) < 4 + _LEN.unpack_from(buf)[0]:
                buf += sock.recv(65536)
            sock.setblocking(False)
            self.socks.append(sock)
        self.waiting: dict[tuple[int, int], Any] = {}
        self.outboxes: list[list[bytes]] = [[] for _ in self.socks]
        self.buffers = [b""] * len(self.socks)
        self.loop = gevent.get_hub().loop
        self.watchers = [self.loop.io(s.fileno(), 1) for s in self.socks]
        for index, watcher in enumerate(self.watchers):
            watcher.start(self._readable, index)

    def _readable(self, index: int) -> None:
        # Runs in the hub (an io watcher's callback): the cheapest place a Waiter can be
        # switched to from, with no greenlet of its own for the reader.
        try:
            chunk = self.socks[index].recv(262144)
        except BlockingIOError:
            return
        if not chunk:
            self.watchers[index].stop()
            return
        buf = self.buffers[index] + chunk
        pos, end = 0, len(buf)
        waiting, decode = self.waiting, self._decode
        while end - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if end - pos - 4 < size:
                break
            ack = decode(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
            waiter = waiting.pop((ack.stream_id, ack.frame_id), None)  # type: ignore[union-attr]
            if waiter is not None:
                waiter.switch(ack)
        self.buffers[index] = buf[pos:]

    def flush(self, index: int) -> None:
        out = self.outboxes[index]
        if out:
            data = b"".join(out)
            out.clear()
            if self.socks[index].send(data) != len(data):
                raise RuntimeError("short write: the floor's socket buffer filled")

    def round_trip(self, stream_id: int, payload: bytes) -> Any:
        """One NOTIFY (frame 1 of ``stream_id``) carrying ``payload``; its ACK."""
        index = stream_id % len(self.socks)
        waiter = self._waiter()
        self.waiting[stream_id, 1] = waiter
        box = self.outboxes[index]
        if not box:
            self.loop.run_callback(self.flush, index)
        box.append(self._encode(stream_id, 1, payload))
        return waiter.get()

    def close(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        for sock in self.socks:
            sock.close()


def floor_app(app: Callable[..., Iterable[bytes]], address: str) -> Callable[..., Any]:
    """``app`` behind the floor: per request, the workload's message (``ip=src path=path``)
    encoded from the environ, one round trip, the two variables stored, the deny rule's
    comparison; a 403 if it matches (never, with the cheap agent's score)."""
    from ipaddress import ip_address

    from spoe_sync.protocol.codec import MessageEncoder

    client = FloorClient(address)
    message = MessageEncoder("check-request", ["ip", "path"])
    addresses: dict[str, Any] = {}  # the client's address parsed once per address
    next_id = [0]

    def floor(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        remote = environ["REMOTE_ADDR"]
        ip = addresses.get(remote)
        if ip is None:
            ip = addresses[remote] = ip_address(remote)
        next_id[0] += 1
        ack = client.round_trip(next_id[0], message.encode([ip, environ["PATH_INFO"]]))
        variables = {a.name: a.value for a in ack.actions}
        if variables.get("score", 0) >= 100:
            start_response("403 Forbidden", [("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)

    return floor
