"""``spoe-sync demo``: SPOE end to end on this machine, with no HAProxy and nothing to set up.

It starts the packaged example IP-reputation agent (:mod:`spoe_sync.examples.iprep`, a real SPOA
on its own port), a gevent.pywsgi app wrapped in :class:`~spoe_sync.wsgi.SpoeMiddleware` with the
packaged ``spoe-iprep.conf`` and an HAProxy ``http-request deny`` rule, and the TCP proxy in front
of the app; sends a few requests through both; and prints the SPOE log lines, each decision and
the engine counters.  Everything listens on free 127.0.0.1 ports with TCP_NODELAY, every wait
is bounded, and the whole run has a hard timeout.

Every request comes from 127.0.0.1, which the agent trusts.  So that the demo can show a denial,
the app trusts ``X-Forwarded-For`` (a small WSGI wrapper copies it into ``REMOTE_ADDR``, as a
reverse-proxy setup does): ``src``, and so the agent's score, come from that header.  The output
says so.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from ipaddress import ip_address
from typing import Any

import gevent
from gevent import socket
from gevent.pywsgi import WSGIServer
from loguru import logger

from .config import load_config
from .engine import Engine
from .examples import iprep
from .proxy import TCPProxy
from .wsgi import SpoeMiddleware, SpoeWSGIHandler, listener

__all__ = ["DENY_RULE", "REQUESTS", "run_demo"]

#: The HAProxy rule that turns the agent's score into a decision.
DENY_RULE = ("deny deny_status 403 hdr x-ip-score %[var(sess.iprep.ip_score)] "
             "if { var(sess.iprep.ip_score) -m int lt 20 }")
SCORE_HEADER = "set-header x-ip-score %[var(sess.iprep.ip_score)]"
TCP_RULE = "content reject if { var(sess.iprep.ip_score) -m int lt 20 }"
#: (path, X-Forwarded-For) of the requests sent to the app.
REQUESTS: tuple[tuple[str, str | None], ...] = (
    ("/", None),
    ("/account", "203.0.113.9"),
    ("/login", "192.0.2.66"),
    ("/search?q=spoe", "2001:db8::7"),
    ("/", "198.51.100.20"),
)
_IO_TIMEOUT = 5.0


def _print(text: str = "") -> None:
    print(text, flush=True)


def trust_forwarded_for(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """WSGI wrapper: the first ``X-Forwarded-For`` address becomes ``REMOTE_ADDR`` (only
    behind a proxy you trust, as here)."""
    def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded:
            environ["REMOTE_ADDR"] = forwarded.split(",")[0].strip()
        return app(environ, start_response)
    return wrapped


def hello_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The protected app: it only runs for allowed requests, and shows what the agent said."""
    vars = environ.get("spoe_sync.vars")
    score = vars.get("sess.iprep.ip_score") if vars is not None else None
    reason = vars.get("txn.iprep.reason") if vars is not None else None
    body = f"hello {environ.get('REMOTE_ADDR')}: ip_score={score} ({reason})\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def http_get(port: int, path: str, forwarded_for: str | None) -> tuple[int, dict[str, str], bytes]:
    """One ``GET`` on a new connection (``Connection: close``), on gevent sockets."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=_IO_TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        extra = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n{extra}\r\n"
                     .encode())
        chunks = []
        for _ in range(1000):  # bounded: Connection: close ends the answer
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return status, headers, body


def _log_sink(message: Any) -> None:
    record = message.record
    _print(f"    log: {record['message']}")


def _with_log_global(path: str, scope: str) -> Any:
    # the packaged file has no `log` line (no SPOE log, as in HAProxy); the demo adds
    # `log global`, which sends the SPOE lines to the application's loguru sinks
    config = load_config(path, scope)
    return dataclasses.replace(config, agent=dataclasses.replace(config.agent, log_global=True))


def _counters(engine: Engine) -> str:
    m = engine.metrics()
    return (f"processed={m.nb_processed} errors={m.nb_errors} skipped={m.nb_skipped} "
            f"applets={m.applets} idles={m.idles} sending={m.nb_sending} waiting={m.nb_waiting} "
            f"frames_sent={m.frames_sent} acks_received={m.acks_received} "
            f"agent_connections_opened={m.connections_opened}")


def _demo(stack: ExitStack) -> tuple[int, int, list[str]]:
    """Run the demo; returns (allowed, denied, problems).  What it starts is stopped by
    ``stack``, even when the demo is cut short."""
    problems: list[str] = []
    agent = iprep.start("127.0.0.1", 0)
    stack.callback(agent.stop)
    backends = {"iprep-servers": [agent.address]}
    mw = SpoeMiddleware(hello_app,
                        _with_log_global(iprep.CONFIG_PATH, "ip-reputation"),
                        backends=backends, http_request=[DENY_RULE],
                        http_response=[SCORE_HEADER])
    stack.callback(mw.close, timeout=2)  # HAPROXY-DISCONNECT
    server = WSGIServer(listener(("127.0.0.1", 0)), trust_forwarded_for(mw),
                        handler_class=SpoeWSGIHandler, log=None, error_log=None)
    server.start()
    stack.callback(server.stop, timeout=2)
    app_port = int(server.server_port or 0)
    tcp_engine = Engine(_with_log_global(iprep.CONFIG_PATH, "ip-reputation-tcp"), backends)
    stack.callback(tcp_engine.close, timeout=2)
    proxy = TCPProxy(listener(("127.0.0.1", 0)), ("127.0.0.1", app_port),
                     engines=[tcp_engine], tcp_request=[TCP_RULE], drain_timeout=2)
    proxy.start()
    stack.callback(proxy.stop, timeout=2)
    proxy_port = int(proxy.server_port or 0)
    allowed = denied = 0
    _print(f"  agent        spoe_sync.examples.iprep (a real SPOA) on {agent.address}")
    _print(f"  SPOE config  {iprep.CONFIG_PATH}")
    _print("               [ip-reputation]: message get-ip-reputation, args ip=src "
           "path=path, event on-frontend-http-request (+ `log global` for the demo)")
    _print(f"  WSGI app     gevent.pywsgi on 127.0.0.1:{app_port} (TCP_NODELAY), "
           "SpoeMiddleware with the rule")
    _print(f"                 http-request {DENY_RULE}")
    _print(f"  TCP proxy    127.0.0.1:{proxy_port} -> the app, engine "
           f"[ip-reputation-tcp] (on-client-session) and the rule")
    _print(f"                 tcp-request {TCP_RULE}")
    _print()
    _print("  What decides: the agent's score of `src`.  Every request here comes from "
           "127.0.0.1, which")
    _print("  the agent trusts (score 100), so the app trusts X-Forwarded-For (a WSGI "
           "wrapper copies it")
    _print("  into REMOTE_ADDR, as behind a reverse proxy) and the demo varies that header. "
           "The agent")
    _print("  lists the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32 "
           "(score 5) and")
    _print("  gives other addresses a stable hash score from 30 to 100.")
    _print()
    _print("Requests to the WSGI app (each one's SPOE log line, then the decision; a 403 "
           "comes from the")
    _print("rule, the app never runs for it):")
    for path, forwarded in REQUESTS:
        status, headers, body = http_get(app_port, path, forwarded)
        source = forwarded or "127.0.0.1"
        expected_score, reason = iprep.reputation(ip_address(source))
        expected = 403 if expected_score < 20 else 200
        verdict = "allowed" if status == 200 else "DENIED" if status == 403 else "?"
        allowed += status == 200
        denied += status == 403
        shown = f"X-Forwarded-For: {forwarded}" if forwarded else "(no X-Forwarded-For)"
        _print(f"  GET {path:<16} {shown:<32} -> {status} {verdict:<7} "
               f"ip_score={headers.get('x-ip-score', '?'):<3} {reason}")
        if status != expected or headers.get("x-ip-score") != str(expected_score):
            problems.append(f"GET {path} from {source}: got {status} with ip_score "
                            f"{headers.get('x-ip-score')}, expected {expected} with "
                            f"ip_score {expected_score}")
        if status == 200 and not body.startswith(b"hello "):
            problems.append(f"GET {path}: unexpected body {body[:80]!r}")
    _print()
    _print("The same app through the TCP proxy (one connection from 127.0.0.1):")
    status, headers, _ = http_get(proxy_port, "/via-proxy", None)
    _print(f"  GET /via-proxy through 127.0.0.1:{proxy_port} -> {status} "
           f"{'allowed' if status == 200 else 'DENIED'} (the proxy's agent score for "
           f"127.0.0.1 is 100)")
    if status != 200:
        problems.append(f"GET through the TCP proxy: got {status}, expected 200")
    _print()
    _print("Engine counters:")
    for engine in mw.engines:
        _print(f"  [{engine.config.engine_id}] (WSGI)      {_counters(engine)}")
    _print(f"  [{tcp_engine.config.engine_id}] (proxy) {_counters(tcp_engine)}")
    stats = proxy.stats
    _print(f"  TCP proxy: {stats.accepted} connection(s), {stats.rejected} rejected, "
           f"{stats.bytes_in}/{stats.bytes_out} bytes in/out")
    return allowed, denied, problems


def run_demo(timeout: float = 30.0, *, own_logging: bool = True) -> int:
    """Run the demo and print it; the exit status (0 success, 1 failure).

    :param timeout: hard limit for the whole run, in seconds.
    :param own_logging: remove the application's loguru sinks first (the command does; a
        caller that keeps its own sinks passes ``False``).
    """
    if own_logging:
        logger.remove()
    sink = logger.add(_log_sink, level="INFO", filter="spoe_sync")
    logger.enable("spoe_sync")
    _print("spoe-sync demo: an SPOE agent asked by a gevent WSGI app and a TCP proxy, "
           "no HAProxy involved")
    start = time.monotonic()
    try:
        with ExitStack() as stack, gevent.Timeout(timeout):
            allowed, denied, problems = _demo(stack)
    except gevent.Timeout:
        print(f"spoe-sync demo: FAILED: no result after {timeout:g} s", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"spoe-sync demo: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        logger.disable("spoe_sync")
        logger.remove(sink)
    for problem in problems:
        print(f"spoe-sync demo: FAILED: {problem}", file=sys.stderr)
    if problems:
        return 1
    _print(f"spoe-sync demo: OK in {time.monotonic() - start:.2f} s: {allowed} allowed, "
           f"{denied} denied, each as the agent's score says.")
    return 0
