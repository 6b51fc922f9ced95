"""spoe_sync's expression language: sample expressions, ACLs and conditions (pure).

Public API (see /tmp/contracts.md "Rules"): :func:`parse_sample`, :class:`SampleExpr`,
:class:`EvalContext`, :class:`AclRegistry`, :func:`parse_condition`, :class:`Condition`, the sample
sources and the ``hdrs_bin`` helpers.
"""

from __future__ import annotations

from .acl import Acl, AclExpr, AclRegistry
from .condition import Condition, parse_condition
from .hdrs import decode_hdrs_bin, encode_hdrs_bin
from .logformat import LogFormat, parse_logformat
from .sample import EvalContext, SampleExpr, VarLookup, parse_sample
from .sources import RequestInfo, ResponseInfo, SampleSource, StaticSamples, TCPSamples

__all__ = [
    "Acl",
    "AclExpr",
    "AclRegistry",
    "Condition",
    "EvalContext",
    "LogFormat",
    "RequestInfo",
    "ResponseInfo",
    "SampleExpr",
    "SampleSource",
    "StaticSamples",
    "TCPSamples",
    "VarLookup",
    "decode_hdrs_bin",
    "encode_hdrs_bin",
    "parse_condition",
    "parse_logformat",
    "parse_sample",
]
