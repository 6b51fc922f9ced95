"""SPOE configuration files (SPOE.txt §2), agent backends and haproxy.cfg reuse.

Pure except for reading files: ``load_config()`` reads a SPOE file the way HAProxy
2.6's ``filter spoe`` does and returns frozen dataclasses; backends come from Python
or from an existing haproxy.cfg.
"""

from __future__ import annotations

from .backends import Backend, Server, check_backend, normalize_backends, parse_address
from .check import format_summary, run_check
from .haproxy_cfg import (
    HaproxyConfig,
    ProxySection,
    RuleLine,
    SpoeFilter,
    load_haproxy_cfg,
    parse_haproxy_cfg,
)
from .loader import load_config, parse_config
from .model import (
    EVENTS,
    AgentConfig,
    ArgConfig,
    GroupConfig,
    LogTarget,
    MessageConfig,
    SpoeConfig,
    Timeouts,
)
from .rule_lines import (
    RULESETS,
    Hook,
    Rule,
    parse_rule,
    parse_rules,
)

__all__ = [
    "EVENTS",
    "RULESETS",
    "AgentConfig",
    "ArgConfig",
    "Backend",
    "GroupConfig",
    "HaproxyConfig",
    "Hook",
    "LogTarget",
    "MessageConfig",
    "ProxySection",
    "Rule",
    "RuleLine",
    "Server",
    "SpoeConfig",
    "SpoeFilter",
    "Timeouts",
    "check_backend",
    "format_summary",
    "load_config",
    "load_haproxy_cfg",
    "normalize_backends",
    "parse_address",
    "parse_config",
    "parse_haproxy_cfg",
    "parse_rule",
    "parse_rules",
    "run_check",
]
