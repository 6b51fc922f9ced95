"""The floor: a minimal SPOE round trip in Python on gevent, against ``process_event``.

    python benchmarks/floor.py [--duration 1.5] [--repeat 3] [--streams 200]

Issue 15, target 3: ``process_event`` with 200 concurrent streams and a two-set-var ACK at
most 1.5x the floor, measured in the same run.  The cheap agent (``cheap_agent.py``, pinned
to core 1) answers every NOTIFY with an ACK carrying two set-var actions; this process runs
on core 0.  In each round, one after the other against the same agent process:

* ``floor``: ``--streams`` greenlets spread over one connection per 20 of them (what the
  engine opens with ``max-waiting-frames 20``), each looping on the least a Python engine
  must do per event: one encode from a prepared template (``encode_notify`` around a
  pre-encoded message), one write (``send``), one greenlet wait and wake-up (a gevent
  ``Waiter``, switched to from the hub by the connection's io watcher callback), one read
  (that callback's ``recv``, shared by the ACKs it brings), one decode (the project's ACK
  decoder, actions included), one dict update (the two variables);
* ``floor, batched``: the same with the NOTIFYs of one loop iteration written in one
  ``send`` per connection (a callback of the event loop flushes them), shown for comparison;
* ``events``: ``--streams`` greenlets looping on ``process_event`` (engine.py's measurement:
  a message with one ``src`` argument, evaluated and encoded every time, pipelining), on a
  new stream per event and on long-lived streams.

CPU per event is ``time.process_time()`` of this process (the agent's excluded); the ratio
to the floor is taken per round, by CPU per event (steadier on a shared machine) and by
events/s, and the medians are printed.  Every run is bounded by ``--duration`` seconds and
an event budget.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time

import engine as engine_bench  # this directory: the scripts run as files
from _common import ROOT, load_average, pin, start_agent

_LEN = struct.Struct(">I")


def bench_floor(address: str, streams: int, duration: float, max_events: int,
                batched: bool = False) -> dict:
    import socket

    import gevent
    from gevent.hub import Waiter

    from spoe_sync.protocol import HaproxyHello
    from spoe_sync.protocol.codec import (
        MessageEncoder,
        decode_frame_body,
        encode_frame,
        encode_notify,
    )

    payload = MessageEncoder("check-client-ip", ["ip"]).encode(["192.0.2.1"])
    host, port = address.rsplit(":", 1)
    nconn = max(1, (streams + 19) // 20)
    socks = []
    for _ in range(nconn):
        # the standard library's socket: written to directly, read from an io watcher
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(encode_frame(HaproxyHello.make(engine_id="floor")))
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + _LEN.unpack_from(buf)[0]:
            buf += sock.recv(65536)
        socks.append(sock)
    waiting: dict[tuple[int, int], Waiter] = {}
    loop = gevent.get_hub().loop
    outboxes: list[list[bytes]] = [[] for _ in socks]

    buffers = [b""] * nconn

    def readable(index: int) -> None:
        # Runs in the hub (an io watcher's callback): the cheapest place a Waiter can be
        # switched to from, with no greenlet of its own for the reader.
        try:
            chunk = socks[index].recv(262144)
        except BlockingIOError:
            return
        if not chunk:  # the agent went away: its waiters stay asleep until joinall's timeout
            watchers[index].stop()
            return
        buf = buffers[index] + chunk
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if end - pos - 4 < size:
                break
            ack = decode_frame_body(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
            waiter = waiting.pop((ack.stream_id, ack.frame_id), None)  # type: ignore[union-attr]
            if waiter is not None:
                waiter.switch(ack)
        buffers[index] = buf[pos:]

    def flush(index: int) -> None:
        out = outboxes[index]
        if out:
            data = b"".join(out)
            out.clear()
            if socks[index].send(data) != len(data):
                raise RuntimeError("short write: the floor's socket buffer filled")

    for s in socks:
        s.setblocking(False)
    watchers = [loop.io(s.fileno(), 1) for s in socks]
    for index, watcher in enumerate(watchers):
        watcher.start(readable, index)
    stop_at = time.monotonic() + duration
    per_worker = max(max_events // streams, 1)
    done = [0]
    latencies: list[float] = []

    def worker(index: int) -> None:
        sid = 1_000_000 + index
        sock = socks[index % nconn]
        box = outboxes[index % nconn]
        variables: dict[str, object] = {}
        perf = time.perf_counter
        for fid in range(1, per_worker + 1):
            if time.monotonic() > stop_at:
                return
            # timed as bench_engine() times process_event: the same two clock reads
            t0 = perf()
            frame = encode_notify(sid, fid, payload)
            waiter = Waiter()
            waiting[sid, fid] = waiter
            if batched:
                if not box:
                    loop.run_callback(flush, index % nconn)
                box.append(frame)
            else:
                if sock.send(frame) != len(frame):
                    raise RuntimeError("short write of a small NOTIFY")
            ack = waiter.get()
            variables.update({a.name: a.value for a in ack.actions})
            latencies.append(perf() - t0)
            done[0] += 1

    start = time.perf_counter()
    cpu = time.process_time()
    gevent.joinall([gevent.spawn(worker, i) for i in range(streams)], timeout=duration + 10)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    for watcher in watchers:
        watcher.stop()
    for s in socks:
        s.close()
    return {"kind": "floor, batched" if batched else "floor", "concurrency": streams,
            "frames": done[0], "fps": done[0] / elapsed,
            "p50_ms": engine_bench.percentile(latencies, 0.5) * 1000,
            "p99_ms": engine_bench.percentile(latencies, 0.99) * 1000, "connections": nconn,
            "errors": 0,
            "cpu_us": 1e6 * cpu / max(done[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per measurement")
    parser.add_argument("--events", type=int, default=300000, help="events per run, at most")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every measurement")
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args()
    pin(0)
    sys.path.insert(0, ROOT)
    repeat = max(args.repeat, 1)
    kinds = ("floor", "floor, batched", "events, new streams", "events, long-lived")
    rows: dict[str, list[dict]] = {k: [] for k in kinds}
    agent = start_agent(set_vars=True)
    address = f"127.0.0.1:{agent.port}"
    try:
        for _ in range(repeat):
            rows["floor"].append(bench_floor(address, args.streams, args.duration, args.events))
            rows["floor, batched"].append(bench_floor(address, args.streams, args.duration,
                                                      args.events, batched=True))
            for kind, reuse in (("events, new streams", False), ("events, long-lived", True)):
                row = engine_bench.bench_engine(address, args.streams, args.duration,
                                                args.events, reuse=reuse)
                row["kind"] = kind
                rows[kind].append(row)
    finally:
        agent.stop()
    print(f"medians of {repeat} rounds of {args.duration:g} s; ACKs with two set-vars; "
          f"{load_average()}")
    engine_bench._print_rows([engine_bench._median(rows[k]) for k in kinds])
    for kind in kinds[2:]:
        by_cpu = [e["cpu_us"] / f["cpu_us"] for e, f in zip(rows[kind], rows["floor"])]
        by_rate = [f["fps"] / e["fps"] for e, f in zip(rows[kind], rows["floor"])]
        by_batched = [e["cpu_us"] / f["cpu_us"] for e, f in zip(rows[kind],
                                                                 rows["floor, batched"])]
        cpu = statistics.median(by_cpu)
        print(f"process_event x{args.streams} ({kind[8:]}) / floor: by CPU per event "
              f"{cpu:.2f}x (rounds: {', '.join(f'{r:.2f}' for r in by_cpu)}), by events/s "
              f"{statistics.median(by_rate):.2f}x; of the batched floor "
              f"{statistics.median(by_batched):.2f}x by CPU (issue 15 target 3, <= 1.5x the "
              f"floor: {'met' if cpu <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
