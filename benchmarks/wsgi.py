"""WSGI benchmark: gevent.pywsgi with SpoeMiddleware against the same server without it.

    python benchmarks/wsgi.py [--duration 3] [--rounds 3] [--conns 50] [--noop] [--floor]
                              [--empty]

The middleware's cost over the bare app (issue 15, target 2), with the same handler on both
sides, for both handlers.  Processes (see ``_common.py`` for the workload and the pinning):

* four gevent.pywsgi servers of the same tiny app, pinned to core 0:
  ``bare`` (gevent's stock ``WSGIHandler``), ``bare+h`` (``SpoeWSGIHandler``, no middleware),
  ``spoe`` (``SpoeMiddleware`` + ``SpoeWSGIHandler``) and ``spoe-stock`` (``SpoeMiddleware``
  + gevent's handler): one message per request, ``args ip=src path=path`` on
  ``on-frontend-http-request``, and the deny rule reading the agent's variable;
* with ``--noop``, one more: the middleware with a message whose condition is false
  (the stream and the rules run, no frame goes out), to separate the middleware's cost from
  the engine's;
* with ``--floor``, two more, one per handler (``floor+h``, ``floor-stock``): the bare app
  behind the floor (``floor_client.py``), the least a Python client on gevent must do per
  request for the same workload (the two arguments encoded, one round trip sharing its writes
  and reads with the other requests, the two variables stored, the rule's comparison): what
  the middleware's cost can be read against, measured under the same load;
* the cheap agent (``cheap_agent.py``) pinned to core 1: each NOTIFY answered with an ACK
  carrying two set-var actions (``--empty``: an empty ACK, and no rule);
* a load generator pinned to core 1: ``--conns`` keep-alive connections, one request in flight
  on each, pre-encoded requests, latency measured per request.

The servers are loaded in turn, ``--rounds`` times each (interleaved, so drifts of the
machine hit all of them), every run bounded by ``--duration`` seconds and ``--max-requests``.
CPU per request is read from ``/proc/<pid>/stat`` (user + system) of the server and of the
agent around each run, divided by every response of the run (warm-up included).  The report
gives requests/s, p50/p99 latency, CPU per request, and per handler the CPU the middleware
adds over the bare app and the ratio of requests/s.

Both listeners set TCP_NODELAY (``spoe_sync.wsgi.listener``): gevent.pywsgi sends the headers
and the body of a response in two writes, and without TCP_NODELAY Nagle's algorithm holds the
second until the client's delayed ACK, which caps a keep-alive connection at about 25
requests/s (bare gevent.pywsgi: ~1.1k req/s instead of ~9k on 50 connections).
"""

from __future__ import annotations

import argparse

from _common import Proc, load_average, measure, start_agent, start_server, summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noop", action="store_true",
                        help="also run the middleware with a message that never fires")
    parser.add_argument("--floor", action="store_true",
                        help="also run the bare app behind the floor's minimal round trip")
    parser.add_argument("--handler", action="store_true",
                        help="(always on now: both handlers run on both sides)")
    parser.add_argument("--empty", action="store_true",
                        help="an empty ACK and no deny rule (the lighter, earlier workload)")
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=200000)
    args = parser.parse_args()

    agent = start_agent(set_vars=not args.empty)
    servers: dict[str, Proc] = {}
    try:
        servers["bare"] = start_server()
        servers["bare+h"] = start_server(handler="spoe")
        servers["spoe"] = start_server(agent.port, spoe=True, handler="spoe", empty=args.empty)
        servers["spoe-stock"] = start_server(agent.port, spoe=True, empty=args.empty)
        if args.noop:
            servers["noop"] = start_server(agent.port, spoe=True, handler="spoe",
                                           empty=args.empty, noop=True)
        if args.floor:
            servers["floor+h"] = start_server(agent.port, floor=True, handler="spoe")
            servers["floor-stock"] = start_server(agent.port, floor=True)
        runs: dict[str, list[dict]] = {name: [] for name in servers}
        for _ in range(max(1, args.rounds)):
            for name, server in servers.items():
                runs[name].append(measure(server.port, {"server": server.pid,
                                                        "agent": agent.pid},
                                          args.conns, args.duration, args.max_requests))
    finally:
        for proc in servers.values():
            proc.stop()
        agent.stop()
    s = {name: summarise(results) for name, results in runs.items()}
    print(f"{args.rounds} interleaved rounds of {args.duration:g} s, {args.conns} keep-alive "
          f"connections; workload: {'empty ACK, no rule' if args.empty else 'two set-vars + deny rule'}"
          f"; {load_average()}")
    for name, r in s.items():
        print(f"{name:10s} {r['rps']:8.0f} req/s  server {r['cpu']['server'] * 1e6:6.1f} us CPU/req"
              f"  agent {r['cpu']['agent'] * 1e6:5.1f}  p50 {r['p50']:6.2f} ms"
              f"  p99 {r['p99']:6.2f} ms  errors {r['errors']}  "
              f"(runs: {', '.join(format(x, '.0f') for x in r['runs'])})")
    if "noop" in s:
        print(f"noop/bare+h (middleware without a frame): "
              f"{s['noop']['rps'] / s['bare+h']['rps']:.1%} of the requests/s, "
              f"+{(s['noop']['cpu']['server'] - s['bare+h']['cpu']['server']) * 1e6:.1f} us CPU/req")
    for label, mw, bare in (("SpoeWSGIHandler", "spoe", "bare+h"), ("gevent's handler",
                                                                   "spoe-stock", "bare")):
        added = (s[mw]["cpu"]["server"] - s[bare]["cpu"]["server"]) * 1e6
        print(f"{label} both sides: middleware adds {added:.1f} us CPU/req to the server "
              f"(target <= 20 us); {s[mw]['rps'] / s[bare]['rps']:.1%} of the bare requests/s; "
              f"p99 {s[mw]['p99'] - s[bare]['p99']:+.2f} ms")
    if "floor+h" in s:
        for label, floor, mw, bare in (("SpoeWSGIHandler", "floor+h", "spoe", "bare+h"),
                                       ("gevent's handler", "floor-stock", "spoe-stock",
                                        "bare")):
            least = (s[floor]["cpu"]["server"] - s[bare]["cpu"]["server"]) * 1e6
            own = (s[mw]["cpu"]["server"] - s[floor]["cpu"]["server"]) * 1e6
            print(f"{label}: the floor's round trip alone adds {least:.1f} us CPU/req "
                  f"({s[floor]['rps'] / s[bare]['rps']:.1%} of the bare requests/s); the "
                  f"middleware costs {own:+.1f} us more than the floor")
    ratio = s["spoe-stock"]["rps"] / s["bare"]["rps"]
    print(f"stock-handler ratio spoe-stock/bare: {ratio:.1%} of the requests/s (target >= 75%: "
          f"{'met' if ratio >= 0.75 else 'NOT met'})")


if __name__ == "__main__":
    main()
