"""Shared helpers of the Engine tests: a SPOE configuration, engines against FakeAgents."""

from __future__ import annotations

from ipaddress import IPv4Address

import gevent

from spoe_sync import Engine
from spoe_sync.protocol import SetVar, VarScope
from spoe_sync.samples import StaticSamples
from tests import kit

__all__ = ["CONF", "EVENT", "conf_text", "make_engine", "run_all", "samples", "set_score"]

EVENT = "on-frontend-http-request"

#: m-second comes first in the file and second in the agent's `messages` line:
#: NOTIFY order must follow the agent, not the file.  g-one has an event line
#: (not bound: it is not in `messages`) so that its condition applies in the group.
CONF = """\
[test]
spoe-agent test-agent
    messages m-first m-second
    groups grp
    option var-prefix test
    timeout hello 500ms
    timeout idle 10s
    timeout processing {processing}
    use-backend agents
{agent}
spoe-message m-second
    args path=path
    event on-frontend-http-request if {{ req.hdr(x-send) -m found }}
spoe-message m-first
    args ip=src n=int(7) host=req.hdr(host) src
    event on-frontend-http-request
spoe-message g-one
    args a=str(one)
    event on-backend-http-request if {{ req.hdr(x-group) -m found }}
spoe-message g-two
    args b=str(two) c=var(proc.test.known)
spoe-group grp
    messages g-two g-one
"""


def conf_text(*agent_lines: str, processing: str = "1s") -> str:
    return CONF.format(processing=processing, agent="".join(f"    {line}\n" for line in agent_lines))


def make_engine(address: str, *agent_lines: str, processing: str = "1s", **options: object) -> Engine:
    """An engine for CONF with extra ``spoe-agent`` lines, its backend on ``address``."""
    return kit.make_engine(conf_text(*agent_lines, processing=processing), "test", address, **options)


def samples(**headers: str) -> StaticSamples:
    mapping: dict[str, object] = {"src": IPv4Address("192.0.2.7"), "path": "/login"}
    for name, value in headers.items():
        mapping[f"req.hdr({name.replace('_', '-')})"] = value
    return StaticSamples(mapping)  # type: ignore[arg-type]


def set_score(value: int = 42, scope: VarScope = VarScope.TXN, name: str = "ip_score"):
    """A FakeAgent handler that sets one variable."""
    return lambda _message: [SetVar(scope, name, value)]


def run_all(calls, timeout: float = 10.0) -> list:
    """Run ``calls`` (zero-argument callables) concurrently, bounded in time;
    fails if one hangs or raises."""
    greenlets = [gevent.spawn(c) for c in calls]
    gevent.joinall(greenlets, timeout=timeout)
    assert all(g.dead for g in greenlets), "a stream hung"
    for g in greenlets:
        if g.exception is not None:
            raise AssertionError(f"an exception escaped the engine: {g.exception!r}")
    return [g.value for g in greenlets]
