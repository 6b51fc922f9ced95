"""Engine benchmark: ``process_event`` against the raw ceiling, and 10,000 waiting streams.

    .venv/bin/python benchmarks/engine_events.py [--duration 3] [--streams 200] [--waiting 10000]

A cheap agent runs in a separate process pinned to the other core: an epoll loop
that reads only the stream-id and frame-id of each NOTIFY and answers with a
pre-encoded ACK around those id bytes (optionally holding every ACK back for
``--delay`` seconds).  In this process (pinned to core 0):

* ``raw``: the ceiling for one Python process in the same run: pre-encoded
  NOTIFYs pipelined on 4 connections with 20 in flight on each, ACKs only counted;
* ``engine``: ``--streams`` greenlets, each looping on "new stream, one
  ``process_event``" (a message with one ``src`` argument, evaluated and encoded
  every time), with the agent's ``max-waiting-frames 20`` and pipelining;
  target: at least 20% of the raw ceiling's frames/s;
* ``waiting``: ``--waiting`` streams all waiting at once on an agent that delays
  its ACKs; the RSS growth (and, with ``--tracemalloc``, the traced peak) while
  they wait; target: under 100 MB.

Every run is bounded by ``--duration`` seconds and by a frame budget.
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

_LEN = struct.Struct(">I")
CONF = """\
spoe-agent bench
    messages check-client-ip
    option var-prefix bench
    timeout hello 2s
    timeout idle 30s
    timeout processing {processing}
    use-backend agents
spoe-message check-client-ip
    args ip=src
    event on-frontend-http-request
"""
EVENT = "on-frontend-http-request"


# --------------------------------------------------------------------------- the agent process


def _varint_len(buf: bytes, pos: int) -> int:
    if buf[pos] < 240:
        return 1
    end = pos + 1
    while buf[end] >= 128:
        end += 1
    return end - pos + 1


def run_agent(port_file: str, delay: float) -> None:
    """Answers HELLO, ACKs each NOTIFY with no action (after ``delay`` seconds)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
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


