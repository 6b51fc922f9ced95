"""What the WSGI benchmarks share: the workload, the servers, the load generator, the CPU count.

``wsgi.py`` and ``vs_haproxy.py`` start their processes through :class:`Proc` and measure one
run with :func:`measure`.  The roles of the child processes are this file's command line::

    python benchmarks/_common.py server --port-file F [--spoe] [--handler stock|spoe] ...
    python benchmarks/_common.py load --port N --conns 50 --duration 3 --max-requests 200000

The workload is issue 15's: one message per request (``args ip=src path=path`` on
``on-frontend-http-request``), an agent answering each NOTIFY with an ACK carrying two set-var
actions (``cheap_agent.SET_VARS``), and one deny rule reading the variable the agent set
(:data:`DENY_RULE`, never true, so every request reaches the app and the rule runs in full).
``--empty`` gives the earlier, lighter workload: an empty ACK and no rule.

Pinning: the servers (and HAProxy) run on core 0, the agent and the load generator on core 1,
so that what is measured on core 0 is never starved by the measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
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
CONF_NOOP = CONF.replace("event on-frontend-http-request",
                         "event on-frontend-http-request if FALSE")
#: the deny rule, as written after ``http-request`` in a haproxy.cfg
DENY_RULE = "deny deny_status 403 if { var(txn.bench.score) -m int ge 100 }"
REQUEST = b"GET /bench/path?x=1 HTTP/1.1\r\nHost: bench\r\n\r\n"


def pin(core: int) -> None:
    """Runs this process on one core (when the machine has more than one)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def write_port(path: str, port: int) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(path + ".tmp", path)  # atomic: the parent never reads half a number


def free_port() -> int:
    """A loopback port free now (for HAProxy's binds, which we must name in its config)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of a process, all its threads (Linux /proc), 0.0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


class Proc:
    """A child process of a benchmark, stopped by PID.

    ``argv`` after the interpreter; with ``port_file`` the child writes the port it listens
    on to the file named by ``--port-file`` (read into :attr:`port`)."""

    def __init__(self, argv: Sequence[str], port_file: bool = True, **popen: object) -> None:
        self.name = os.path.basename(argv[0])
        args = list(argv)
        self.port = 0
        path = ""
        if port_file:
            path = f"/tmp/spoe-bench-{os.getpid()}-{time.monotonic_ns()}.port"
            args += ["--port-file", path]
        self.proc = subprocess.Popen(args, **popen)  # type: ignore[call-overload]
        self.pid = self.proc.pid
        if not port_file:
            return
        deadline = time.monotonic() + 15
        while not os.path.exists(path):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"benchmark process {' '.join(argv[:3])} did not start")
            time.sleep(0.01)
        with open(path) as f:
            self.port = int(f.read())
        os.unlink(path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def python(script: str, *args: str) -> list[str]:
    """The command line running ``script`` (a file of this directory) with this interpreter."""
    return [sys.executable, os.path.join(HERE, script), *args]


def start_agent(set_vars: bool, delay: float = 0.0) -> Proc:
    args = ["--delay", str(delay)] + (["--set-vars"] if set_vars else [])
    return Proc(python("cheap_agent.py", *args))


def start_server(agent_port: int = 0, *, spoe: bool = False, handler: str = "stock",
                 empty: bool = False, noop: bool = False, profile: str | None = None,
                 floor: bool = False) -> Proc:
    """A gevent.pywsgi server of the tiny app on core 0: bare, or with the middleware
    (``spoe``) asking the agent on ``agent_port``, or behind the floor's minimal round trip
    (``floor``, ``floor_client.py``); gevent's ``stock`` handler or ``spoe``'s."""
    args = ["server", "--handler", handler]
    if spoe:
        args += ["--spoe", "--agent", f"127.0.0.1:{agent_port}"]
    elif floor:
        args += ["--floor", "--agent", f"127.0.0.1:{agent_port}"]
    if empty:
        args.append("--empty")
    if noop:
        args.append("--noop")
    if profile:
        args += ["--profile", profile]
    return Proc(python("_common.py", *args))


# --------------------------------------------------------------------------- the servers

def app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def run_server(cli: argparse.Namespace) -> None:
    pin(0)
    sys.path.insert(0, ROOT)
    from gevent.pywsgi import WSGIHandler, WSGIServer

    from spoe_sync.wsgi import SpoeMiddleware, SpoeWSGIHandler, listener

    sock = listener(("127.0.0.1", 0))
    handler = SpoeWSGIHandler if cli.handler == "spoe" else WSGIHandler
    application = app
    if cli.spoe:
        application = SpoeMiddleware(app, CONF_NOOP if cli.noop else CONF, "bench",
                                     {"agents": [cli.agent]},
                                     http_request=() if cli.empty else (DENY_RULE,))
    elif cli.floor:
        from floor_client import floor_app

        application = floor_app(app, cli.agent)
    server = WSGIServer(sock, application, handler_class=handler, log=None, error_log=None)
    if cli.profile:
        _profile_until_stopped(server, cli.profile)
    write_port(cli.port_file, sock.getsockname()[1])
    server.serve_forever(stop_timeout=1)


def _profile_until_stopped(server, path: str) -> None:  # type: ignore[no-untyped-def]
    """cProfile the server from now on; its stats go to ``path`` when it is terminated."""
    import cProfile
    import signal

    import gevent

    profiler = cProfile.Profile()

    def stop() -> None:
        profiler.disable()
        profiler.dump_stats(path)
        server.stop(timeout=1)

    gevent.signal_handler(signal.SIGTERM, stop)
    profiler.enable()


# --------------------------------------------------------------------------- the load

def response_end(buf: bytes) -> int:
    """Index just past the first complete response in ``buf``, or -1."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    head = buf[:head_end].lower()
    i = head.find(b"content-length:")
    length = 0
    if i >= 0:
        eol = head.find(b"\r\n", i)
        length = int(head[i + 15:eol if eol > 0 else None])
    end = head_end + 4 + length
    return end if len(buf) >= end else -1


