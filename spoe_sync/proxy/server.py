"""A TCP proxy that runs SPOE engines on each connection, as an HAProxy ``listen`` section in
``mode tcp`` with ``filter spoe`` lines does (SPOE.txt §3.3, docs/explanation/haproxy-behaviour.md §7.5).

It is gevent's port-forwarder (a :class:`~gevent.server.StreamServer` whose ``handle`` opens the
upstream and forwards both ways) with HAProxy's hook points on each connection:

1. accept (and, with ``ssl_context``, the TLS handshake, bounded by ``handshake_timeout``):
   ``on-client-session``;
2. the inspect delay: the first request bytes are peeked (``MSG_PEEK``, so nothing is consumed;
   with TLS, decrypted and replayed) into ``req.payload``/``req.len``, then
   ``on-frontend-tcp-request`` and the ``tcp-request content`` rules (``accept``, ``reject``,
   ``send-spoe-group``, ``set-var``, ``unset-var``);
3. connected to the upstream (TLS too with ``upstream_ssl``): ``on-server-session``;
4. the first response bytes peeked into ``res.payload``/``res.len``: ``on-tcp-response`` and the
   ``tcp-response content`` rules; while they run the response is not read, as in HAProxy;
5. forwarding both ways with half-close: EOF from one side becomes ``shutdown(SHUT_WR)`` on the
   other (close_notify then FIN on a TLS side), and the connection ends when both directions
   are done.

The listener is ``host:port`` or a UNIX socket (``unix@/path``, as HAProxy's ``bind``), where
``src`` and ``dst`` have no address and their fetches send NULL.  A client whose TLS handshake
fails or times out is closed, counted in :attr:`ProxyStats.handshake_errors` and logged at debug
level; it never reaches the engines, as HAProxy creates no stream for it.

``on-backend-tcp-request`` is not fired: the proxy is a ``listen`` section, where HAProxy skips
it (SPOE.txt §3.3).  Agent trouble never blocks a connection beyond the agent's ``timeout
processing``: the engines fail open and the rules decide, exactly as with HAProxy.  ``sess``
variables live as long as the client connection, and the engines of a connection share one
variable store.  The inspect delay ends as soon as the first bytes arrive (HAProxy may wait
longer for a rule whose fetch wants more bytes; here rules see what the client sent first).
At ``maxconn`` connections the proxy stops accepting and resumes below it (clients beyond it wait
in the kernel's backlog); without ``maxconn`` the limit derives from the file-descriptor limit, and
an ``accept()`` that fails for want of descriptors pauses accepting briefly instead of printing a
traceback (``spoe_sync.proxy.limits``).  :meth:`TCPProxy.stop` stops accepting, lets the connections in flight
finish for a bounded time, then closes the engines (HAPROXY-DISCONNECT to the agents)::

    engine = spoe_sync.Engine.from_file("spoe-iprep.conf", "ip-reputation-tcp",
                                        backends={"iprep-servers": ["127.0.0.1:12345"]})
    proxy = TCPProxy(("127.0.0.1", 8000), ("127.0.0.1", 9000), engines=[engine],
                     tcp_request=["content reject if { var(sess.iprep.ip_score) -m int lt 20 }"])
    proxy.run()          # until SIGTERM, SIGINT or SIGHUP
"""

from __future__ import annotations

import signal
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gevent
from gevent import socket
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer
from loguru import logger

from ..engine.vars import Vars
from ..errors import ConfigError
from ..rules import AclRegistry
from ..rules.sources import TCPSamples
from .connection import Conn as _Conn
from .connection import ProxyStats
from .connection import close_quietly as _close
from .connection import engine_id as _engine_id
from .connection import set_nodelay as _set_nodelay
from .forward import ABORT_ERRORS, forward, peek, refuse
from .limits import (
    RESOURCE_PAUSE,
    RateLimitedLog,
    accept_error_kind,
    default_maxconn,
    is_resource_error,
)
from .listen import bind_unix, describe, parse_listen_address, remove_unix
from .rule_runner import Verdict, build_acls, build_rules
from .tls import TLSSamples, TLSStream, handshake_error, upstream_context, watch_sni

__all__ = ["ProxyStats", "TCPProxy", "parse_listen_address"]


class _Aborted(Exception):
    """The connection ends now (reject, upstream failure): close both sides."""


