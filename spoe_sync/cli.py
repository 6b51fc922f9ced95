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
    from .protocol.describe import describe_frame, parse_hex

    text = " ".join(args.hex)
    if text == "-":
        text = sys.stdin.read()
    try:
        described, ok = describe_frame(parse_hex(text))
    except ValueError as exc:
        print(f"spoe-sync decode: {exc}", file=sys.stderr)
        return 1
    print(described)
    return 0 if ok else 1  # what could be read is printed either way


def _cmd_check(args: argparse.Namespace) -> int:
    from .config.check import run_check

    if (args.file is None) == (args.haproxy is None) or (args.haproxy and args.engine):
        print("spoe-sync check: give FILE [--engine NAME], or --haproxy HAPROXY_CFG", file=sys.stderr)
        return 2
    return run_check(args.file, engine=args.engine, haproxy=args.haproxy)


def _split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _cmd_agent(args: argparse.Namespace) -> int:
    import logging

    from .examples.iprep import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, port = args.listen
    run(host, port, pipelining=not args.no_pipelining, async_=not args.no_async)
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from .engine.healthcheck import healthcheck

    try:
        result = healthcheck(args.address, timeout=args.timeout)
    except ValueError as exc:
        print(f"spoe-sync probe: {exc}", file=sys.stderr)
        return 2
    state = "healthy" if result.ok else "NOT healthy"
    print(f"{result.address}: {state} ({result.reason}) in {result.elapsed_ms} ms")
    if result.ok:
        print(f"  version         {result.version}")
        print(f"  max-frame-size  {result.max_frame_size}")
        print(f"  capabilities    {','.join(result.capabilities) or '(none)'}")
    else:
        print(f"  status          {result.status}")
    return 0 if result.ok else 1


def _time_s(text: str) -> float:
    from .config.syntax import parse_time_ms

    parsed = parse_time_ms(text, "time")
    if parsed.ms is None:
        raise argparse.ArgumentTypeError(f"invalid time {text!r} (HAProxy syntax: 500ms, 5s, 1m)")
    return parsed.ms / 1000


