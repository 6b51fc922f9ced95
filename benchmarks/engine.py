"""Engine benchmark: frames/s and latency through the applet pool, against a raw ceiling.

    .venv/bin/python benchmarks/engine.py [--duration 2] [--frames 50000]

A cheap agent runs in a separate process pinned to the other core: an epoll
loop that reads only the stream-id and frame-id of each NOTIFY and answers with
a pre-encoded ACK header around those id bytes, so it is never the bottleneck.
Against it, in this process (pinned to core 0):

* ``pool``: :meth:`AppletPool.process` from 1, 50 and 500 concurrent greenlets,
  each looping on one small NOTIFY, in sync and pipelining modes; frames/s,
  p50/p99 latency of ``process()`` and the connections the pool opened;
* ``raw``: the ceiling for one Python process: pre-encoded NOTIFYs written on 4
  connections with 20 in flight on each, ACKs only counted.

Every run is bounded by ``--duration`` seconds and ``--frames`` frames.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import struct
import subprocess
import sys
import time

HELLO_REPLY_CAPS = "pipelining,async"
_LEN = struct.Struct(">I")


# --------------------------------------------------------------------------- the agent process


def _varint_len(buf: bytes, pos: int) -> int:
    if buf[pos] < 240:
        return 1
    end = pos + 1
    while buf[end] >= 128:
        end += 1
    return end - pos + 1


def run_agent(port_file: str) -> None:
    """The benchmark agent: answers HELLO, ACKs each NOTIFY with no action."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from spoe_sync.protocol import AgentDisconnect, AgentHello
    from spoe_sync.protocol.codec import encode_frame

    hello = encode_frame(AgentHello.make(max_frame_size=16380, capabilities=HELLO_REPLY_CAPS))
    bye = encode_frame(AgentDisconnect.make(0))
    ack_head = b"\x67\x00\x00\x00\x01"
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytes] = {}
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    deadline = time.monotonic() + 600  # never outlive a forgotten run
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
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
                sel.unregister(conn)
                conn.close()
                buffers.pop(conn, None)
                continue
            buf = buffers[conn] + chunk
            out = []
            pos = 0
            close = False
            while len(buf) - pos >= 4:
                (size,) = _LEN.unpack_from(buf, pos)
                if len(buf) - pos - 4 < size:
                    break
                ftype = buf[pos + 4]
                if ftype == 3:
                    start = pos + 9
                    n = _varint_len(buf, start)
                    n += _varint_len(buf, start + n)
                    ids = buf[start:start + n]
                    out.append(_LEN.pack(5 + n) + ack_head + ids)
                elif ftype == 1:
                    out.append(hello)
                elif ftype == 2:
                    out.append(bye)
                    close = True
                pos += 4 + size
            buffers[conn] = buf[pos:]
            if out:
                try:
                    conn.sendall(b"".join(out))
                except OSError:
                    close = True
            if close:
                sel.unregister(conn)
                conn.close()
                buffers.pop(conn, None)


class Agent:
    """The agent process, started and stopped by PID."""

    def __enter__(self) -> Agent:
        port_file = f"/tmp/spoe-bench-agent-{os.getpid()}.port"
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--agent", port_file])
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the benchmark agent did not start")
            time.sleep(0.01)
        with open(port_file) as f:
            self.address = f"127.0.0.1:{int(f.read())}"
        os.unlink(port_file)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- the measurements


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(int(len(values) * q), len(values) - 1)]


