"""Closing every middleware of a process when it ends, so that agents see HAPROXY-DISCONNECT
(SPOE.txt §3.2.7) instead of a connection reset, as HAProxy sends it on a soft stop.

A gunicorn worker (or any process) that ends normally closes its middlewares' engines by
itself: an ``atexit`` handler (:func:`close_all`) is registered with the first middleware.
:func:`worker_exit` is gunicorn's ``worker_exit`` server hook, to close them as soon as the
worker leaves its loop, while its gevent hub still runs::

    # gunicorn.conf.py
    from spoe_sync.wsgi import child_exit, worker_exit  # noqa: F401
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any

__all__ = ["close_all", "track", "worker_exit"]

#: how long closing may wait for frames in flight at exit (a worker's graceful timeout is
#: short: gunicorn's default is 30 s, often set to a few seconds)
EXIT_TIMEOUT = 2.0

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_registered = False


def track(middleware: Any) -> None:
    """Close ``middleware`` with the others when the process ends."""
    global _registered
    _LIVE.add(middleware)
    if not _registered:
        _registered = True
        atexit.register(close_all)


def close_all(timeout: float = EXIT_TIMEOUT) -> None:
    """Close the engines of every middleware of this process (each sends HAPROXY-DISCONNECT
    on its agent connections); closing twice is harmless."""
    for middleware in list(_LIVE):
        try:
            middleware.close(timeout)
        except Exception as exc:
            from loguru import logger

            logger.warning(f"SPOE: closing a middleware at exit failed: {exc!r}")


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``worker_exit(server, worker)`` hook (runs in the worker): :func:`close_all`."""
    close_all()