class Agent:
    """The agent process, started and stopped by PID."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def __enter__(self) -> Agent:
        port_file = f"/tmp/spoe-bench-events-{os.getpid()}-{self.delay}.port"
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--agent",
                                      port_file, str(self.delay)])
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


def make_engine(address: str, processing: str = "5s"):  # type: ignore[no-untyped-def]
    import warnings

    from spoe_sync import Engine, load_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = load_config(CONF.format(processing=processing))
    return Engine(config, backends={"agents": [address]}, max_connecting=64)


def bench_raw(address: str, duration: float, max_frames: int, connections: int = 4,
              in_flight: int = 20) -> float:
    """Frames/s of pre-encoded NOTIFYs, ``in_flight`` per connection."""
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
        outstanding, done = in_flight, 0
        while outstanding:
            buf += sock.recv(262144)
            acked, pos = 0, 0
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
    gevent.joinall([gevent.spawn(run, i) for i in range(connections)], timeout=duration + 10)
    return sum(counts) / (time.perf_counter() - start)


def bench_engine(address: str, streams: int, duration: float, max_frames: int,
                 reuse: bool = False) -> dict:
    """``streams`` greenlets looping on ``process_event``: each on a new stream
    (one request per stream), or with ``reuse`` on one long-lived stream each."""
    import gevent

    from spoe_sync.samples import StaticSamples

    engine = make_engine(address)
    samples = StaticSamples({"src": "192.0.2.1"})
    # warm-up: the connections the steady state needs
    gevent.joinall([gevent.spawn(engine.process_event, engine.new_stream(samples), EVENT)
                    for _ in range(streams)], timeout=10)
    stop_at = time.monotonic() + duration
    per_worker = max(max_frames // streams, 1)
    done = [0]
    errors = [0]

    def worker() -> None:
        new_stream, process = engine.new_stream, engine.process_event
        stream = new_stream(samples)
        for _ in range(per_worker):
            if time.monotonic() > stop_at:
                return
            if process(stream if reuse else new_stream(samples), EVENT).status:
                errors[0] += 1
            done[0] += 1

    start = time.perf_counter()
    cpu = time.process_time()
    gevent.joinall([gevent.spawn(worker) for _ in range(streams)], timeout=duration + 10)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    m = engine.metrics()
    engine.close(2)
    return {"fps": done[0] / elapsed, "frames": done[0], "errors": errors[0],
            "connections": m.connections_opened, "cpu_us": 1e6 * cpu / max(done[0], 1)}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _wave(engine, samples, count: int, delay: float) -> dict:  # type: ignore[no-untyped-def]
    """``count`` streams at once; RSS growth once they all wait for their ACK."""
    import gc

    import gevent

    gc.collect()
    rss_before = _rss()
    greenlets = [gevent.spawn(lambda: engine.process_event(engine.new_stream(samples), EVENT))
                 for _ in range(count)]
    deadline = time.monotonic() + delay + 10
    peak_waiting = 0
    rss_waiting = rss_before
    while time.monotonic() < deadline:
        gevent.sleep(0.05)
        m = engine.metrics()
        if m.nb_waiting > peak_waiting:
            peak_waiting = m.nb_waiting
            rss_waiting = _rss()
        if m.nb_waiting == count or (peak_waiting and m.nb_waiting < peak_waiting):
            break
    gevent.joinall(greenlets, timeout=delay + 30)
    ok = sum(1 for g in greenlets if g.dead and g.value is not None and g.value.ok)
    return {"waiting": peak_waiting, "ok": ok, "rss_mb": (rss_waiting - rss_before) / 2**20}


def bench_waiting(address: str, count: int, delay: float, use_tracemalloc: bool) -> dict:
    """Two waves of ``count`` waiting streams: the first opens the agent
    connections (``count / max-waiting-frames`` of them), the second reuses them,
    so its RSS growth is what the waiting streams themselves take."""
    from spoe_sync.samples import StaticSamples

    engine = make_engine(address, processing=f"{int((delay + 20) * 1000)}ms")
    samples = StaticSamples({"src": "192.0.2.1"})
    cold = _wave(engine, samples, count, delay)
    if use_tracemalloc:
        import tracemalloc
        tracemalloc.start()
    warm = _wave(engine, samples, count, delay)
    traced = 0
    if use_tracemalloc:
        import tracemalloc
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    m = engine.metrics()
    engine.close(2)
    return {"cold": cold, "warm": warm, "traced_mb": traced / 2**20,
            "connections": m.connections_opened}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--agent":
        run_agent(sys.argv[2], float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--frames", type=int, default=200000, help="frames per measurement, at most")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--waiting", type=int, default=10000)
    parser.add_argument("--delay", type=float, default=3.0, help="ACK delay of the waiting run")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with Agent() as agent:
        raw = bench_raw(agent.address, args.duration, args.frames * 4)
        engine = bench_engine(agent.address, args.streams, args.duration, args.frames)
        reused = bench_engine(agent.address, args.streams, args.duration, args.frames, reuse=True)
    print(f"raw ceiling (4 conns x 20 in flight): {raw:>9.0f} frames/s")
    for label, r in (("a new stream per event", engine), ("long-lived streams", reused)):
        print(f"engine process_event, {args.streams} concurrent, {label}: {r['fps']:>7.0f} "
              f"events/s ({r['frames']} events, {r['errors']} errors, {r['cpu_us']:.0f} us CPU "
              f"per event, {r['connections']} connections, {100 * r['fps'] / raw:.0f}% of raw)")
    share = 100 * max(engine["fps"], reused["fps"]) / raw
    print(f"engine / raw: {share:.0f}% (target >= 20%: {'met' if share >= 20 else 'NOT met'})")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (figures mean "
          f"something only on an otherwise idle machine)")
    if args.waiting:
        with Agent(delay=args.delay) as slow:
            waiting = bench_waiting(slow.address, args.waiting, args.delay, args.tracemalloc)
        extra = f", tracemalloc peak {waiting['traced_mb']:.1f} MB" if args.tracemalloc else ""
        for wave in ("cold", "warm"):
            w = waiting[wave]
            print(f"{args.waiting} waiting streams ({wave}): {w['waiting']} waiting at once, "
                  f"{w['ok']} answered, RSS +{w['rss_mb']:.1f} MB"
                  + (extra if wave == "warm" else ""))
        best = waiting["warm"]["rss_mb"]
        print(f"({waiting['connections']} agent connections, opened during the cold wave; "
              f"target < 100 MB: {'met' if best < 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