def bench_pool(address: str, mode: str, concurrency: int, duration: float, max_frames: int) -> dict:
    import gevent

    from spoe_sync.config import AgentConfig, Timeouts
    from spoe_sync.engine import AppletPool
    from spoe_sync.protocol import Message
    from spoe_sync.protocol.codec import MessageEncoder

    pipelining = mode != "sync"
    config = AgentConfig(name="bench", var_prefix="bench", use_backend="bench", messages=("m",),
                         groups=(), timeouts=Timeouts(hello=2, idle=None, processing=5),
                         pipelining=pipelining, async_=False)
    pool = AppletPool(config, [address], max_connecting=64)
    payload = MessageEncoder("check-client-ip", ["ip"]).encode(["192.0.2.1"])
    _ = Message
    latencies: list[float] = []
    errors = 0
    sent = 0
    # warm-up: the connections a steady state needs
    warm = [gevent.spawn(pool.process, 10_000_000 + i, 1, payload, time.monotonic() + 5)
            for i in range(concurrency)]
    gevent.joinall(warm, timeout=10)
    stop_at = time.monotonic() + duration
    per_worker = max(max_frames // concurrency, 1)

    def worker(index: int) -> None:
        nonlocal errors, sent
        sid = index * 1_000_000
        perf = time.perf_counter
        for fid in range(1, per_worker + 1):
            if time.monotonic() > stop_at:
                return
            t0 = perf()
            outcome = pool.process(sid, fid, payload, time.monotonic() + 5)
            latencies.append(perf() - t0)
            sent += 1
            if outcome.status:
                errors += 1

    start = time.perf_counter()
    cpu = time.process_time()
    workers = [gevent.spawn(worker, i + 1) for i in range(concurrency)]
    gevent.joinall(workers, timeout=duration + 10)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    connections = pool.metrics().connections_opened
    pool.close(2)
    return {"kind": f"pool {mode}", "concurrency": concurrency, "frames": sent,
            "fps": sent / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "connections": connections,
            "errors": errors, "cpu_us": cpu / max(sent, 1) * 1e6}


def bench_raw(address: str, duration: float, max_frames: int, connections: int = 4,
              in_flight: int = 20) -> dict:
    """Pre-encoded NOTIFYs, ``in_flight`` per connection, ACKs counted by length."""
    import gevent
    from gevent import socket as gsocket

    from spoe_sync.protocol import HaproxyHello
    from spoe_sync.protocol.codec import MessageEncoder, encode_frame, encode_notify

    payload = MessageEncoder("check-client-ip", ["ip"]).encode(["192.0.2.1"])
    notify = encode_notify(123456, 1, payload)
    hello = encode_frame(HaproxyHello.make(engine_id="raw"))
    host, port = address.rsplit(":", 1)
    stop_at = time.monotonic() + duration
    budget = max_frames // connections
    counts = [0] * connections

    def run(index: int) -> None:
        sock = gsocket.create_connection((host, int(port)))
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        sock.sendall(hello)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + _LEN.unpack_from(buf)[0]:
            buf += sock.recv(65536)
        buf = buf[4 + _LEN.unpack_from(buf)[0]:]
        sock.sendall(notify * in_flight)
        outstanding = in_flight
        done = 0
        while outstanding:
            buf += sock.recv(262144)
            acked = 0
            pos = 0
            while len(buf) - pos >= 4:
                (size,) = _LEN.unpack_from(buf, pos)
                if len(buf) - pos - 4 < size:
                    break
                pos += 4 + size
                acked += 1
            buf = buf[pos:]
            done += acked
            outstanding -= acked
            if done + outstanding < budget and time.monotonic() < stop_at:
                more = min(acked, budget - done - outstanding)
                sock.sendall(notify * more)
                outstanding += more
        counts[index] = done
        sock.close()

    start = time.perf_counter()
    cpu = time.process_time()
    gevent.joinall([gevent.spawn(run, i) for i in range(connections)], timeout=duration + 10)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    total = sum(counts)
    return {"kind": "raw pipelined", "concurrency": connections * in_flight, "frames": total,
            "fps": total / elapsed, "p50_ms": float("nan"), "p99_ms": float("nan"),
            "connections": connections, "errors": 0, "cpu_us": cpu / max(total, 1) * 1e6}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--agent":
        run_agent(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--frames", type=int, default=60000, help="frames per measurement, at most")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 50, 500])
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rows = []
    with Agent() as agent:
        rows.append(bench_raw(agent.address, args.duration, args.frames * 4))
        for mode in ("sync", "pipelining"):
            for concurrency in args.concurrency:
                rows.append(bench_pool(agent.address, mode, concurrency, args.duration, args.frames))
    print(f"{'run':<18}{'streams':>8}{'frames':>9}{'frames/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'conns':>7}{'errors':>8}{'cpu us/frame':>14}")
    for r in rows:
        print(f"{r['kind']:<18}{r['concurrency']:>8}{r['frames']:>9}{r['fps']:>11.0f}"
              f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['connections']:>7}{r['errors']:>8}"
              f"{r['cpu_us']:>14.1f}")
    print(f"\nload average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(figures are only meaningful on an otherwise idle machine)")
    ceiling = rows[0]["fps"]
    best = max(r["fps"] for r in rows[1:])
    print(f"\nraw ceiling {ceiling:.0f} frames/s; best pool run {best:.0f} frames/s "
          f"({100 * best / ceiling:.0f}% of the ceiling)")


if __name__ == "__main__":
    main()
