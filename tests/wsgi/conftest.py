"""Fixtures of the WSGI middleware tests: the example-like agent and a middleware factory."""

from __future__ import annotations

import pytest

from spoe_sync.testing import FakeAgent
from spoe_sync.wsgi import SpoeMiddleware

from .support import CONF, echo_app, example_handler


@pytest.fixture
def agent():
    with FakeAgent({"*": example_handler}) as a:
        yield a


@pytest.fixture
def make_mw(agent):
    made = []

    def make(app=echo_app, conf=CONF, **kw):
        kw.setdefault("backends", {"agents": [agent.address]})
        mw = SpoeMiddleware(app, conf, "test", **kw)
        made.append(mw)
        return mw

    yield make
    for mw in made:
        mw.close(timeout=1)
