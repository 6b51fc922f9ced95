"""Refusing to run where the engines cannot: outside gevent.

The engines are gevent objects: their agent connections, timers and health checks run on the
gevent hub of the thread that built them, and only while that thread waits through gevent.  A
threaded server (``flask run``, werkzeug's or wsgiref's server in threads, gunicorn's ``gthread``
workers) calls the app from plain threads: a request there waits on a hub that never runs
(``timeout processing`` every time, or gevent's "would block forever"), and the check is off
without a word.  So the first request of such a thread is refused with what to do instead.

Allowed: a request in the thread whose hub the engines live on, and the first request in the
main thread (gevent.pywsgi, gunicorn ``-k gevent``, a test client called from a test) or in any
thread already running gevent.
"""

from __future__ import annotations

import threading
from typing import Any

import gevent

from ..errors import SpoeError

try:  # gevent's own thread-local lookup (no hub created as a side effect)
    from gevent._hub_local import get_hub_if_exists as _hub_if_exists
except ImportError:  # pragma: no cover - a gevent without it: no check
    def _hub_if_exists() -> Any:  # type: ignore[misc]
        return _ANY_HUB

__all__ = ["NotUnderGevent", "check_same_hub", "current_hub"]

_ANY_HUB = object()
_WHAT_TO_DO = ("run the app under gevent: gevent.pywsgi.WSGIServer(..., "
               "handler_class=spoe_sync.wsgi.SpoeWSGIHandler) or gunicorn -k gevent "
               "(not flask run, werkzeug's or wsgiref's threaded servers, gunicorn -k gthread)")


class NotUnderGevent(SpoeError, RuntimeError):
    """The middleware was called from a thread where its gevent engines cannot run."""


def current_hub() -> Any:
    """The hub for engines built now; :raises NotUnderGevent: in a plain thread of a threaded
    server (not the main thread, and gevent never ran there)."""
    hub = _hub_if_exists()
    if hub is None:
        if threading.current_thread() is not threading.main_thread() and not _threads_patched():
            raise NotUnderGevent(
                f"SpoeMiddleware was called from thread {threading.current_thread().name!r}, "
                f"outside gevent: its agent connections could never run; {_WHAT_TO_DO}")
        hub = gevent.get_hub()
    return hub


def check_same_hub(hub: Any) -> None:
    """:raises NotUnderGevent: the request runs in another thread than the engines' hub."""
    here = _hub_if_exists()
    if here is not hub and hub is not _ANY_HUB:
        raise NotUnderGevent(
            f"SpoeMiddleware was called from thread {threading.current_thread().name!r}, but "
            f"its engines live on the gevent hub of another thread: they could not answer; "
            f"{_WHAT_TO_DO}")


def _threads_patched() -> bool:
    # with gevent.monkey.patch_all(), "threads" are greenlets of one real thread
    from gevent import monkey

    return bool(monkey.is_module_patched("threading"))
