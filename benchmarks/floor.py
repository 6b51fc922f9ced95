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
  decoder, actions included), one dict update (the two variables); the connections, their
  reader callback and the flush are ``floor_client.FloorClient``'s, which ``wsgi.py --floor``
  runs inside a WSGI app;
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
import sys
import time

import engine as engine_bench  # this directory: the scripts run as files
from _common import ROOT, load_average, pin, start_agent
from floor_client import FloorClient


def bench_floor(address: str, streams: int, duration: float, max_events: int,
                batched: bool = False) -> dict:
    import gevent
    from gevent.hub import Waiter

    from spoe_sync.protocol.codec import MessageEncoder, encode_notify

    payload = MessageEncoder("check-client-ip", ["ip"]).encode(["192.0.2.1"])
    client = FloorClient(address, max(1, (streams + 19) // 20))
    socks, waiting, outboxes = client.socks, client.waiting, client.outboxes
    nconn = len(socks)
    loop, flush = client.loop, client.flush
    stop_at = time.monotonic() + duration
    per_worker = max(max_events // streams, 1)
    done = [0]
    latencies: list[float] = []

    def worker(index: int) -> None:
        # FloorClient.round_trip's steps written out, with a frame id per event and the
        # unbatched variant (one send per NOTIFY)
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
    client.close()
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
