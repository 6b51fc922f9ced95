"""The ``spoe-sync`` command.

Each subcommand is a thin shell over a function of the layer that owns the work;
this module only parses arguments, prints, and maps outcomes to exit codes
(0 success, 1 failure, 2 usage error).
"""

from __future__ import annotations

import argparse
import os
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


# -- argument types: one parser per kind of value, shared by every command, so that an address
# -- or a time means the same everywhere and a malformed one is a usage error (exit 2)

_ADDRESS_HELP = ("HAProxy's forms: HOST:PORT, [IPV6]:PORT, ipv4@/ipv6@ prefixes, unix@/PATH "
                 "(or /PATH), abns@NAME")


def listen_address(text: str) -> str:
    """An address to listen on, checked (HAProxy's ``bind``: ``:PORT`` and ``*:PORT`` are every
    IPv4 address, port 0 a free port); returned as written."""
    from .errors import ConfigError
    from .proxy.listen import parse_listen_address

    try:
        parse_listen_address(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def tcp_listen_address(text: str) -> tuple[str, int]:
    """:func:`listen_address` limited to TCP, as ``(host, port)``."""
    from .proxy.listen import parse_listen_address

    address = parse_listen_address(listen_address(text))
    if isinstance(address, str):
        raise argparse.ArgumentTypeError(f"'{text}': a TCP address is needed here (HOST:PORT)")
    return address


def server_address(text: str) -> str:
    """An address to connect to, checked (HAProxy's ``server``: a host and a port 1-65535,
    or a UNIX socket); returned as written."""
    from .config.backends import parse_address

    try:
        parse_address(text)
    except ValueError as exc:
        hint = ""
        if text.strip().startswith((":", "*:")):
            hint = " (':PORT' means every address: only an address to listen on can be that)"
        raise argparse.ArgumentTypeError(f"{exc}{hint}") from None
    return text.strip()


def backend_spec(text: str) -> str:
    """``NAME=ADDR[,ADDR]`` with each ADDR a :func:`server_address`; returned as written."""
    from .errors import ConfigError
    from .proxy.command import parse_backends

    try:
        parse_backends([text])
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def positive_seconds(text: str) -> float:
    """A number of seconds greater than 0 (and finite)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} seconds: give a number greater than 0")
    return value


def positive_int(text: str) -> int:
    """A whole number greater than 0."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: give a whole number >= 1")
    return int(text)


def _cmd_agent(args: argparse.Namespace) -> int:
    import logging

    from .examples.iprep import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, port = args.listen
    try:
        run(host, port, pipelining=not args.no_pipelining, async_=not args.no_async)
    except OSError as exc:  # the port in use, an address not local: a message, no traceback
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # gevent appends the address to strerror: the errno's own words read better
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"spoe-sync agent: cannot listen on {shown}: {reason}", file=sys.stderr)
        return 1
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
        print(f"  status          {_status_meaning(result.status)}")
    return 0 if result.ok else 1


def _status_meaning(status: int) -> str:
    """A SPOP status code with HAProxy's words for it (``3 (frame is too big)``)."""
    from .protocol.constants import frame_status_reason

    if status < 0:
        return f"{status} (no SPOP exchange: the agent could not be reached)"
    return f"{status} ({frame_status_reason(status)})"


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
                     upstream_sni=args.upstream_sni, maxconn=args.maxconn)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spoe-sync",
        description="HAProxy's SPOE (the engine side of SPOP) for gevent WSGI apps and TCP "
        "proxies. Exit status: 0 success, 1 failure, 2 usage error.",
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
        "SIGINT, SIGTERM or SIGHUP, then stop gracefully. Exit status: 0 after a stop, "
        "1 when it cannot listen, 2 usage error.",
    )
    p.add_argument("--listen", type=tcp_listen_address, default=("127.0.0.1", 12345),
                   metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:12345; "
                   ":PORT listens on every IPv4 address, as HAProxy's bind)")
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
    p.add_argument("address", metavar="ADDR", type=server_address,
                   help=f"the agent: {_ADDRESS_HELP}")
    p.add_argument("--timeout", type=positive_seconds, default=2.0, metavar="S",
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
        "verify required). Exit status: 0 after a stop, 1 on a start failure, 2 usage error.",
        epilog="Signals: SIGTERM, SIGINT and SIGHUP stop gracefully (HAProxy's soft stop): "
        "the proxy stops accepting, lets the connections in flight finish for up to --drain, "
        "then sends HAPROXY-DISCONNECT to the agents and exits 0. A second signal during "
        "the drain ends the connections still open. SIGHUP does not reload the "
        "configuration: restart the command (or let its supervisor do it) to change it.",
    )
    p.add_argument("--listen", required=True, metavar="ADDR", type=listen_address,
                   help="address to listen on: HOST:PORT (:PORT for every IPv4 address), "
                   "unix@/PATH (or /PATH) or abns@NAME")
    p.add_argument("--upstream", required=True, metavar="ADDR", type=server_address,
                   help="where to forward: HOST:PORT or unix@/PATH")
    p.add_argument("--maxconn", type=positive_int, metavar="N",
                   help="most connections handled at once; beyond it clients wait in the "
                   "listen backlog until one ends (default: what the file-descriptor limit "
                   "allows, as HAProxy computes it: (ulimit -n - 16) / 3 with SPOE engines, "
                   "/ 2 without)")
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
    p.add_argument("--backend", action="append", metavar="NAME=ADDR[,ADDR]", type=backend_spec,
                   help=f"the agent servers of a use-backend name ({_ADDRESS_HELP})")
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
    p.add_argument("--timeout", type=positive_seconds, default=30.0, metavar="S",
                   help="hard limit for the whole demo in seconds (default 30)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # no command is a usage error, as the description's exit statuses say (and a script
        # that forgot its command must not pass)
        parser.print_help(sys.stderr)
        print("spoe-sync: error: give a COMMAND", file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
