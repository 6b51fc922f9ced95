"""SPOP health checks: ``option spop-check`` and :func:`healthcheck`.

A check is a HAPROXY-HELLO with ``healthcheck`` true, empty capabilities, a
``max-frame-size`` of 16380 and no engine-id (docs/explanation/haproxy-behaviour.md §7.5);
the server is healthy iff it answers an AGENT-HELLO that passes HAProxy's checks.
No DISCONNECT is sent: the check closes the socket.

With ``option spop-check`` on the agent's backend, each server with ``check``
is checked every ``inter`` seconds; ``fall`` consecutive failures mark it down
(no new applet goes to it), ``rise`` consecutive successes mark it up again and
clear its reconnection backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent

from ..errors import RemoteProtocolError
from ..protocol import frame_status_reason
from ..protocol.connection import NEED_DATA, AgentDisconnected, EngineConnection, HelloDone
from .balance import ServerState
from .connect import Connector, default_connect
from .models import HealthCheckResult

__all__ = ["HealthChecker", "check_server", "healthcheck"]

OK_REASON = "SPOA server is ok"


def healthcheck(address: str, timeout: float = 2.0) -> HealthCheckResult:
    """Run one SPOP health check against ``address`` (``"host:port"`` or a unix
    socket path) and return what the agent announced.  Never raises for what the
    agent does; a malformed address raises :class:`ValueError`."""
    return check_server(ServerState(address), timeout)


def check_server(server: ServerState, timeout: float,
                 connect: Connector | None = None) -> HealthCheckResult:
    """One check of ``server``, bounded by ``timeout`` seconds overall."""
    start = time.monotonic()
    sock: Any = None
    try:
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]  # False: silent
            try:
                sock = (connect or default_connect)(server, timeout)
            except OSError as exc:
                return _result(server, start, False, -1, f"Layer4 connection problem: {exc}")
            conn = EngineConnection(healthcheck=True)
            try:
                sock.sendall(conn.initiate())
                while True:
                    try:
                        event = conn.next_event()
                    except RemoteProtocolError as exc:
                        return _result(server, start, False, exc.status,
                                       f"Layer7 invalid response: {frame_status_reason(exc.status)}")
                    if event is NEED_DATA:
                        conn.receive_data(sock.recv(65536))
                        continue
                    if isinstance(event, HelloDone):
                        hello = event.hello
                        caps = hello.capabilities if isinstance(hello.capabilities, str) else ""
                        return _result(server, start, True, 0, OK_REASON, hello=hello,
                                       version=str(hello.version),
                                       max_frame_size=event.max_frame_size,
                                       capabilities=tuple(c.strip() for c in caps.split(",")
                                                          if c.strip()))
                    if isinstance(event, AgentDisconnected):
                        code = 99 if event.status_code is None else event.status_code
                        return _result(server, start, False, code,
                                       f"Layer7 invalid response: {frame_status_reason(code)}")
                    return _result(server, start, False, 1,
                                   "Layer7 invalid response: connection closed by the agent")
            except OSError as exc:
                return _result(server, start, False, 1, f"Layer7 invalid response: I/O error: {exc}")
        return _result(server, start, False, 2, "Layer7 timeout")
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass


def _result(server: ServerState, start: float, ok: bool, status: int, reason: str,
            **announced: Any) -> HealthCheckResult:
    return HealthCheckResult(address=server.address, ok=ok, status=status, reason=reason,
                             elapsed_ms=int((time.monotonic() - start) * 1000), **announced)


class HealthChecker:
    """Periodic checks of the servers of one pool (``option spop-check``).

    :param connect: how the pool connects.
    :param closed: true once the pool is closed (the checks stop).
    """

    def __init__(self, servers: Sequence[ServerState], connect: Connector,
                 closed: Callable[[], bool]) -> None:
        self.connect = connect
        self.closed = closed
        self.servers = [s for s in servers if getattr(s.server, "check", False)]
        self._greenlets: list[gevent.Greenlet[..., Any]] = []

    def start(self) -> None:
        for server in self.servers:
            self._greenlets.append(gevent.spawn(self._loop, server))

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=False)
        self._greenlets = []

    def _loop(self, server: ServerState) -> None:
        inter = max(float(getattr(server.server, "inter", 2.0) or 2.0), 0.01)
        while not self.closed():
            try:
                result = check_server(server, inter, self.connect)
            except Exception as exc:  # a bug must not stop the checks
                result = HealthCheckResult(server.address, False, 99, f"check failed: {exc!r}")
            self.record(server, result)
            gevent.sleep(inter)

    @staticmethod
    def record(server: ServerState, result: HealthCheckResult) -> None:
        """Apply one result to ``server`` with HAProxy's rise/fall counting."""
        rise = max(int(getattr(server.server, "rise", 2) or 1), 1)
        fall = max(int(getattr(server.server, "fall", 3) or 1), 1)
        server.check_reason = result.reason
        if server.disabled:
            return
        if result.ok:
            server.check_failures = 0
            server.check_successes += 1
            if not server.up and server.check_successes >= rise:
                server.up = True
                server.backoff.success()
        else:
            server.check_successes = 0
            server.check_failures += 1
            if server.up and server.check_failures >= fall:
                server.up = False
