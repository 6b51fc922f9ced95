"""The TCP proxy: HAProxy's ``listen`` section in ``mode tcp`` with ``filter spoe`` lines, on
gevent (SPOE.txt §3.3).

* :class:`TCPProxy`: the server (gevent's port-forwarder shape with the SPOE hook points);
* :class:`RuleSet`, :class:`Verdict`: the ``tcp-request content`` / ``tcp-response content``
  rules;
* :func:`run_proxy`: what ``spoe-sync proxy`` runs;
* :func:`server_context`, :func:`upstream_context`: TLS contexts for termination
  (``bind ... ssl crt``) and for the upstream (``server ... ssl verify``);
* :func:`parse_listen_address`: ``host:port``, ``unix@/path`` and ``abns@name`` addresses;
* ``spoe_sync.proxy.limits``: the connection limit (``maxconn``, by default what the file-descriptor limit
  allows) and what a failed ``accept()`` does (pause and retry, no traceback).
"""

from __future__ import annotations

from .command import run_proxy
from .connection import ProxyStats
from .listen import parse_listen_address
from .rule_runner import RuleSet, Verdict, build_acls, build_rules
from .server import TCPProxy
from .tls import TLSSamples, server_context, upstream_context

__all__ = [
    "ProxyStats",
    "RuleSet",
    "TCPProxy",
    "TLSSamples",
    "Verdict",
    "build_acls",
    "build_rules",
    "parse_listen_address",
    "run_proxy",
    "server_context",
    "upstream_context",
]
