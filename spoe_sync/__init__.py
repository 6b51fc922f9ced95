"""spoe_sync: HAProxy's SPOE, the engine side of SPOP, for gevent WSGI apps and TCP proxies.

Library logging goes through loguru and is off until the application opts in with
``loguru.logger.enable("spoe_sync")``.
"""

from __future__ import annotations

from ._version import __version__
from .config import load_config
from .engine import Engine, ProcessingResult, Session, Stream, Timings
from .engine.healthcheck import healthcheck
from .errors import (
    ConfigError,
    EngineClosed,
    MessageTooLarge,
    ProcessingError,
    ProcessingTimeout,
    ProtocolError,
    ResourceError,
    SpoeConfigWarning,
    SpoeError,
    VariableError,
)

__all__ = [
    "ConfigError",
    "Engine",
    "EngineClosed",
    "MessageTooLarge",
    "ProcessingError",
    "ProcessingResult",
    "ProcessingTimeout",
    "ProtocolError",
    "ResourceError",
    "Session",
    "SpoeConfigWarning",
    "SpoeError",
    "Stream",
    "Timings",
    "VariableError",
    "__version__",
    "healthcheck",
    "load_config",
]