def run_load(port: int, conns: int, duration: float, max_requests: int) -> dict:
    """``conns`` keep-alive connections, one request in flight on each, for ``duration``
    seconds after a warm-up (or ``max_requests``).  ``total`` counts the warm-up's responses
    too: the servers' CPU, read around the whole run, is divided by it."""
    pin(1)
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
    total = 0
    open_conns = conns
    while open_conns:
        now = time.monotonic()
        if not counting and now >= warmup_until:
            counting, start, latencies = True, now, []
        if now >= deadline or len(latencies) >= max_requests:
            break
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj  # type: ignore[assignment]
            st = state[s]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                errors += 1
                open_conns -= 1
                sel.unregister(s)
                continue
            st[0] += data  # type: ignore[operator]
            end = response_end(st[0])  # type: ignore[arg-type]
            if end < 0:
                continue
            done = time.monotonic()
            if not st[0].startswith(b"HTTP/1.1 200"):  # type: ignore[union-attr]
                errors += 1
            st[0] = st[0][end:]  # type: ignore[index]
            latencies.append(done - st[1])  # type: ignore[operator]
            total += 1
            st[1] = done
            s.send(REQUEST)
    elapsed = time.monotonic() - start
    for s in socks:
        s.close()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(int(len(latencies) * q), len(latencies) - 1)] * 1000 \
            if latencies else float("nan")

    return {"requests": len(latencies), "total": total, "seconds": elapsed, "errors": errors,
            "rps": len(latencies) / elapsed if elapsed else 0.0,
            "p50": pct(0.5), "p99": pct(0.99)}


def measure(port: int, pids: dict[str, int], conns: int, duration: float,
            max_requests: int) -> dict:
    """One load run against ``port``; ``cpu`` maps each name of ``pids`` to its CPU seconds
    per request over the run (warm-up included on both sides of the division)."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    out = subprocess.run(python("_common.py", "load", "--port", str(port), "--conns", str(conns),
                                "--duration", str(duration), "--max-requests",
                                str(max_requests)),
                         capture_output=True, text=True, timeout=duration + 60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    total = max(result["total"], 1)
    result["cpu"] = {name: (cpu_seconds(pid) - before[name]) / total
                     for name, pid in pids.items()}
    return result


def summarise(results: list[dict]) -> dict:
    """Rounds of one set-up: requests/s over all rounds, median p50/p99, CPU per request."""
    requests = sum(r["requests"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    total = sum(r["total"] for r in results)
    cpu = {name: sum(r["cpu"][name] * r["total"] for r in results) / max(total, 1)
           for name in results[0]["cpu"]}
    return {"rps": requests / seconds if seconds else 0.0,
            "p50": sorted(r["p50"] for r in results)[len(results) // 2],
            "p99": sorted(r["p99"] for r in results)[len(results) // 2],
            "errors": sum(r["errors"] for r in results), "cpu": cpu,
            "cpu_total": sum(cpu.values()), "runs": [r["rps"] for r in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("server", "load"))
    parser.add_argument("--port-file")
    parser.add_argument("--spoe", action="store_true")
    parser.add_argument("--handler", choices=("stock", "spoe"), default="stock")
    parser.add_argument("--empty", action="store_true")
    parser.add_argument("--noop", action="store_true")
    parser.add_argument("--floor", action="store_true",
                        help="server: the app behind floor_client's minimal round trip")
    parser.add_argument("--agent")
    parser.add_argument("--profile", help="server: cProfile it, stats written here on SIGTERM")
    parser.add_argument("--port", type=int)
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--max-requests", type=int, default=200000)
    cli = parser.parse_args()
    if cli.role == "server":
        run_server(cli)
    else:
        print(json.dumps(run_load(cli.port, cli.conns, cli.duration, cli.max_requests)))


if __name__ == "__main__":
    main()