class TCPProxy(StreamServer):
    """A TCP proxy from ``listener`` to ``upstream`` with SPOE engines on each connection.

    :param listener: ``(host, port)``, ``"host:port"``, ``"unix@/path"`` (or an absolute path,
        ``"abns@name"``) or a listening socket (port 0 picks a free port; read :attr:`address`
        after :meth:`start`).  A UNIX listener removes a stale socket file at start and its own
        file at stop; ``src`` and ``dst`` fail there (NULL), as in HAProxy.
    :param upstream: where connections go, ``(host, port)``, ``"host:port"`` or a UNIX path.
    :param engines: :class:`spoe_sync.Engine` objects, fired in this order at each event (several
        ``filter spoe`` lines); their engine ids must be unique, as HAProxy checks.
    :param tcp_request: ``tcp-request content`` rules in HAProxy syntax (the leading ``content``
        word is optional), evaluated in order after ``on-frontend-tcp-request``.
    :param tcp_response: ``tcp-response content`` rules, after ``on-tcp-response``.
    :param acls: extra ``acl`` lines (``"name criterion [flags] [patterns]"``) the rules may name.
    :param inspect_delay: seconds to wait for the first request bytes before
        ``on-frontend-tcp-request`` (HAProxy's ``tcp-request inspect-delay``); 0 looks only at
        what has already arrived.  The wait ends as soon as bytes arrive or the client closes.
    :param inspect_size: most bytes peeked into ``req.payload`` / ``res.payload``.
    :param response_inspect_delay: same as ``inspect_delay`` for the first response bytes
        (``tcp-response inspect-delay``); ``None`` waits up to ``idle_timeout``.
    :param connect_timeout: seconds to connect to the upstream (HAProxy's ``timeout connect``).
    :param idle_timeout: seconds without data in either direction before the connection is
        aborted (HAProxy's ``timeout client`` / ``timeout server``: a one-way transfer keeps
        both directions alive); ``None`` for no limit.
    :param drain_timeout: seconds :meth:`stop` lets connections in flight finish.
    :param maxconn: most connections handled at once (HAProxy's ``maxconn``): at the limit
        the proxy stops accepting and resumes when a connection ends; the clients beyond it
        wait in the kernel's listen backlog (``backlog``), they are not refused.  ``None``
        derives it from the file-descriptor limit (:func:`~spoe_sync.proxy.limits.default_maxconn`).
    :param backlog: the listen backlog (HAProxy's ``backlog``); default ``maxconn`` (at least
        128), capped by the kernel (``net.core.somaxconn``).
    :param close_engines: :meth:`stop` closes the engines (HAPROXY-DISCONNECT to the agents).
    :param on_connection: called with ``(samples, vars)`` after a connection ended (logging,
        tests); exceptions are logged and ignored.
    :param ssl_context: a server-side :class:`ssl.SSLContext` (e.g.
        :func:`spoe_sync.proxy.tls.server_context`): terminate TLS, as ``bind ... ssl crt``.
        The samples then say ``ssl_fc`` true, carry the client's SNI
        (:class:`~spoe_sync.proxy.tls.TLSSamples`) and ``req.payload`` is the decrypted data.
        An ``sni_callback`` recording the SNI is added to the context (one already set is
        still called).
    :param handshake_timeout: seconds a client has to complete the TLS handshake; a failed
        handshake closes that connection only and counts in :attr:`ProxyStats.handshake_errors`.
    :param upstream_ssl: TLS towards the upstream (``server ... ssl``): ``True`` verifies the
        certificate and host name against the system CAs, or pass a client-side
        :class:`ssl.SSLContext` (:func:`spoe_sync.proxy.tls.upstream_context`).  A failed
        handshake counts in :attr:`ProxyStats.upstream_errors`.
    :param upstream_sni: the SNI and the name verified (default: the upstream's host).
    """

    def __init__(self, listener: Any, upstream: str | tuple[str, int], *,
                 engines: Sequence[Any] = (), tcp_request: Iterable[Any] = (),
                 tcp_response: Iterable[Any] = (), acls: Iterable[str] | AclRegistry = (),
                 inspect_delay: float = 0.0, inspect_size: int = 16384,
                 response_inspect_delay: float | None = None, connect_timeout: float = 5.0,
                 idle_timeout: float | None = 300.0, drain_timeout: float = 10.0,
                 maxconn: int | None = None, backlog: int | None = None,
                 close_engines: bool = True,
                 on_connection: Callable[[TCPSamples, Vars], None] | None = None,
                 ssl_context: ssl.SSLContext | None = None, handshake_timeout: float = 10.0,
                 upstream_ssl: ssl.SSLContext | bool | None = None,
                 upstream_sni: str | None = None) -> None:
        if isinstance(listener, str):
            listener = parse_listen_address(listener)
        #: the UNIX socket path of the listener, ``None`` for TCP
        self.unix_path: str | None = listener if isinstance(listener, str) else None
        self._unix_ident: tuple[int, int] | None = None
        self.upstream_address = parse_listen_address(upstream)
        if handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be > 0")
        self.ssl_context = ssl_context
        self.handshake_timeout = float(handshake_timeout)
        self.upstream_ssl = (upstream_context() if upstream_ssl is True
                             else upstream_ssl or None)
        if upstream_sni is None and not isinstance(self.upstream_address, str):
            upstream_sni = self.upstream_address[0]
        if self.upstream_ssl is not None and self.upstream_ssl.check_hostname and not upstream_sni:
            raise ConfigError(f"upstream '{upstream}': TLS verification needs a server name "
                              "to check (give upstream_sni)")
        self.upstream_sni = upstream_sni
        self.engines = tuple(engines)
        ids = [_engine_id(e) for e in self.engines]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"duplicated name for SPOE engine '{dupes[0]}'")
        self._engine_ids = dict(zip(ids, self.engines))
        registry = acls if isinstance(acls, AclRegistry) else build_acls(acls)
        self.tcp_request = build_rules(tcp_request, "tcp-request content", registry,
                                       engines=self._engine_ids)
        self.tcp_response = build_rules(tcp_response, "tcp-response content", registry,
                                        engines=self._engine_ids)
        if inspect_delay < 0 or inspect_size < 1:
            raise ValueError("inspect_delay must be >= 0 and inspect_size >= 1")
        self.inspect_delay = float(inspect_delay)
        self.inspect_size = int(inspect_size)
        self.response_inspect_delay = response_inspect_delay
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.drain_timeout = drain_timeout
        self.close_engines = close_engines
        self.on_connection = on_connection
        if maxconn is None:
            maxconn = default_maxconn(bool(self.engines))
        if maxconn < 1:
            raise ValueError("maxconn must be >= 1")
        self.maxconn = int(maxconn)
        self.stats = ProxyStats(maxconn=self.maxconn)
        self._stopped = Event()
        self._accept_log = RateLimitedLog()
        self._upstream_fd_log = RateLimitedLog()
        self._resume: Any = None  # the greenlet that resumes accepting after a pause
        # gevent's server stops accepting while the pool is full and resumes when a slot frees
        self._pool = Pool(self.maxconn)
        if ssl_context is not None:  # once every check passed: it changes the caller's context
            watch_sni(ssl_context)
        # a UNIX listener is bound by init_socket(); gevent's parser knows only host:port
        # HAProxy's listen backlog defaults to the frontend's maxconn: a burst of clients up to
        # the limit again waits in the kernel rather than retrying its SYNs for seconds
        # (a listening socket passed in keeps the backlog it was given)
        if not hasattr(listener, "accept"):
            backlog = backlog or max(self.maxconn, 128)
        super().__init__(("", 0) if self.unix_path is not None else listener,
                         backlog=backlog, spawn=self._pool)
        if self.unix_path is not None:
            self.family, self.address = socket.AF_UNIX, self.unix_path

    # -- server life -------------------------------------------------------------------------

    @property
    def listen_address(self) -> str:
        """Where the proxy listens, as an operator writes it (``host:port``, ``unix@/path``)."""
        address = self.address
        return describe(address if isinstance(address, str) else (address[0], address[1]))

    def init_socket(self) -> None:
        if self.unix_path is not None and not hasattr(self, "socket"):
            self.socket, self._unix_ident = bind_unix(self.unix_path, self.backlog or 128)
        super().init_socket()
        _set_nodelay(self.socket)  # accepted sockets inherit it on Linux; set it per socket too

    def do_read(self) -> Any:
        """Accept one client (the BaseServer contract), turning accept errors into a retry:
        at once when the client is gone, after :data:`~spoe_sync.proxy.limits.RESOURCE_PAUSE` when out of
        descriptors or memory (the clients wait in the backlog meanwhile)."""
        try:
            return super().do_read()
        except OSError as exc:
            kind = accept_error_kind(exc)
            if kind == "fatal":
                raise  # the listener is closed or broken: gevent's server closes it
            if kind == "client":
                return None  # the watcher fires again for the next pending client
            self.stats.accept_errors += 1
            count = self._accept_log.due()
            if count is not None:
                logger.warning("proxy: cannot accept connections: {} ({} failed accept(s); "
                               "{} connections open, maxconn {}{}): retrying every {} ms",
                               exc.strerror or exc, count, self.stats.active, self.maxconn,
                               self._maxconn_hint(), int(RESOURCE_PAUSE * 1000))
            self._pause_accepting()
            return None

    def _maxconn_hint(self) -> str:
        allowed = default_maxconn(bool(self.engines))
        if self.maxconn <= allowed:
            return ""
        return f", above the {allowed} the file-descriptor limit allows"

    def _pause_accepting(self) -> None:
        self.stop_accepting()
        if self._resume is None or self._resume.dead:
            self._resume = gevent.spawn_later(RESOURCE_PAUSE, self._resume_accepting)

    def _resume_accepting(self) -> None:
        if self.started and not self._stopped.is_set():
            self.start_accepting()

    def close(self) -> None:
        """Close the listener (and remove its UNIX socket file)."""
        if self._resume is not None:
            self._resume.kill(block=False)
        try:
            super().close()
        finally:
            if self.unix_path is not None:
                remove_unix(self.unix_path, self._unix_ident)
                self._unix_ident = None

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let connections in flight finish for up to ``timeout`` seconds
        (default :attr:`drain_timeout`), end the rest, then close the engines."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        drain = self.drain_timeout if timeout is None else timeout
        super().stop(timeout=drain)
        if self.close_engines:
            for engine in self.engines:
                try:
                    engine.close(timeout=max(1.0, min(drain, 5.0)))
                except Exception as exc:  # a failing engine must not keep the others open
                    logger.warning("closing SPOE engine {}: {}", _engine_id(engine), exc)

    def run(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
            *, ready: Callable[[TCPProxy], None] | None = None) -> None:
        """Serve until one of ``signals`` arrives (or :meth:`stop` is called), then stop
        gracefully; a second signal during the drain ends the connections still open.
        ``ready(proxy)`` is called once the listener is bound.

        SIGHUP is a graceful stop too (HAProxy's soft stop), not a reload: re-reading the
        configuration in place could not re-bind a changed listener nor keep the connections
        in flight on the old settings; a supervisor restarts the proxy instead.  Its default
        action would kill the process at once when the terminal that started it closes."""
        wake = Event()

        def on_signal() -> None:
            if wake.is_set():
                logger.warning("proxy: second stop signal, closing the connections still open")
                self._pool.kill(block=False)
            wake.set()

        handlers = [gevent.signal_handler(sig, on_signal) for sig in signals]
        try:
            self.start()
            if ready is not None:
                ready(self)
            while not wake.is_set() and not self._stopped.is_set():
                wake.wait(1.0)
        finally:
            try:
                self.stop()
            finally:
                for h in handlers:
                    h.cancel()

    # -- one connection ----------------------------------------------------------------------

    def handle(self, client: Any, address: Any) -> None:
        """Handle one client connection (the StreamServer contract)."""
        stats = self.stats
        stats.accepted += 1
        stats.active += 1
        if stats.active > stats.max_active:
            stats.max_active = stats.active
        conn: _Conn | None = None
        try:
            _set_nodelay(client)
            local = client.getsockname()
            if self.ssl_context is None:
                conn = _Conn(client, TCPSamples(address, local), self.engines)
            else:
                # as in HAProxy, the stream (and on-client-session) starts after the handshake
                tls = self._handshake(client, address)
                if tls is None:
                    return
                conn = _Conn(tls, TLSSamples(address, local, sni=tls.sni), self.engines)
            self._serve(conn)
        except _Aborted:
            pass
        except ABORT_ERRORS as exc:
            if conn is not None:
                conn.aborted = True
            logger.debug("proxy: connection from {} aborted: {}", address, exc)
        except Exception as exc:  # a hook or a closed engine: end this connection, not the server
            if conn is not None:
                conn.aborted = True
            logger.error("proxy: connection from {} ended by {}: {}", address,
                         type(exc).__name__, exc)
        finally:
            self.stats.active -= 1
            if conn is not None:
                if conn.aborted:
                    self.stats.aborted += 1
                _close(conn.upstream)
                self._report(conn)
            _close(client)

    def _handshake(self, client: Any, address: Any) -> TLSStream | None:
        """The client's TLS stream once the handshake is done; ``None`` (counted, logged at
        debug level: a scanner or a broken client is no operator matter) when it failed."""
        assert self.ssl_context is not None
        timer = gevent.Timeout(self.handshake_timeout)
        timer.start()
        try:
            tls = TLSStream(client, self.ssl_context, server_side=True)
            tls.handshake(self.handshake_timeout)
        except (OSError, ValueError, gevent.Timeout) as exc:
            if isinstance(exc, gevent.Timeout) and exc is not timer:
                raise
            self.stats.handshake_errors += 1
            logger.debug("proxy: TLS handshake with {} failed: {}", address or "unix client",
                         handshake_error(exc))
            return None
        finally:
            timer.close()
        client.settimeout(self.idle_timeout)  # bounds the sends of records (see TLSStream)
        return tls

    def _report(self, conn: _Conn) -> None:
        if self.on_connection is None:
            return
        try:
            self.on_connection(conn.samples, conn.vars)
        except Exception as exc:
            logger.warning("proxy: on_connection hook failed: {}", exc)

    def _serve(self, conn: _Conn) -> None:
        self._event(conn, "on-client-session")

        conn.samples.req_payload = peek(conn.client, self.inspect_size, self.inspect_delay)
        self._event(conn, "on-frontend-tcp-request")
        verdict = self.tcp_request.evaluate(conn.samples, conn.vars, self._group_runner(conn))
        if verdict in (Verdict.REJECT, Verdict.SILENT_DROP):
            self.stats.rejected += 1
            refuse(conn.client, verdict, len(conn.samples.req_payload or b""))
            raise _Aborted

        conn.upstream = self._connect()
        conn.vars.start_response()  # HAProxy 2.6 turns req.* into res.* when it connects
        self._event(conn, "on-server-session")
        to_upstream = gevent.spawn(forward, conn, conn.client, conn.upstream, True, self.stats,
                                   self.idle_timeout)
        try:
            wait = self.response_inspect_delay
            conn.samples.res_payload = peek(conn.upstream, self.inspect_size,
                                            self.idle_timeout if wait is None else wait)
            if conn.aborted:
                raise _Aborted
            self._event(conn, "on-tcp-response")
            verdict = self.tcp_response.evaluate(conn.samples, conn.vars,
                                                 self._group_runner(conn))
            if verdict in (Verdict.REJECT, Verdict.SILENT_DROP):
                self.stats.rejected += 1
                refuse(conn.client, verdict, 0)
                raise _Aborted
            forward(conn, conn.upstream, conn.client, False, self.stats, self.idle_timeout)
            # the client side ends by itself: at its EOF or at the connection's idle deadline
            to_upstream.join()
        finally:
            # a reject or an error in one direction ends the other one as well
            if not to_upstream.dead:
                to_upstream.kill(block=True, timeout=1.0)

    def _event(self, conn: _Conn, event: str) -> None:
        # engines fire in declaration order; failures follow the Transaction's policy
        conn.spoe.event(event)

    def _group_runner(self, conn: _Conn) -> Callable[[str, str], None]:
        return conn.spoe.group

    def _connect(self) -> Any:
        address = self.upstream_address
        sock = None
        timer = gevent.Timeout(self.connect_timeout)  # connect and TLS handshake together
        timer.start()
        try:
            if isinstance(address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(address)
            else:
                sock = socket.create_connection(address)
                _set_nodelay(sock)
            if self.upstream_ssl is None:
                return sock
            tls = TLSStream(sock, self.upstream_ssl, server_side=False,
                            server_hostname=self.upstream_sni)
            tls.handshake(self.connect_timeout)
            sock.settimeout(self.idle_timeout)  # bounds the sends of records (see TLSStream)
            return tls
        except (OSError, ValueError, gevent.Timeout) as exc:
            if isinstance(exc, gevent.Timeout) and exc is not timer:
                raise
            _close(sock)
            self.stats.upstream_errors += 1
            if isinstance(exc, OSError) and is_resource_error(exc):  # a storm is one condition
                count = self._upstream_fd_log.due()
                if count is not None:
                    logger.warning("proxy: cannot connect to upstream {}: {} ({} time(s); {} "
                                   "connections open, maxconn {}{})", describe(address),
                                   exc.strerror or exc, count, self.stats.active, self.maxconn,
                                   self._maxconn_hint())
                raise _Aborted from None
            reason = (handshake_error(exc) if isinstance(exc, (ssl.SSLError, gevent.Timeout))
                      else str(exc))
            logger.warning("proxy: cannot connect to upstream {}: {}", describe(address), reason)
            raise _Aborted from None
        finally:
            timer.close()
