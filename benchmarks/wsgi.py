"""WSGI benchmark: gevent.pywsgi with SpoeMiddleware against the same server without it.

    .venv/bin/python benchmarks/wsgi.py [--duration 3] [--rounds 3] [--conns 50]

Four processes:

* two gevent.pywsgi servers pinned to core 0, the same tiny app: ``bare`` (plain
  ``WSGIHandler``) and ``spoe`` (``SpoeMiddleware`` + ``SpoeWSGIHandler``: one message per request,
  ``args ip=src path=path`` on ``on-frontend-http-request``);
* a cheap SPOA agent pinned to core 1 (an epoll loop answering each NOTIFY with an empty ACK);
* with ``--noop``, a third server: the middleware with a message whose condition is false
  (the stream and the rules run, no frame goes out), to separate the middleware's cost from
  the engine's;
* with ``--handler``, one more: the bare app under ``SpoeWSGIHandler`` (no middleware), to
  separate what the handler saves (the response head and a small body in one send, no
  access-log line formatted for ``log=None``) from what the middleware costs;
* a load generator pinned to core 1: ``--conns`` keep-alive connections, one request in flight
  on each, pre-encoded requests, latency measured per request.

The two servers are loaded in turn, ``--rounds`` times each (interleaved, so drifts of the
machine hit both), every run bounded by ``--duration`` seconds and ``--max-requests``.  The
report gives requests/s, p50/p99 latency, the ratio spoe/bare and the p99 latency added.

Both listeners set TCP_NODELAY (``spoe_sync.wsgi.listener``): gevent.pywsgi sends the headers
and the body of a response in two writes, and without TCP_NODELAY Nagle's algorithm holds the
second until the client's delayed ACK, which caps a keep-alive connection at about 25
requests/s (bare gevent.pywsgi: ~1.1k req/s instead of ~9k on 50 connections).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import time

from cheap_agent import run_agent  # this directory: the scripts run as files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = """[bench]
spoe-agent bench-agent
    messages check-request
    option var-prefix bench
    timeout hello 2s
    timeout idle 30s
    timeout processing 1s
    use-backend agents

spoe-message check-request
    args ip=src path=path
    event on-frontend-http-request
"""
# --noop: the same middleware and stream, but the message's condition is false: no frame sent,
# which isolates the middleware's own cost from the engine's round trip.
CONF_NOOP = CONF.replace("event on-frontend-http-request", "event on-frontend-http-request if FALSE")
REQUEST = b"GET /bench/path?x=1 HTTP/1.1\r\nHost: bench\r\n\r\n"
_LEN = struct.Struct(">I")


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def _write_port(path: str, port: int) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(path + ".tmp", path)



# --------------------------------------------------------------------------- the servers

def _app(environ, start_response):
    body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [body]


def run_server(port_file: str, with_spoe: bool, agent: str, noop: bool = False,
               spoe_handler: bool = False) -> None:
    _pin(0)
    sys.path.insert(0, ROOT)
    from gevent.pywsgi import WSGIHandler, WSGIServer

    from spoe_sync.wsgi import SpoeMiddleware, SpoeWSGIHandler, listener

    sock = listener(("127.0.0.1", 0))
    if with_spoe:
        app = SpoeMiddleware(_app, CONF_NOOP if noop else CONF, "bench", {"agents": [agent]})
        server = WSGIServer(sock, app, handler_class=SpoeWSGIHandler, log=None, error_log=None)
    else:
        server = WSGIServer(sock, _app, handler_class=SpoeWSGIHandler if spoe_handler
                            else WSGIHandler, log=None, error_log=None)
    _write_port(port_file, sock.getsockname()[1])
    server.serve_forever(stop_timeout=1)


# --------------------------------------------------------------------------- the load

def _response_end(buf: bytes) -> int:
    """Index just past the first complete response in ``buf``, or -1."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    head = buf[:head_end].lower()
    i = head.find(b"content-length:")
    length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) \
        if i >= 0 else 0
    end = head_end + 4 + length
    return end if len(buf) >= end else -1


def run_load(port: int, conns: int, duration: float, max_requests: int) -> None:
    _pin(1)
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    state = {s: [b"", 0.0] for s in socks}
    latencies: list[float] = []
    warmup_until = time.monotonic() + min(0.5, duration / 4)
    counting = False
    start = time.monotonic()
    deadline = warmup_until + duration
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        state[s][1] = time.monotonic()
        s.sendall(REQUEST)
    errors = 0
    while True:
        now = time.monotonic()
        if not counting and now >= warmup_until:
            counting, start, latencies = True, now, []
        if now >= deadline or len(latencies) >= max_requests:
            break
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            st = state[s]  # type: ignore[index]
            try:
                data = s.recv(65536)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if not data:
                errors += 1
                sel.unregister(s)
                continue
            st[0] += data
            end = _response_end(st[0])
            if end < 0:
                continue
            done = time.monotonic()
            if not st[0].startswith(b"HTTP/1.1 200"):
                errors += 1
            st[0] = st[0][end:]
            latencies.append(done - st[1])
            st[1] = done
            s.send(REQUEST)  # type: ignore[union-attr]
    elapsed = time.monotonic() - start
    for s in socks:
        s.close()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(int(len(latencies) * q), len(latencies) - 1)] * 1000 if latencies \
            else float("nan")

    print(json.dumps({"requests": len(latencies), "seconds": elapsed, "errors": errors,
                      "rps": len(latencies) / elapsed if elapsed else 0.0,
                      "p50": pct(0.5), "p99": pct(0.99)}))


