"""The arguments of the HTTP rule actions that rewrite the request or read it for later
(configuration.txt §4.2): ``set-src``, ``replace-header``/``replace-value``, ``capture``,
``wait-for-body`` and the actions that mean nothing to a WSGI app, with HAProxy 2.6's checks and
messages.  Used by :mod:`spoe_sync.config.rule_lines.parser`.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import ExpressionError
from ...rules import parse_sample
from ...rules.logformat import LogFormat, parse_logformat
from ...rules.pcre import compile_pcre
from ..syntax import parse_time_ms
from .rewrites import Capture, NoEffect, ReplaceHeader, WaitForBody

__all__ = [
    "NO_EFFECT",
    "REPLACE",
    "RuleError",
    "capture_action",
    "extra_words",
    "fmt",
    "no_effect_action",
    "replace_action",
    "sample_arg",
    "wait_for_body_action",
]

REPLACE = ("replace-header", "replace-value")
#: Actions HAProxy accepts that mean nothing to a WSGI app: checked, then skipped with a warning.
NO_EFFECT = ("set-log-level", "set-nice", "set-tos", "set-mark", "set-priority-class",
             "set-priority-offset", "strict-mode")
_LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "silent")


class RuleError(Exception):
    """A bad rule line (the message only: the caller adds the rule and location)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def extra_words(where: str, found: str) -> RuleError:
    """HAProxy's error for a word after an action's arguments that is not a condition."""
    return RuleError(f"{where} expects either 'if' or 'unless' followed by a condition but "
                     f"found '{found}'")


def fmt(text: str, ruleset: str) -> LogFormat:
    """A log-format argument, checked for the rule set's point."""
    try:
        return parse_logformat(text, point=ruleset)
    except ExpressionError as exc:
        raise RuleError(f"failed to parse log-format '{text}' : {exc.message}") from None


def sample_arg(args: list[str], ruleset: str, where: str) -> Any:
    """The one sample expression of ``set-src`` and the like, checked as HAProxy does."""
    if not args:
        raise RuleError("missing fetch method.")
    if len(args) > 1:
        raise extra_words(where, args[1])
    try:
        expr = parse_sample(args[0])
    except ExpressionError as exc:
        raise RuleError(exc.message) from None
    reason = expr.unavailable_at(ruleset)
    if reason is not None:
        raise RuleError(f"fetch method '{expr.fetch}' : {reason}")
    if not expr.implemented:
        raise RuleError(f"'{expr.text}' is not implemented by spoe_sync")
    return expr


def replace_action(kw: str, args: list[str], ruleset: str, where: str) -> ReplaceHeader:
    if len(args) < 3:
        raise RuleError(f"{where} expects exactly 3 arguments.")
    if len(args) > 3:
        raise extra_words(where, args[3])
    try:
        regex = compile_pcre(args[1])
    except re.error as exc:
        raise RuleError(f"regex '{args[1]}' is invalid ({exc})") from None
    return ReplaceHeader(args[0], regex, fmt(args[2], ruleset), each=kw == "replace-value")


def capture_action(args: list[str], ruleset: str, where: str) -> Capture:
    if ruleset != "http-request":
        raise RuleError(f"{where} stores into a 'declare capture response' slot, which "
                         "spoe_sync does not have: capture in 'http-request' with "
                         "'capture <sample> len <length>'")
    if len(args) < 3:
        raise RuleError(f"{where} expects <expression> [ 'len' <length> | id <idx> ].")
    expr = sample_arg(args[:1], ruleset, where)
    if args[1] not in ("len", "id"):
        raise RuleError(f"{where} expects 'len' or 'id', found '{args[1]}'.")
    if len(args) > 3:
        raise extra_words(where, args[3])
    number = re.match(r"[-+]?\d+", args[2])
    value = int(number.group()) if number else 0
    if args[1] == "id":
        if number is None:
            raise RuleError(f"cannot parse id '{args[2]}'.")
        return Capture(expr, 0, value, by_id=True)
    if value <= 0:
        raise RuleError("length must be > 0.")
    return Capture(expr, value)


def _size(text: str, keyword: str) -> int:
    """HAProxy's ``parse_size_err()``: digits and an optional k/m/g (x1024) suffix."""
    m = re.match(r"\d*", text)
    digits = m.group() if m else ""
    if not digits:
        raise RuleError(f"unexpected character '{text[:1] or keyword}'.")
    rest = text[len(digits):]
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(rest[:1].lower())
    if mult is None or len(rest) > 1 or int(digits) * mult > 0xFFFFFFFF:
        raise RuleError(f"unexpected character '{rest[1:2] if mult and len(rest) > 1 else rest[:1]}'.")
    return int(digits) * mult


def wait_for_body_action(args: list[str], where: str) -> WaitForBody:
    if not args or args[0] != "time":
        raise RuleError(f"{where} expects time <time> [ at-least <bytes> ].")
    if len(args) < 2:
        raise RuleError("missing argument for 'time'.")
    parsed = parse_time_ms(args[1], "time")
    if parsed.error is not None and parsed.error.startswith("timer overflow"):
        raise RuleError("time overflow (maximum value is 2147483647 ms or ~24.8 days).")
    if parsed.error is not None or parsed.warning is not None or parsed.ms is None:
        bad = re.sub(r"^\d*(us|ms|s|m|h|d)?", "", args[1])[:1]
        raise RuleError(f"unexpected character '{bad}'.")
    at_least, i = 0, 2
    if len(args) > 2 and args[2] == "at-least":
        if len(args) < 4:
            raise RuleError("missing argument for 'at-least'.")
        at_least, i = _size(args[3], "at-least"), 4
    if len(args) > i:
        raise extra_words(where, args[i])
    return WaitForBody(parsed.ms, at_least)


def no_effect_action(kw: str, args: list[str], ruleset: str, where: str) -> NoEffect:
    if kw in ("set-priority-class", "set-priority-offset"):
        sample_arg(args, ruleset, where)
        return NoEffect(kw, tuple(args))
    expects = {"set-log-level": "exactly 1 argument (log level name or 'silent')",
               "set-nice": "exactly 1 argument (integer value)",
               "set-tos": "exactly 1 argument (integer/hex value)",
               "set-mark": "exactly 1 argument (integer/hex value)",
               "strict-mode": "exactly 1 arguments"}[kw]
    if not args or (kw == "set-log-level" and args[0] not in _LOG_LEVELS):
        raise RuleError(f"{where} expects {expects}.")
    if kw in ("set-tos", "set-mark"):
        m = re.match(r"0[xX][0-9A-Fa-f]*|\d*", args[0])
        end = m.end() if m else 0
        if end < len(args[0]) or not args[0]:
            raise RuleError(f"invalid character starting at '{args[0][end:]}' (integer/hex "
                             "value expected).")
    if kw == "strict-mode" and args[0] not in ("on", "off"):
        raise RuleError(f"Unexpected value '{args[0]}'. Only 'on' and 'off' are supported.")
    if len(args) > 1:
        raise extra_words(where, args[1])
    return NoEffect(kw, tuple(args))
