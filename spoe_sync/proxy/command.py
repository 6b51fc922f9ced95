"""``spoe-sync proxy``: build the engines, the TLS contexts and a :class:`TCPProxy` from
command-line values, serve until SIGTERM, SIGINT or SIGHUP, then stop gracefully and print the
counters.

``--listen`` takes ``host:port`` or ``unix@/path``; ``--tls-cert`` terminates TLS as HAProxy's
``bind ... ssl crt`` does; ``--upstream-tls`` speaks TLS to the upstream, verified against the
system CAs or ``--upstream-ca`` unless ``--upstream-no-verify``."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Sequence
from typing import Any

from loguru import logger

from ..config.backends import parse_address
from ..engine import Engine
from ..errors import ConfigError
from .listen import parse_listen_address
from .server import TCPProxy
from .tls import server_context, upstream_context

__all__ = ["parse_backends", "run_proxy"]


def parse_backends(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["NAME=ADDR[,ADDR]", ...]`` as ``{"NAME": ["ADDR", ...]}``; each ADDR is an agent
    server's address in HAProxy's forms (:func:`~spoe_sync.config.backends.parse_address`).

    :raises ConfigError: a spec without ``=``, without an address, or with a bad address.
    """
    backends: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, addresses = spec.partition("=")
        servers = [a.strip() for a in addresses.split(",") if a.strip()]
        if not sep or not name.strip() or not servers:
            raise ConfigError(f"invalid backend '{spec}' (expected NAME=ADDR[,ADDR])")
        for server in servers:
            try:
                parse_address(server)
            except ValueError as exc:
                raise ConfigError(f"invalid backend '{spec}': {exc}") from None
        backends.setdefault(name.strip(), []).extend(servers)
    return backends


def build_engines(configs: Sequence[str], engines: Sequence[str],
                  backends: dict[str, list[str]]) -> list[Engine]:
    """One engine per SPOE file; ``engines`` names the ``[scope]`` of each, in order.

    :raises ConfigError: a bad file, a missing backend, or mismatched counts.
    """
    if engines and len(engines) != len(configs):
        raise ConfigError(f"{len(engines)} --engine for {len(configs)} --config: give one "
                          "--engine per --config, in the same order, or none")
    scopes: Sequence[str | None] = engines or [None] * len(configs)
    built: list[Engine] = []
    try:
        for path, scope in zip(configs, scopes):
            built.append(Engine.from_file(path, scope, backends=backends))
    except BaseException:
        for engine in built:
            engine.close(timeout=0)
        raise
    return built


def build_tls(tls_cert: str | None, tls_key: str | None, upstream_tls: bool,
              upstream_ca: str | None, upstream_no_verify: bool
              ) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """The server-side and upstream contexts the options ask for (``None`` when off).

    :raises ConfigError: an unreadable or unusable PEM file, or options that do not go together.
    """
    if tls_key and not tls_cert:
        raise ConfigError("--tls-key needs --tls-cert")
    if (upstream_ca or upstream_no_verify) and not upstream_tls:
        raise ConfigError("--upstream-ca and --upstream-no-verify need --upstream-tls")
    if upstream_ca and upstream_no_verify:
        raise ConfigError("--upstream-ca and --upstream-no-verify exclude each other")
    server = client = None
    try:
        if tls_cert:
            server = server_context(tls_cert, tls_key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the certificate '{tls_cert}'"
                          f"{f' and key {tls_key!r}' if tls_key else ''}: {_reason(exc)}") from None
    try:
        if upstream_tls:
            client = upstream_context(verify=not upstream_no_verify, ca_file=upstream_ca)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the CA file '{upstream_ca}': {_reason(exc)}") from None
    return server, client


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _to_stderr(message: Any) -> None:
    # sys.stderr looked up at each record: it may be replaced after the sink is added
    sys.stderr.write(str(message))


def run_proxy(listen: str, upstream: str, *, configs: Sequence[str] = (),
              engines: Sequence[str] = (), backends: Sequence[str] = (),
              tcp_request: Sequence[str] = (), tcp_response: Sequence[str] = (),
              acls: Sequence[str] = (), inspect_delay: float = 0.0,
              idle_timeout: float | None = 300.0, drain_timeout: float = 10.0,
              verbose: bool = False, tls_cert: str | None = None, tls_key: str | None = None,
              handshake_timeout: float = 10.0, upstream_tls: bool = False,
              upstream_ca: str | None = None, upstream_no_verify: bool = False,
              upstream_sni: str | None = None, maxconn: int | None = None) -> int:
    """Run the proxy until a stop signal (SIGTERM, SIGINT or SIGHUP: a graceful stop); the
    exit status (0 stopped, 1 could not start)."""
    built: list[Engine] = []
    try:
        if upstream_sni and not upstream_tls:
            raise ConfigError("--upstream-sni needs --upstream-tls")
        server_tls, upstream_ssl = build_tls(tls_cert, tls_key, upstream_tls, upstream_ca,
                                             upstream_no_verify)
        built = build_engines(configs, engines, parse_backends(backends))
        proxy = TCPProxy(parse_listen_address(listen), upstream, engines=built,
                         tcp_request=tcp_request, tcp_response=tcp_response, acls=acls,
                         inspect_delay=inspect_delay, idle_timeout=idle_timeout,
                         drain_timeout=drain_timeout, ssl_context=server_tls,
                         handshake_timeout=handshake_timeout, upstream_ssl=upstream_ssl,
                         upstream_sni=upstream_sni, maxconn=maxconn)
    except ConfigError as exc:
        for engine in built:
            engine.close(timeout=0)
        print(f"spoe-sync proxy: {exc}", file=sys.stderr)
        for err in exc.errors[1:]:
            print(f"spoe-sync proxy: {err}", file=sys.stderr)
        return 1

    def ready(server: TCPProxy) -> None:
        names = ", ".join(f"{e.config.engine_id} (agent {e.name})" for e in built) or "none"
        tls = " (TLS)" if server.ssl_context is not None else ""
        up_tls = " (TLS)" if server.upstream_ssl is not None else ""
        print(f"spoe-sync proxy: listening on {server.listen_address}{tls} (maxconn "
              f"{server.maxconn}), forwarding to {upstream}{up_tls}; SPOE engines: {names}",
              flush=True)

    # The command is the application: it turns the library's log on while it runs, warnings
    # (an upstream that fails its certificate check, an agent gone) always, all with -v.
    logger.remove()  # loguru's default handler would print the library's debug records
    sink = logger.add(_to_stderr, level="DEBUG" if verbose else "WARNING",
                      format="{time:HH:mm:ss.SSS} {level} {message}")
    logger.enable("spoe_sync")
    try:
        proxy.run(ready=ready)
    except OSError as exc:
        print(f"spoe-sync proxy: cannot listen on {listen}: {exc}", file=sys.stderr)
        return 1
    finally:
        logger.disable("spoe_sync")
        logger.remove(sink)
    s = proxy.stats
    print(f"spoe-sync proxy: stopped; {s.accepted} connections, {s.rejected} rejected, "
          f"{s.aborted} aborted, {s.upstream_errors} upstream errors, "
          f"{s.handshake_errors} TLS handshake errors, "
          f"{s.bytes_in}/{s.bytes_out} bytes in/out; at most {s.max_active} at once "
          f"(maxconn {s.maxconn}), {s.accept_errors} failed accepts", flush=True)
    for engine in built:
        m = engine.metrics()
        print(f"spoe-sync proxy: engine {engine.config.engine_id}: {m.nb_processed} processed, "
              f"{m.nb_errors} errors, {m.nb_skipped} skipped", flush=True)
    return 0