def _cmd_proxy(args: argparse.Namespace) -> int:
    from .proxy import run_proxy

    return run_proxy(args.listen, args.upstream, configs=args.config or (),
                     engines=args.engine or (), backends=args.backend or (),
                     tcp_request=args.tcp_request or (), tcp_response=args.tcp_response or (),
                     acls=args.acl or (), inspect_delay=args.inspect_delay,
                     idle_timeout=args.timeout, drain_timeout=args.drain, verbose=args.verbose,
                     tls_cert=args.tls_cert, tls_key=args.tls_key,
                     handshake_timeout=args.tls_handshake_timeout, upstream_tls=args.upstream_tls,
                     upstream_ca=args.upstream_ca, upstream_no_verify=args.upstream_no_verify,
                     upstream_sni=args.upstream_sni)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(timeout=args.timeout)


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

    p = sub.add_parser(
        "agent",
        help="run the example IP-reputation agent (a real SPOA)",
        description="Serve the example IP-reputation agent (message get-ip-reputation, "
        "SPOE.txt 2.5; its SPOE file is spoe_sync/examples/spoe-iprep.conf) until "
        "SIGINT or SIGTERM, then stop gracefully.",
    )
    p.add_argument("--listen", type=_split_listen, default=("127.0.0.1", 12345),
                   metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:12345)")
    p.add_argument("--no-async", action="store_true", help="do not announce async")
    p.add_argument("--no-pipelining", action="store_true", help="do not announce pipelining")
    p.set_defaults(func=_cmd_agent)

    p = sub.add_parser(
        "probe",
        help="run a SPOP health check against an agent",
        description="Send a HAPROXY-HELLO with healthcheck true (HAProxy's option "
        "spop-check) and print what the agent announces. Exit status: 0 healthy, "
        "1 not healthy, 2 usage error.",
    )
    p.add_argument("address", metavar="HOST:PORT", help="the agent (or a unix socket path)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="S",
                   help="seconds for the whole check (default 2)")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser(
        "proxy",
        help="run a TCP proxy that asks SPOE agents about each connection",
        description="Forward TCP connections from --listen to --upstream, firing the SPOE "
        "events (on-client-session, on-frontend-tcp-request, on-server-session, "
        "on-tcp-response) of each --config and applying the tcp-request/tcp-response "
        "content rules, as an HAProxy 'listen' section in mode tcp. --tls-cert terminates "
        "TLS (bind ... ssl crt), --upstream-tls speaks TLS to the upstream (server ... ssl "
        "verify required). Stops gracefully on "
        "SIGTERM or SIGINT. Exit status: 0 after a stop, 1 on a start failure, 2 usage error.",
    )
    p.add_argument("--listen", required=True, metavar="ADDR",
                   help="address to listen on: HOST:PORT, unix@/PATH (or /PATH) or abns@NAME")
    p.add_argument("--upstream", required=True, metavar="ADDR",
                   help="where to forward: HOST:PORT or unix@/PATH")
    p.add_argument("--tls-cert", metavar="FILE",
                   help="terminate TLS with this PEM certificate chain (with the key too, as "
                   "HAProxy's crt, unless --tls-key is given)")
    p.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    p.add_argument("--tls-handshake-timeout", type=_time_s, default=10.0, metavar="T",
                   help="time a client has to complete the TLS handshake (default 10s)")
    p.add_argument("--upstream-tls", action="store_true",
                   help="speak TLS to the upstream, verifying its certificate and host name "
                   "against the system CAs (SNI: the upstream host)")
    p.add_argument("--upstream-ca", metavar="FILE",
                   help="verify the upstream against the CAs of this PEM file instead")
    p.add_argument("--upstream-no-verify", action="store_true",
                   help="do not verify the upstream's certificate (encrypted, not authenticated)")
    p.add_argument("--upstream-sni", metavar="NAME",
                   help="the server name sent and verified (default: the --upstream host)")
    p.add_argument("--config", action="append", metavar="FILE",
                   help="a SPOE file (repeat for several engines, as several 'filter spoe')")
    p.add_argument("--engine", action="append", metavar="NAME",
                   help="the [scope] of each --config, in the same order")
    p.add_argument("--backend", action="append", metavar="NAME=ADDR[,ADDR]",
                   help="the agent servers of a use-backend name")
    p.add_argument("--tcp-request", action="append", metavar="RULE",
                   help="a tcp-request rule, e.g. 'content reject if { var(sess.iprep.ip_score) "
                   "-m int lt 20 }' (repeat, evaluated in order)")
    p.add_argument("--tcp-response", action="append", metavar="RULE",
                   help="a tcp-response rule (repeat, evaluated in order)")
    p.add_argument("--acl", action="append", metavar="LINE",
                   help="a named ACL the rules may use: 'NAME CRITERION [FLAGS] [PATTERNS]'")
    p.add_argument("--inspect-delay", type=_time_s, default=0.0, metavar="T",
                   help="wait up to T for the first request bytes (req.payload) before "
                   "on-frontend-tcp-request and the rules (default 0)")
    p.add_argument("--timeout", type=_time_s, default=300.0, metavar="T",
                   help="inactivity timeout of a connection; traffic either way resets it (default 5m)")
    p.add_argument("--drain", type=_time_s, default=10.0, metavar="T",
                   help="how long a stop lets connections finish (default 10s)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print spoe_sync's log (and 'log global' SPOE lines) on stderr")
    p.set_defaults(func=_cmd_proxy)

    p = sub.add_parser(
        "demo",
        help="run the example agent, a WSGI app and the TCP proxy, and show SPOE decisions",
        description="Start the example IP-reputation agent, a gevent WSGI app with "
        "SpoeMiddleware and the TCP proxy on free 127.0.0.1 ports, send a few requests "
        "(allowed and denied), print the SPOE log lines, the decisions and the counters. "
        "Exit status: 0 when every decision matched the agent's scores, 1 otherwise.",
    )
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="hard limit for the whole demo in seconds (default 30)")
    p.set_defaults(func=_cmd_demo)
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
