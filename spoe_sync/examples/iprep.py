"""The IP-reputation agent of SPOE.txt §2.5, a real SPOA on :mod:`spoe_sync.agent`.

Message ``get-ip-reputation`` with arg ``ip`` (IPv4 or IPv6; a STRING holding
an address is accepted too; without an ``ip`` arg the first arg is used, as in
spoa-example's ``args src``) sets:

* ``sess.<prefix>.ip_score``: an int from 0 (certainly bad) to 100 (certainly
  good), as SPOE.txt §2.5 describes;
* ``txn.<prefix>.reason``: why, in words.

The score is deterministic: addresses in :data:`TABLE` get its score (the
documentation ranges are "listed" with 5, loopback is trusted with 100), any
other address a stable hash of its bytes between 30 and 100, so that only
listed addresses fall under the usual ``lt 20`` threshold.  Other args (``path``
...) are accepted and ignored; other messages get an ACK without actions.
Its SPOE configuration is :data:`CONFIG_PATH` (``spoe-iprep.conf``, scopes
``ip-reputation`` for HTTP and ``ip-reputation-tcp`` for the TCP proxy).

Run it with ``spoe-sync agent --listen 127.0.0.1:12345``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from ..agent import Agent, AgentServer, Request
from ..protocol import Action, Message, SetVar, UInt32, VarScope

__all__ = ["CONFIG_PATH", "MESSAGE", "TABLE", "build_agent", "get_ip_reputation", "reputation", "run",
           "start"]

#: The packaged SPOE configuration of this agent.
CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spoe-iprep.conf")
#: The message the agent answers.
MESSAGE = "get-ip-reputation"

#: Fixed scores, first match wins: (network, score, reason).
TABLE: tuple[tuple[IPv4Network | IPv6Network, int, str], ...] = tuple(
    (ip_network(net), score, reason) for net, score, reason in (
        ("192.0.2.0/24", 5, "listed (TEST-NET-1)"),
        ("198.51.100.0/24", 5, "listed (TEST-NET-2)"),
        ("2001:db8::/32", 5, "listed (IPv6 documentation range)"),
        ("127.0.0.0/8", 100, "trusted (loopback)"),
        ("::1/128", 100, "trusted (loopback)"),
    ))


def reputation(address: IPv4Address | IPv6Address) -> tuple[int, str]:
    """``(score, reason)`` of an address: the :data:`TABLE` entry, or a stable
    hash of its bytes between 30 and 100."""
    for network, score, reason in TABLE:
        if address.version == network.version and address in network:
            return score, reason
    digest = hashlib.sha256(address.packed).digest()
    return 30 + int.from_bytes(digest[:4], "big") % 71, "unlisted (hash score)"


def _address(value: object) -> IPv4Address | IPv6Address | None:
    if isinstance(value, (IPv4Address, IPv6Address)):
        return value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        try:
            return ip_address(value.strip())
        except ValueError:
            return None
    return None


def get_ip_reputation(message: Message, request: Request) -> list[Action]:
    """The ``get-ip-reputation`` handler."""
    value = message.get("ip")
    if value is None and message.args:
        # spoa-example's configuration sends it unnamed: ``args src``.
        value = message.args[0][1]
    address = _address(value)
    if address is None:
        return [SetVar(VarScope.TXN, "reason", "no usable ip argument")]
    score, reason = reputation(address)
    return [SetVar(VarScope.SESS, "ip_score", UInt32(score)),
            SetVar(VarScope.TXN, "reason", reason)]


def build_agent(name: str = "iprep-agent", *, pipelining: bool = True, async_: bool = True,
                max_frame_size: int = 16380) -> Agent:
    """The agent, ready to :meth:`~spoe_sync.agent.Agent.start` or
    :meth:`~spoe_sync.agent.Agent.serve`."""
    capabilities: Sequence[str] = tuple(
        c for c, on in (("pipelining", pipelining), ("async", async_)) if on)
    agent = Agent(name, capabilities=capabilities, max_frame_size=max_frame_size)
    agent.message(MESSAGE)(get_ip_reputation)
    return agent


def start(host: str = "127.0.0.1", port: int = 0, *, pipelining: bool = True,
          async_: bool = True) -> AgentServer:
    """Start the agent on ``host:port`` (0: a free port); returns the running server."""
    return build_agent(pipelining=pipelining, async_=async_).start(host, port)


def run(host: str = "127.0.0.1", port: int = 12345, *, pipelining: bool = True,
        async_: bool = True) -> None:
    """Serve until SIGINT/SIGTERM, then stop gracefully."""
    build_agent(pipelining=pipelining, async_=async_).serve(host, port)
