"""The TCP proxy's connection limit and what it does when ``accept()`` fails, as HAProxy's
listeners do (``maxconn``; ``listener_accept()`` in ``src/listener.c``).

* At ``maxconn`` connections the proxy stops accepting and resumes when one ends: the clients
  beyond it wait in the kernel's listen backlog, they are not refused.
* Without an explicit ``maxconn`` the limit derives from the file-descriptor limit, as
  HAProxy's does when ``maxconn`` is not set (:func:`default_maxconn`).
* ``accept()`` failing for want of a resource (``EMFILE``, ``ENFILE``, ``ENOBUFS``,
  ``ENOMEM``) pauses accepting for :data:`RESOURCE_PAUSE` and retries: the pending clients
  stay in the backlog until descriptors are free again.  A client that went away before it
  was accepted (``ECONNABORTED``, ``EPROTO``...) costs nothing: the next one is accepted at
  once.  Neither is a bug, so neither prints a traceback; a resource shortage is logged at
  most once per :data:`LOG_INTERVAL` (a storm of failed accepts must not flood the log).

Pure: no socket, no gevent.
"""

from __future__ import annotations

import errno
import resource
import time
from collections.abc import Callable

__all__ = ["FD_RESERVE", "LOG_INTERVAL", "RESOURCE_PAUSE", "RateLimitedLog", "accept_error_kind",
           "default_maxconn", "is_resource_error"]

#: descriptors kept out of the proxy's connections: stdin/stdout/stderr, the listener, the
#: hub's poller and wake-up descriptors, signal handling, agent health checks, log files
FD_RESERVE = 16
#: seconds accepting pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM (HAProxy waits for a
#: connection to end, or 100 ms, before it retries a listener that hit a resource limit)
RESOURCE_PAUSE = 0.1
#: seconds between two log lines about failing accepts
LOG_INTERVAL = 10.0

# the client is gone or the network dropped it between the SYN and accept(): Linux reports
# these from accept() as well (accept(2), "Error handling")
_CLIENT_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT,
                          errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP,
                          errno.ENETUNREACH, errno.EINTR, errno.EAGAIN, errno.EPERM})
_RESOURCE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# gevent's BaseServer.fatal_errors: the listener is unusable, retrying cannot help
_FATAL = frozenset({errno.EBADF, errno.EINVAL, errno.ENOTSOCK})
# cap of the derived default when the limit is unlimited or huge: a bound the hub can still
# serve, and HAProxy's own order of magnitude (it caps at its compile-time DEFAULT_MAXCONN
# when no limit is known)
_MAXCONN_CAP = 100_000


def default_maxconn(with_engines: bool, nofile: int | None = None) -> int:
    """The connection limit when none is given: what the file-descriptor limit allows.

    HAProxy computes its default ``maxconn`` from ``ulimit -n`` in the same way: the
    descriptors left after a reserve, divided by the descriptors one connection needs.  Here
    a connection takes two (the client and the upstream, as HAProxy counts), plus one when
    SPOE engines run: an agent connection, since in sync mode the engine opens one per
    stream being processed.  So at the common limit of 1,024 descriptors the default is 336
    with engines and 504 without, and a proxy never runs out of descriptors through its own
    connections.  ``nofile`` defaults to the process's soft ``RLIMIT_NOFILE`` (not raised:
    a library has no business changing its process's limits).
    """
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile == resource.RLIM_INFINITY or nofile < 0:
        return _MAXCONN_CAP
    per_connection = 3 if with_engines else 2
    return max(1, min(_MAXCONN_CAP, (nofile - FD_RESERVE) // per_connection))


def is_resource_error(exc: BaseException) -> bool:
    """Out of descriptors, buffers or memory: the process's limit, not the peer's fault."""
    return isinstance(exc, OSError) and exc.errno in _RESOURCE


def accept_error_kind(exc: OSError) -> str:
    """``"client"`` (retry at once), ``"fatal"`` (the listening socket itself is closed or
    broken: gevent's server closes it) or ``"resource"`` (pause, then retry; also for an
    error not known here, which backing off can only help)."""
    if exc.errno in _CLIENT_GONE:
        return "client"
    if exc.errno in _FATAL:
        return "fatal"
    return "resource"


class RateLimitedLog:
    """Say that something keeps failing (``accept()``, or connecting to the upstream for want
    of descriptors) at most once per :data:`LOG_INTERVAL`, with how many failed since the
    last line."""

    __slots__ = ("_clock", "_next", "_suppressed")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next = 0.0
        self._suppressed = 0

    def due(self) -> int | None:
        """``None`` when this failure stays silent, else how many failures (this one
        included) the line to log stands for."""
        self._suppressed += 1
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + LOG_INTERVAL
        count, self._suppressed = self._suppressed, 0
        return count
