"""HAProxy's rule lines (configuration.txt §4.2): ``http-request``, ``http-response``,
``http-after-response``, ``tcp-request content`` and ``tcp-response content``, parsed once into
frozen :class:`Rule` objects that the WSGI middleware (:mod:`spoe_sync.wsgi.rule_runner`) and the
TCP proxy (:mod:`spoe_sync.proxy.rule_runner`) run.

* :mod:`.parser`: a line to a :class:`Rule` (``parse_rules``, ``parse_rule``), with HAProxy's
  checks and wording, and the actions implemented per rule set (``ACTIONS``);
* :mod:`.args`: the arguments of actions (log-format and sample arguments, ``capture``,
  ``replace-header``, ``wait-for-body``, the actions without effect);
* :mod:`.actions`: the actions as frozen dataclasses, HAProxy's error pages and reason phrases,
  and a rule set's plan (``rule_plan``);
* :mod:`.rewrites`: the actions that rewrite or hold the request.

Not to be confused with :mod:`spoe_sync.rules`, the sample expressions and ACLs these lines'
conditions and arguments are made of.
"""

from __future__ import annotations

from .parser import (
    ACTIONS,
    ERROR_PAGES,
    NO_EFFECT,
    RULESETS,
    Accept,
    Allow,
    Capture,
    DelHeader,
    Deny,
    Hook,
    NoEffect,
    Redirect,
    Reject,
    ReplaceHeader,
    Reply,
    Return,
    Rule,
    SendSpoeGroup,
    SetHeader,
    SetSrc,
    SetStartLine,
    SetStatus,
    SetVar,
    SilentDrop,
    Tarpit,
    UnsetVar,
    WaitForBody,
    parse_rule,
    parse_rules,
    reason_phrase,
)

__all__ = [
    "ACTIONS", "ERROR_PAGES", "NO_EFFECT", "RULESETS", "Accept", "Allow", "Capture", "DelHeader",
    "Deny", "Hook", "NoEffect", "Redirect", "Reject", "ReplaceHeader", "Reply", "Return", "Rule",
    "SendSpoeGroup", "SetHeader", "SetSrc", "SetStartLine", "SetStatus", "SetVar", "SilentDrop",
    "Tarpit", "UnsetVar", "WaitForBody", "parse_rule", "parse_rules", "reason_phrase",
]
