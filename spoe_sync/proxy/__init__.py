"""The TCP proxy: HAProxy's ``listen`` section in ``mode tcp`` with ``filter spoe`` lines, on
gevent (SPOE.txt §3.3).

* :class:`TCPProxy`: the server (gevent's port-forwarder shape with the SPOE hook points);
* :class:`RuleSet`, :class:`Verdict`: the ``tcp-request content`` / ``tcp-response content``
  rules;
* :func:`run_proxy`: what ``spoe-sync proxy`` runs.
"""

from __future__ import annotations

from .command import run_proxy
from .rules import RuleSet, Verdict, build_acls, build_rules
from .server import ProxyStats, TCPProxy, parse_listen_address

__all__ = [
    "ProxyStats",
    "RuleSet",
    "TCPProxy",
    "Verdict",
    "build_acls",
    "build_rules",
    "parse_listen_address",
    "run_proxy",
]
