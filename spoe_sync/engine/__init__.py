"""The engine: HAProxy's SPOE at run time, on gevent (SPOE.txt §2-4).

Stream side: :class:`Engine`, :class:`Stream`, :class:`Session`, :class:`Vars`,
:class:`ProcessingResult`, :class:`Timings`, :class:`EngineMetrics`.

Connection side (agents, applets, the shared pool): :class:`AppletPool`,
:class:`FrameOutcome`, :class:`PoolMetrics`, :func:`healthcheck`.
"""

from __future__ import annotations

from .engine import Engine
from .healthcheck import healthcheck
from .models import EngineMetrics, FrameOutcome, HealthCheckResult, PoolMetrics, ServerMetrics
from .pool import AppletPool
from .result import ProcessingResult, Timings
from .settings import PoolSettings
from .stream import Stream
from .vars import ProcVars, Session, VarLimits, Vars

__all__ = [
    "AppletPool",
    "Engine",
    "EngineMetrics",
    "FrameOutcome",
    "HealthCheckResult",
    "PoolMetrics",
    "PoolSettings",
    "ProcVars",
    "ProcessingResult",
    "ServerMetrics",
    "Session",
    "Stream",
    "Timings",
    "VarLimits",
    "Vars",
    "healthcheck",
]
