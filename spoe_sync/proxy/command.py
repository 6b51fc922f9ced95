"""``spoe-sync proxy``: build the engines and a :class:`TCPProxy` from command-line values, serve
until SIGTERM or SIGINT, then stop gracefully and print the counters."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from loguru import logger

from ..engine import Engine
from ..errors import ConfigError
from .server import TCPProxy, parse_listen_address

__all__ = ["parse_backends", "run_proxy"]


def parse_backends(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["NAME=ADDR[,ADDR]", ...]`` as ``{"NAME": ["ADDR", ...]}``.

    :raises ConfigError: a spec without ``=`` or without an address.
    """
    backends: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, addresses = spec.partition("=")
        servers = [a.strip() for a in addresses.split(",") if a.strip()]
        if not sep or not name.strip() or not servers:
            raise ConfigError(f"invalid backend '{spec}' (expected NAME=ADDR[,ADDR])")
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


def run_proxy(listen: str, upstream: str, *, configs: Sequence[str] = (),
              engines: Sequence[str] = (), backends: Sequence[str] = (),
              tcp_request: Sequence[str] = (), tcp_response: Sequence[str] = (),
              acls: Sequence[str] = (), inspect_delay: float = 0.0,
              idle_timeout: float | None = 300.0, drain_timeout: float = 10.0,
              verbose: bool = False) -> int:
    """Run the proxy until a stop signal; the exit status (0 stopped, 1 could not start)."""
    if verbose:
        logger.remove()
        logger.add(sys.stderr, level="DEBUG", format="{time:HH:mm:ss.SSS} {level} {message}")
        logger.enable("spoe_sync")
    built: list[Engine] = []
    try:
        built = build_engines(configs, engines, parse_backends(backends))
        proxy = TCPProxy(parse_listen_address(listen), upstream, engines=built,
                         tcp_request=tcp_request, tcp_response=tcp_response, acls=acls,
                         inspect_delay=inspect_delay, idle_timeout=idle_timeout,
                         drain_timeout=drain_timeout)
    except ConfigError as exc:
        for engine in built:
            engine.close(timeout=0)
        print(f"spoe-sync proxy: {exc}", file=sys.stderr)
        for err in exc.errors[1:]:
            print(f"spoe-sync proxy: {err}", file=sys.stderr)
        return 1

    def ready(server: TCPProxy) -> None:
        host, port = server.server_host, server.server_port
        names = ", ".join(f"{e.config.engine_id} (agent {e.name})" for e in built) or "none"
        print(f"spoe-sync proxy: listening on {host}:{port}, forwarding to "
              f"{upstream}; SPOE engines: {names}", flush=True)

    try:
        proxy.run(ready=ready)
    except OSError as exc:
        print(f"spoe-sync proxy: cannot listen on {listen}: {exc}", file=sys.stderr)
        return 1
    s = proxy.stats
    print(f"spoe-sync proxy: stopped; {s.accepted} connections, {s.rejected} rejected, "
          f"{s.aborted} aborted, {s.upstream_errors} upstream errors, "
          f"{s.bytes_in}/{s.bytes_out} bytes in/out", flush=True)
    for engine in built:
        m = engine.metrics()
        print(f"spoe-sync proxy: engine {engine.config.engine_id}: {m.nb_processed} processed, "
              f"{m.nb_errors} errors, {m.nb_skipped} skipped", flush=True)
    return 0
