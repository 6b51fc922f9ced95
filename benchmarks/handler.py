"""SpoeWSGIHandler's request reading, in process: CPU per request of ``read_requestline`` +
``read_request`` (+ ``get_environ``) on pre-built requests.

    python benchmarks/handler.py [--duration 1] [--rounds 5] [--against /path/to/other/tree]

Each request is replayed from an ``io.BytesIO`` rfile through one handler (a socketpair stands
for the client socket; no I/O is measured, only the parsing and the environ).  With
``--against``, each round runs this tree and the other one (``PYTHONPATH``) alternately in
child processes, and the medians of both are printed with the saving per request (OLD vs NEW
on a shared machine: interleaved, by CPU time, never wall time).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

REQUESTS = {
    # issue 15's workload (benchmarks/_common.py REQUEST)
    "bench": b"GET /bench/path?x=1 HTTP/1.1\r\nHost: bench\r\n\r\n",
    "browser": (b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: www.example.com\r\n"
                b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101\r\n"
                b"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\n"
                b"Accept-Encoding: gzip, deflate, br\r\nReferer: https://www.example.com/\r\n"
                b"Cookie: sid=abc123; theme=dark\r\nConnection: keep-alive\r\n\r\n"),
    "post": (b"POST /api/items HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
             b"Content-Length: 9\r\n\r\n{\"k\": 1}\n"),
}


def _measure(name: str, environ: bool, duration: float) -> float:
    """CPU seconds per request (bounded by ``duration`` and a count)."""
    from gevent import pywsgi, socket

    from spoe_sync.wsgi import SpoeWSGIHandler

    server = pywsgi.WSGIServer(("127.0.0.1", 0), lambda e, s: [], log=None, error_log=None)
    client, peer = socket.socketpair()
    try:
        handler = SpoeWSGIHandler(client, ("127.0.0.1", 40000), server, io.BytesIO(b""))
        raw = REQUESTS[name]
        done, batch = 0, 200
        start = time.process_time()
        deadline = start + duration
        while done < 2_000_000:
            for _ in range(batch):
                handler.rfile = io.BytesIO(raw)
                if not handler.read_request(handler.read_requestline()):
                    raise SystemExit("refused")
                if environ:
                    handler.get_environ()
            done += batch
            if time.process_time() >= deadline:
                break
        return (time.process_time() - start) / done
    finally:
        client.close()
        peer.close()


def _one_round(duration: float) -> dict[str, float]:
    return {f"{name}{'+environ' if env else ''}": _measure(name, env, duration)
            for name in REQUESTS for env in (False, True)}


def _child(tree: str, duration: float) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, __file__, "--child", "--duration", str(duration)],
                         env=env, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="another tree (OLD), run alternately with this one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one_round(args.duration)))
        return
    if not args.against:
        for _ in range(args.rounds):
            print({k: f"{v * 1e6:.2f} us" for k, v in _one_round(args.duration).items()})
        return
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        runs["old"].append(_child(args.against, args.duration))
        runs["new"].append(_child(ROOT, args.duration))
    print(f"CPU per request, median of {args.rounds} interleaved rounds "
          f"(old: {args.against}, new: {ROOT})")
    for key in runs["old"][0]:
        old = statistics.median(r[key] for r in runs["old"]) * 1e6
        new = statistics.median(r[key] for r in runs["new"]) * 1e6
        print(f"  {key:18s} old {old:6.2f} us  new {new:6.2f} us  saved {old - new:5.2f} us "
              f"({new / old:.2f}x)")


if __name__ == "__main__":
    main()