# --------------------------------------------------------------------------- orchestration

class _Proc:
    """A child process of this benchmark, stopped by PID; its port read from a file."""

    def __init__(self, *args: str) -> None:
        self.port_file = f"/tmp/spoe-bench-wsgi-{os.getpid()}-{args[0]}-{time.monotonic_ns()}"
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args,
                                      "--port-file", self.port_file])
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"benchmark process {args[0]} did not start")
            time.sleep(0.01)
        with open(self.port_file) as f:
            self.port = int(f.read())
        os.unlink(self.port_file)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _cpu_seconds(pid: int) -> float:
    """user+system CPU time of a process (Linux /proc), 0.0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _load(server: _Proc, args: argparse.Namespace) -> dict:
    port = server.port
    cpu = _cpu_seconds(server.proc.pid)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--role", "load",
                          "--port", str(port), "--conns", str(args.conns),
                          "--duration", str(args.duration), "--max-requests",
                          str(args.max_requests)],
                         capture_output=True, text=True, timeout=args.duration + 60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # the server's CPU per request: steadier than requests/s on a shared machine (the warm-up
    # requests are not counted by the load generator, so this slightly overestimates)
    result["cpu"] = _cpu_seconds(server.proc.pid) - cpu
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("main", "agent", "server", "load"), default="main")
    parser.add_argument("--port-file")
    parser.add_argument("--spoe", action="store_true")
    parser.add_argument("--noop", action="store_true",
                        help="also run the middleware with a message that never fires")
    parser.add_argument("--handler", action="store_true",
                        help="also run the bare app under SpoeWSGIHandler")
    parser.add_argument("--agent")
    parser.add_argument("--port", type=int)
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=200000)
    args = parser.parse_args()
    if args.role == "agent":
        return run_agent(args.port_file)
    if args.role == "server":
        return run_server(args.port_file, args.spoe, args.agent, args.noop, args.handler)
    if args.role == "load":
        return run_load(args.port, args.conns, args.duration, args.max_requests)

    agent = _Proc("--role", "agent")
    servers = {}
    try:
        servers["bare"] = _Proc("--role", "server")
        servers["spoe"] = _Proc("--role", "server", "--spoe", "--agent", f"127.0.0.1:{agent.port}")
        if args.noop:
            servers["noop"] = _Proc("--role", "server", "--spoe", "--noop", "--agent",
                                    f"127.0.0.1:{agent.port}")
        if args.handler:
            servers["hand"] = _Proc("--role", "server", "--handler")
        runs: dict[str, list[dict]] = {name: [] for name in servers}
        for _ in range(max(1, args.rounds)):
            for name in servers:
                runs[name].append(_load(servers[name], args))
    finally:
        for proc in servers.values():
            proc.stop()
        agent.stop()
    summary = {}
    for name, results in runs.items():
        total = sum(r["requests"] for r in results)
        seconds = sum(r["seconds"] for r in results)
        summary[name] = {"rps": total / seconds, "p50": sorted(r["p50"] for r in results)[
            len(results) // 2], "p99": sorted(r["p99"] for r in results)[len(results) // 2],
            "errors": sum(r["errors"] for r in results),
            "cpu_us": sum(r["cpu"] for r in results) / max(total, 1) * 1e6}
        print(f"{name:5s} {summary[name]['rps']:8.0f} req/s  {summary[name]['cpu_us']:6.1f} us CPU/req"
              f"  p50 {summary[name]['p50']:6.2f} ms"
              f"  p99 {summary[name]['p99']:6.2f} ms  errors {summary[name]['errors']}  "
              f"(runs: {', '.join(format(r['rps'], '.0f') for r in results)})")
    if "noop" in summary:
        print(f"noop/bare (middleware without a frame): "
              f"{summary['noop']['rps'] / summary['bare']['rps']:.1%}")
    ratio = summary["spoe"]["rps"] / summary["bare"]["rps"]
    added = summary["spoe"]["p99"] - summary["bare"]["p99"]
    print(f"ratio spoe/bare: {ratio:.1%} (target >= 75%); p99 added: {added:.2f} ms "
          f"(target < 2 ms); {args.conns} keep-alive connections")
    print(f"CPU ratio bare/spoe (requests/s at equal CPU): "
          f"{summary['bare']['cpu_us'] / summary['spoe']['cpu_us']:.1%}")


if __name__ == "__main__":
    main()
