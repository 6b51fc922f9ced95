"""The engine: HAProxy's SPOE at run time, on gevent (SPOE.txt §2-4).

Connection side (agents, applets, the shared pool): :class:`AppletPool`,
:class:`FrameOutcome`, :class:`PoolMetrics`, :func:`healthcheck`.
"""

from __future__ import annotations

from .healthcheck import healthcheck
from .models import FrameOutcome, HealthCheckResult, PoolMetrics, ServerMetrics
from .pool import AppletPool, PoolSettings

__all__ = [
    "AppletPool",
    "FrameOutcome",
    "HealthCheckResult",
    "PoolMetrics",
    "PoolSettings",
    "ServerMetrics",
    "healthcheck",
]
