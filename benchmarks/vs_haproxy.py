"""Side by side: HAProxy 2.6 + SPOE in front of a bare app, against SpoeMiddleware in the app.

    python benchmarks/vs_haproxy.py [--duration 3] [--rounds 3] [--conns 50] [--no-bare]

Issue 15's comparison, in one interleaved run.  The set-ups, all serving the same tiny app
with gevent.pywsgi, all asking the same agent process the same question (the SPOE file of
``_common.CONF``: one message, ``args ip=src path=path`` on ``on-frontend-http-request``),
answered by an ACK carrying two set-var actions, and all running the same deny rule
(``_common.DENY_RULE``, reading the variable the agent set; never true):

* ``haproxy``: HAProxy (``nbthread 1``, a generated haproxy.cfg on free 127.0.0.1 ports,
  ``filter spoe`` with that SPOE file, the rule in ``http-request``) in front of a bare
  gevent.pywsgi app (gevent's handler), HAProxy keeping its server connections alive;
* ``haproxy-h``: the same with ``SpoeWSGIHandler`` in the app behind HAProxy (the handler
  is usable without the middleware, and parses headers faster than gevent's): the comparison
  with our handler's own saving taken out of it;
* ``mw``: gevent.pywsgi + ``SpoeMiddleware`` + ``SpoeWSGIHandler``;
* ``mw-stock``: the same with gevent's stock ``WSGIHandler``;
* ``bare`` (unless ``--no-bare``): the app alone, gevent's handler, for reference.

How it measures:

* pinning: every server process (HAProxy, the apps) runs on core 0, the agent and the load
  generator on core 1, so that the measured processes compete only with each other, as they
  would on a one-core worker;
* interleaving: each round loads every set-up once, in turn, ``--rounds`` rounds (the order
  rotates from round to round), so that a drift of the machine's load hits all of them;
* load: ``--conns`` keep-alive connections, one request in flight on each, latency measured
  per request, after a warm-up; each run bounded by ``--duration`` seconds and
  ``--max-requests``;
* CPU: user + system time from ``/proc/<pid>/stat`` (all threads) of EVERY process of the
  set-up except the load generator (HAProxy, the app, the agent), read before and after
  each run and divided by every response of the run, warm-up included.  Reported per 1000
  requests, by process, and the ratio middleware / HAProxy-in-front for CPU per request
  and p99 (issue 15 target 1: CPU at most 0.75x, p99 no worse).

Skipped with a message (exit status 0) when ``haproxy`` is not on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from _common import (
    CONF,
    DENY_RULE,
    Proc,
    free_port,
    load_average,
    measure,
    pin,
    start_agent,
    start_server,
    summarise,
)

HAPROXY_CFG = """\
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend bench
    bind 127.0.0.1:{port}
    filter spoe engine bench config {spoe}
    http-request {rule}
    default_backend app

backend app
    server app 127.0.0.1:{app}

backend agents
    mode tcp
    balance roundrobin
    server agent 127.0.0.1:{agent}
