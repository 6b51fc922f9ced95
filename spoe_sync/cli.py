"""The ``spoe-sync`` command.

Each subcommand is a thin shell over a function of the layer that owns the work;
this module only parses arguments, prints, and maps outcomes to exit codes
(0 success, 1 failure, 2 usage error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__


def _cmd_decode(args: argparse.Namespace) -> int:
    from .protocol.describe import describe_hex

    text = " ".join(args.hex)
    if text == "-":
        text = sys.stdin.read()
    try:
        print(describe_hex(text))
    except ValueError as exc:
        print(f"spoe-sync decode: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .config.check import run_check

    if (args.file is None) == (args.haproxy is None) or (args.haproxy and args.engine):
        print("spoe-sync check: give FILE [--engine NAME], or --haproxy HAPROXY_CFG", file=sys.stderr)
        return 2
    return run_check(args.file, engine=args.engine, haproxy=args.haproxy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spoe-sync",
        description="HAProxy's SPOE (the engine side of SPOP) for gevent WSGI apps and TCP proxies.",
    )
    parser.add_argument("--version", action="version", version=f"spoe-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "decode",
        help="print an annotated decode of one SPOP frame given as hex",
        description="Decode one SPOP frame (hex, 4-byte length prefix included; spaces "
        "and newlines are ignored; '-' reads standard input) and print every field.",
    )
    p.add_argument("hex", nargs="+", help="the frame as hex, or - for standard input")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser(
        "check",
        help="check a SPOE configuration file the way haproxy -c does",
        description="Load a SPOE file (or every 'filter spoe' of a haproxy.cfg, with its "
        "backends) and print every error as [file:line] message, the warnings, and a "
        "summary. Exit status: 0 valid, 1 invalid, 2 usage error.",
    )
    p.add_argument("file", nargs="?", help="the SPOE configuration file")
    p.add_argument("--engine", help="the [scope] to read (filter spoe engine NAME)")
    p.add_argument("--haproxy", metavar="HAPROXY_CFG",
                   help="check every 'filter spoe' line of this haproxy.cfg")
    p.set_defaults(func=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
