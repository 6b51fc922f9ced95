"""Where the middleware server spends its time: cProfile of it under wsgi.py's load.

    python benchmarks/profile_wsgi.py [--duration 3] [--conns 50] [--handler spoe|stock]
                                      [--top 30] [--empty] [--noop]

Starts the cheap agent and one ``SpoeMiddleware`` server (issue 15's workload, see
``_common.py``) under cProfile, loads it once, and prints the own time (``tottime``) by
module of the project (other code by package), then the top functions by own time and by
cumulative time.  cProfile roughly doubles the cost of Python calls, so read the shares, not
the absolute figures; the µs per request divide the profiled time by the requests served.
"""

from __future__ import annotations

import argparse
import os
import pstats
import tempfile
from collections import defaultdict

from _common import ROOT, load_average, measure, start_agent, start_server


def _module(filename: str) -> str:
    if filename.startswith(ROOT + os.sep):
        return os.path.relpath(filename, ROOT)
    if filename.startswith("<") or filename == "~":
        return "(builtins)"
    parts = filename.split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return parts[parts.index(marker) + 1]
    return "(stdlib) " + os.path.basename(filename)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--max-requests", type=int, default=200000)
    parser.add_argument("--handler", choices=("spoe", "stock"), default="spoe")
    parser.add_argument("--empty", action="store_true", help="empty ACK, no rule")
    parser.add_argument("--noop", action="store_true", help="a message that never fires")
    parser.add_argument("--bare", action="store_true",
                        help="the app without the middleware (what the handler itself costs)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spoe-bench-profile-") as workdir:
        stats_file = os.path.join(workdir, "server.prof")
        agent = start_agent(set_vars=not args.empty)
        try:
            server = start_server(agent.port, spoe=not args.bare, handler=args.handler,
                                  empty=args.empty,
                                  noop=args.noop, profile=stats_file)
            try:
                result = measure(server.port, {"server": server.pid}, args.conns,
                                 args.duration, args.max_requests)
            finally:
                server.stop()
        finally:
            agent.stop()
        stats = pstats.Stats(stats_file)
    total = max(result["total"], 1)
    print(f"{result['total']} requests ({result['rps']:.0f} req/s under cProfile), "
          f"{result['cpu']['server'] * 1e6:.1f} us CPU per request; {load_average()}")
    by_module: dict[str, float] = defaultdict(float)
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_module[_module(filename)] += tottime
    whole = sum(by_module.values()) or 1.0
    print("\nown time by module (profiled us per request, share):")
    for name, seconds in sorted(by_module.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {seconds / total * 1e6:7.2f} us {100 * seconds / whole:5.1f}%  {name}")
    for key in ("tottime", "cumulative"):
        print(f"\ntop functions by {key}:")
        rows = sorted(raw.items(), key=lambda kv: -kv[1][2 if key == "tottime" else 3])
        for (filename, line, name), (_cc, nc, tottime, cumtime, _c) in rows[:args.top]:
            print(f"  {tottime / total * 1e6:7.2f} us own {cumtime / total * 1e6:8.2f} us cum "
                  f"{nc / total:5.2f} calls/req  {_module(filename)}:{line}({name})")


if __name__ == "__main__":
    main()
