"""``python -m tests.conformance.fuzz --seed N --count M [--handler stock|gunicorn]``: a differential run
of N's requests against HAProxy 2.6; prints every mismatch class with its count per 1,000
requests, HAProxy's value, ours and a minimised reproducer.  Exit status 1 when a class is not
in the KNOWN list."""

from __future__ import annotations

import argparse
import shutil
import sys

from .run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.fuzz")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--handler", choices=("spoe", "stock", "gunicorn"), default="spoe",
                        help="SpoeWSGIHandler (default), gevent's stock WSGIHandler, or "
                             "gunicorn -k spoe_sync.wsgi.gunicorn.GeventWorker")
    parser.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    parser.add_argument("--no-minimise", action="store_true")
    args = parser.parse_args(argv)
    text, new = run(args.haproxy, args.seed, args.count, handler=args.handler,
                    minimise_known=not args.no_minimise)
    print(text)
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
