"""Rules micro-benchmark: conditions and sample expressions as the middleware runs them.

    python benchmarks/rules.py [--number 200000] [--repeat 5]

One process, no I/O: the best of ``--repeat`` timings of ``--number`` evaluations each, in µs
per call, of the conditions and argument expressions a typical configuration has (issue 15's
deny rule reading a variable an agent set, ``-m found``, a named ACL, a multi-value header,
and the ``src``/``path`` arguments of its message), against a WSGI request with its variables.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spoe_sync.engine.vars import Vars
from spoe_sync.rules import AclRegistry, EvalContext
from spoe_sync.rules.condition import parse_condition
from spoe_sync.rules.sample import parse_sample
from spoe_sync.rules.wsgisource import WSGISamples

ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/bench/path", "QUERY_STRING": "x=1",
           "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "40000",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "HTTP_HOST": "bench",
           "HTTP_USER_AGENT": "bench/1.0", "wsgi.url_scheme": "http"}
CONDITIONS = (
    "if { var(txn.bench.score) -m int ge 100 }",
    "if { var(txn.bench.verdict) -m found }",
    "unless { var(txn.bench.missing) -m found }",
    "if { var(txn.bench.verdict) -m str clean } !{ var(txn.bench.score) -m int lt 5 }",
    "if is_api or { path_beg /admin }",
    "if { hdr(host) -i bench other }",
)
EXPRESSIONS = ("src", "path", "var(txn.bench.score)", "req.hdr(host),lower")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    acls = AclRegistry()
    acls.add("is_api", ["path_beg", "/api"])
    variables = Vars()
    variables.set("txn.bench.score", 10)
    variables.set("txn.bench.verdict", "clean")

    def best(fn) -> float:  # type: ignore[no-untyped-def]
        return min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number * 1e6

    print(f"best of {args.repeat} x {args.number} calls, us per call")
    for text in CONDITIONS:
        cond = parse_condition(text.split(), acls)
        ctx = EvalContext(WSGISamples(dict(ENVIRON)), variables)
        print(f"  {best(lambda c=cond, x=ctx: c.evaluate(x)):6.3f}  {text}  -> "
              f"{cond.evaluate(ctx)}")
    for text in EXPRESSIONS:
        expr = parse_sample(text)
        # a new request each time, as in the server: what the samples cache is not reused
        took = best(lambda e=expr: e.evaluate(EvalContext(WSGISamples(dict(ENVIRON)), variables)))
        print(f"  {took:6.3f}"
              f"  evaluate {text} (with a new WSGISamples and EvalContext per call)")
    base = best(lambda: EvalContext(WSGISamples(dict(ENVIRON)), variables))
    print(f"  {base:6.3f}  (of which building the WSGISamples and EvalContext)")


if __name__ == "__main__":
    main()
