"""What every test shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gevent import get_hub


@pytest.fixture(autouse=True)
def _fresh_loop_clock() -> Iterator[None]:
    """libev times gevent's timers from the loop's cached clock, refreshed only when the loop
    runs.  A test that blocked the loop for a while (a subprocess, HAProxy, a threaded server)
    leaves it stale, and the next test's ``joinall(timeout=10)`` or ``gevent.Timeout`` would then
    expire as soon as it is armed.  Applications run the loop all the time; tests refresh it."""
    get_hub().loop.update_now()
    yield
