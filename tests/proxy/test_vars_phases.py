"""req.* and res.* variables in the TCP proxy follow HAProxy 2.6's one req/res store
(src/vars.c, stream.c): until the stream connects to its server it holds req.* (a res variable
set then is dropped), from then on res.* (the req variables are gone)."""

from __future__ import annotations

from typing import Any

import pytest

from spoe_sync.protocol import Message, SetVar, VarScope
from spoe_sync.proxy import TCPProxy
from spoe_sync.testing import FakeAgent
from tests.kit import wait_until

from .proxykit import Upstream, exchange, make_engine, running

pytestmark = pytest.mark.timeout(30)


def test_req_vars_end_when_the_proxy_connects_to_its_server() -> None:
    def at_request(message: Message) -> list[SetVar]:
        return [SetVar(VarScope.REQ, "q", 1), SetVar(VarScope.RES, "early", 2)]

    def at_response(message: Message) -> list[SetVar]:
        return [SetVar(VarScope.RES, "r", 3), SetVar(VarScope.REQ, "late", 4)]

    finals: list[dict[str, Any]] = []
    with FakeAgent({"at-request": at_request, "at-response": at_response}) as agent, \
            Upstream("banner", banner=b"WELCOME") as up:
        proxy = TCPProxy(("127.0.0.1", 0), up.address, engines=[make_engine(agent.address)],
                         inspect_delay=1, on_connection=lambda s, v: finals.append(v.as_dict()))
        with running(proxy):
            assert exchange(proxy, b"hi").startswith(b"WELCOME")
            assert wait_until(lambda: finals)
    got = {k: v for k, v in finals[0].items() if k.startswith(("req.", "res."))}
    assert got == {"res.iprep.r": 3}