"""


def _wait_listening(port: int, proc: Proc, what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"{what} did not start listening on 127.0.0.1:{port}")


def start_haproxy(haproxy: str, workdir: str, app_port: int, agent_port: int,
                  tag: str = "") -> Proc:
    spoe = os.path.join(workdir, "bench.spoe.conf")
    with open(spoe, "w") as f:
        f.write(CONF)
    port = free_port()
    cfg = os.path.join(workdir, f"haproxy{tag}.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG.format(port=port, spoe=spoe, rule=DENY_RULE, app=app_port,
                                   agent=agent_port))
    check = subprocess.run([haproxy, "-c", "-q", "-f", cfg], capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"haproxy -c refused the generated config:\n{check.stderr}")
    # -db: foreground; pinned before exec so that every thread HAProxy makes inherits core 0
    proc = Proc([haproxy, "-db", "-f", cfg], port_file=False, preexec_fn=lambda: pin(0),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.port = port
    _wait_listening(port, proc, "haproxy")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=200000)
    parser.add_argument("--no-bare", action="store_true", help="leave the bare app alone out")
    args = parser.parse_args()
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        print("SKIPPED: haproxy is not on PATH (this comparison needs HAProxy 2.6 in front)")
        return
    version = subprocess.run([haproxy, "-v"], capture_output=True, text=True).stdout.split("\n")[0]

    procs: list[Proc] = []
    # set-up name -> (port loaded, {process label: pid})
    setups: dict[str, tuple[int, dict[str, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="spoe-bench-haproxy-") as workdir:
        try:
            agent = start_agent(set_vars=True)
            procs.append(agent)
            behind = start_server()
            procs.append(behind)
            front = start_haproxy(haproxy, workdir, behind.port, agent.port)
            procs.append(front)
            setups["haproxy"] = (front.port, {"app": behind.pid, "haproxy": front.pid,
                                              "agent": agent.pid})
            behind_h = start_server(handler="spoe")
            procs.append(behind_h)
            front_h = start_haproxy(haproxy, workdir, behind_h.port, agent.port, "-h")
            procs.append(front_h)
            setups["haproxy-h"] = (front_h.port, {"app": behind_h.pid, "haproxy": front_h.pid,
                                                  "agent": agent.pid})
            for name, handler in (("mw", "spoe"), ("mw-stock", "stock")):
                server = start_server(agent.port, spoe=True, handler=handler)
                procs.append(server)
                setups[name] = (server.port, {"app": server.pid, "agent": agent.pid})
            if not args.no_bare:
                bare = start_server()
                procs.append(bare)
                setups["bare"] = (bare.port, {"app": bare.pid})
            runs: dict[str, list[dict]] = {name: [] for name in setups}
            names = list(setups)
            for round_ in range(max(1, args.rounds)):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    port, pids = setups[name]
                    runs[name].append(measure(port, pids, args.conns, args.duration,
                                              args.max_requests))
        finally:
            for proc in reversed(procs):
                proc.stop()
    report(runs, args, version)


def report(runs: dict[str, list[dict]], args: argparse.Namespace, version: str) -> None:
    s = {name: summarise(results) for name, results in runs.items()}
    print(f"{version}; {args.rounds} interleaved rounds of {args.duration:g} s, {args.conns} "
          f"keep-alive connections; {load_average()}")
    print(f"{'set-up':10s}{'req/s':>9s}{'p50 ms':>9s}{'p99 ms':>9s}{'errors':>8s}  "
          "CPU s per 1000 requests: all (by process)")
    for name, r in s.items():
        parts = ", ".join(f"{proc} {cpu * 1000:.3f}" for proc, cpu in r["cpu"].items())
        print(f"{name:10s}{r['rps']:9.0f}{r['p50']:9.2f}{r['p99']:9.2f}{r['errors']:8d}  "
              f"{r['cpu_total'] * 1000:.3f} ({parts})   runs: "
              f"{', '.join(format(x, '.0f') for x in r['runs'])}")
    ha = s["haproxy"]
    for name in ("mw", "mw-stock"):
        cpu = s[name]["cpu_total"] / ha["cpu_total"] if ha["cpu_total"] else float("nan")
        p99 = s[name]["p99"] / ha["p99"] if ha["p99"] else float("nan")
        rps = s[name]["rps"] / ha["rps"] if ha["rps"] else float("nan")
        verdict = "met" if cpu <= 0.75 and p99 <= 1.0 else "NOT met"
        print(f"{name}/haproxy: CPU per request {cpu:.2f}x, p99 {p99:.2f}x, requests/s {rps:.2f}x"
              + (f" (issue 15 target 1, CPU <= 0.75x and p99 <= 1x: {verdict})"
                 if name == "mw" else ""))
    hh = s["haproxy-h"]
    if hh["cpu_total"] and hh["p99"] and hh["rps"]:
        print(f"mw/haproxy-h (SpoeWSGIHandler on both sides): CPU per request "
              f"{s['mw']['cpu_total'] / hh['cpu_total']:.2f}x, p99 {s['mw']['p99'] / hh['p99']:.2f}x"
              f", requests/s {s['mw']['rps'] / hh['rps']:.2f}x")
    if any(r["errors"] for r in s.values()):
        print("WARNING: some runs had errors (non-200 answers or closed connections)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
