"""ACK cost benchmark (issue 11, defect 1): what one ACK costs the worker, and
what a flooding agent does to everything else.

    python benchmarks/ack_flood.py [--parts cost,flood] [--duration 5] [--clients 50]

* ``cost``: one ACK through the sans-IO connection (``EngineConnection``:
  receive, reassemble, decode) and ``apply_ack`` into a fresh stream's
  variables, no sockets; medians in ms for: one set-var; a full 16 KiB ACK of
  1,470 set-vars (what HAProxy accepts; the issue measured ~7.5 ms); a
  fragmented flood of 20,000 set-vars (~230 KiB); the issue's fragmented flood
  of 76,000 set-vars (~0.9 MiB).
* ``flood``: an engine whose agent (a separate process, so that its own cost
  is not charged here) answers every NOTIFY with the 76,000-action flood.
  ``--clients`` greenlets: a tenth loop on ``process_event`` against it, the
  others stand for requests that use no SPOE and measure how late the loop
  wakes them (a 1 ms sleep; the lateness is the latency the flood added to a
  request).  Reports their p50/p99 lateness and the longest event against
  ``timeout processing`` (1 s).  Issue targets: p50 under 50 ms, every event
  within timeout processing + 0.5 s.

Run it on an otherwise idle machine; the figures are this process's only.
Bounded: every part stops after ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spoe_sync.protocol import Ack, AgentHello, SetVar, VarScope, encode_frame, encode_raw_frame

_LEN = struct.Struct(">I")
_PIECE = 16_000


def action_list(count: int) -> bytes:
    actions = tuple(SetVar(VarScope.TXN, f"v{i}", 1) for i in range(count))
    return encode_frame(Ack(1, 1, actions))[11:]


def ack_frames(sid: int, fid: int, payload: bytes) -> bytes:
    pieces = [payload[i:i + _PIECE] for i in range(0, len(payload), _PIECE)] or [b""]
    return b"".join(encode_raw_frame(103 if i == 0 else 0, 1 if i == len(pieces) - 1 else 0,
                                     sid, fid, piece) for i, piece in enumerate(pieces))


# --------------------------------------------------------------------------- cost


def bench_cost(repeat: int = 20) -> None:
    from spoe_sync.engine.actions import apply_ack
    from spoe_sync.engine.vars import Vars
    from spoe_sync.errors import RemoteProtocolError
    from spoe_sync.protocol.connection import EngineConnection

    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining"))
    for label, count in (("1 set-var", 1), ("16 KiB ACK, 1470 set-vars", 1470),
                         ("fragmented, 20000 set-vars", 20_000),
                         ("fragmented, 76000 set-vars", 76_000)):
        payload = action_list(count)
        wire = ack_frames(1, 1, payload)
        times = []
        outcome = ""
        for _ in range(repeat if count < 50_000 else 5):
            conn = EngineConnection(16380)
            conn.initiate()
            conn.receive_data(hello)
            conn.next_event()
            conn.send_notify(1, 1, b"")
            start = time.perf_counter()
            conn.receive_data(wire)
            try:
                event = conn.next_event()
                report = apply_ack(event.ack, Vars(), var_prefix="bench")  # type: ignore[union-attr]
                outcome = f"{len(event.ack.actions)} decoded, {len(report.vars_set)} set"  # type: ignore[union-attr]
            except RemoteProtocolError as exc:
                outcome = f"refused: status {exc.status}"
            times.append(time.perf_counter() - start)
        print(f"  {label:<30} {len(payload):>8} B  {statistics.median(times) * 1e3:8.2f} ms  ({outcome})")


# --------------------------------------------------------------------------- flood


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """SPOP's varint (SPOE.txt §3.1) at ``pos``: the value and where it ends."""
    value = buf[pos]
    pos += 1
    if value < 240:
        return value, pos
    shift = 4
    while True:
        byte = buf[pos]
        pos += 1
        value += byte << shift
        shift += 7
        if byte < 128:
            return value, pos


def serve_flood(port_file: str, count: int, lifetime: float) -> None:
    """The flooding agent (run in a subprocess): one thread per connection."""
    payload = action_list(count)
    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities="pipelining"))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)

    def read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def serve(conn: socket.socket) -> None:
        try:
            read(conn, _LEN.unpack(read(conn, 4))[0])
            conn.sendall(hello)
            while True:
                body = read(conn, _LEN.unpack(read(conn, 4))[0])
                if body[0] != 3:
                    return
                sid, pos = read_varint(body, 5)
                fid, _ = read_varint(body, pos)
                conn.sendall(ack_frames(sid, fid, payload))
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(30)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def bench_flood(clients: int, duration: float, count: int) -> None:
    import gevent

    from spoe_sync import Engine, load_config
    from spoe_sync.samples import StaticSamples

    port_file = os.path.join(tempfile.mkdtemp(), "port")
    agent = subprocess.Popen([sys.executable, __file__, "--serve", port_file, "--count", str(count),
                              "--lifetime", str(duration + 30)])
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        config = load_config(
            "spoe-agent flood\n    messages m\n    option var-prefix bench\n"
            "    timeout hello 2s\n    timeout idle 30s\n    timeout processing 1s\n"
            "    use-backend agents\nspoe-message m\n    args ip=src\n"
            "    event on-frontend-http-request\n")
        engine = Engine(config, backends={"agents": [f"127.0.0.1:{port}"]}, backoff=(0.01, 0.05))
        from ipaddress import IPv4Address
        samples = StaticSamples({"src": IPv4Address("192.0.2.1")})
        late: list[float] = []
        events: list[tuple[float, int]] = []
        stop = time.monotonic() + duration

        def plain() -> None:
            while time.monotonic() < stop:
                start = time.monotonic()
                gevent.sleep(0.001)
                late.append(time.monotonic() - start - 0.001)

        def spoe() -> None:
            while time.monotonic() < stop:
                start = time.monotonic()
                result = engine.process_event(engine.new_stream(samples), "on-frontend-http-request")
                events.append((time.monotonic() - start, int(result.status)))

        n_spoe = max(1, clients // 10)
        jobs = [gevent.spawn(spoe) for _ in range(n_spoe)]
        jobs += [gevent.spawn(plain) for _ in range(clients - n_spoe)]
        gevent.joinall(jobs, timeout=duration + 10)
        engine.close(1.0)
        late.sort()
        statuses = sorted({s for _, s in events})
        print(f"  {clients - n_spoe} plain clients: lateness p50 {late[len(late) // 2] * 1e3:.1f} ms, "
              f"p99 {late[int(len(late) * 0.99)] * 1e3:.1f} ms ({len(late)} samples)")
        print(f"  {n_spoe} SPOE clients: {len(events)} events, longest "
              f"{max(d for d, _ in events) * 1e3:.0f} ms (timeout processing 1000 ms), "
              f"statuses {statuses}")
    finally:
        agent.kill()
        agent.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="cost,flood")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--count", type=int, default=76_000, help="actions per flood ACK")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_flood(args.serve, args.count, args.lifetime)
        return
    parts = args.parts.split(",")
    if "cost" in parts:
        print("cost of one ACK (receive, reassemble, decode, apply):")
        bench_cost()
    if "flood" in parts:
        print(f"flood: every ACK carries {args.count} set-vars, {args.duration:.0f} s:")
        bench_flood(args.clients, args.duration, args.count)


if __name__ == "__main__":
    main()
