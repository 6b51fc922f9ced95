"""The actions of HAProxy rule lines, as frozen dataclasses (configuration.txt §4.2), and the
replies they make: HAProxy 2.6's built-in error pages, reason phrases, redirect locations,
header matches and set-var conditions.  Parsed by :mod:`spoe_sync.config.rule_lines.parser`; run by
the WSGI middleware and the TCP proxy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ...protocol.values import Value
from ...rules import Condition, EvalContext, SampleExpr
from ...rules.logformat import LogFormat
from .rewrites import (
    Capture,
    NoEffect,
    ReplaceHeader,
    SetSrc,
    SetStartLine,
    WaitForBody,
    expand_backrefs,
)

__all__ = [
    "ERROR_PAGES",
    "OP_ALLOW",
    "OP_CAPTURE",
    "OP_DEL_HDR",
    "OP_DROP",
    "OP_GROUP",
    "OP_HOOK",
    "OP_NOOP",
    "OP_REDIRECT",
    "OP_REPLACE",
    "OP_REPLY",
    "OP_REWRITE",
    "OP_SET_HDR",
    "OP_SET_SRC",
    "OP_STATUS",
    "OP_TARPIT",
    "OP_VAR",
    "OP_WAIT_BODY",
    "Accept",
    "Action",
    "Allow",
    "Capture",
    "DelHeader",
    "Deny",
    "Hook",
    "NoEffect",
    "Redirect",
    "Reject",
    "ReplaceHeader",
    "Reply",
    "Return",
    "Rule",
    "RulePlan",
    "SendSpoeGroup",
    "SetHeader",
    "SetSrc",
    "SetStartLine",
    "SetStatus",
    "SetVar",
    "SilentDrop",
    "Tarpit",
    "UnsetVar",
    "WaitForBody",
    "expand_backrefs",
    "exprs_of",
    "reason_phrase",
    "rule_plan",
    "uses_fetch",
]

_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Payload Too Large", 421: "Misdirected Request",
    422: "Unprocessable Content", 425: "Too Early", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}
# HAProxy 2.6's built-in error pages (http_err_msgs): reason and text, as served by haproxy.
_ERRORS = {
    200: ("OK", "Service ready."),
    400: ("Bad request", "Your browser sent an invalid request."),
    403: ("Forbidden", "Request forbidden by administrative rules."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "A request was made of a resource using a request method not "
          "supported by that resource"),
    408: ("Request Time-out", "Your browser didn't send a complete request in time."),
    410: ("Gone", "The resource is no longer available and will not be available again."),
    413: ("Payload Too Large", "The request entity exceeds the maximum allowed."),
    425: ("Too Early", "Your browser sent early data."),
    429: ("Too Many Requests", "You have sent too many requests in a given amount of time."),
    500: ("Internal Server Error", "An internal server error occurred."),
    501: ("Not Implemented", ".The server does not support the functionality required to "
          "fulfill the request."),
    502: ("Bad Gateway", "The server returned an invalid or incomplete response."),
    503: ("Service Unavailable", "No server is available to handle this request."),
    504: ("Gateway Time-out", "The server didn't respond in time."),
}
#: status -> (reason, headers, body) of HAProxy's default error pages.
ERROR_PAGES: dict[int, tuple[str, tuple[tuple[str, str], ...], bytes]] = {}
for _code, (_reason, _text) in _ERRORS.items():
    _body = f"<html><body><h1>{_code} {_reason}</h1>\n{_text}\n</body></html>\n".encode()
    _hdrs: tuple[tuple[str, str], ...] = (("cache-control", "no-cache"),
                                          ("content-type", "text/html"))
    if _code in (400, 408):
        _hdrs += (("connection", "close"),)
    ERROR_PAGES[_code] = (_reason, _hdrs, _body)



def reason_phrase(status: int) -> str:
    """The reason phrase HAProxy uses for ``status`` (``"Unknown"`` when it has none)."""
    return _REASONS.get(status, "Unknown")


# ------------------------------------------------------------------------------------ actions

@dataclass(frozen=True)
class SendSpoeGroup:
    """``send-spoe-group <engine> <group>``: run a SPOE group now (SPOE.txt §2.4)."""
    engine: str
    group: str


@dataclass(frozen=True)
class Reply:
    """The response of ``deny``, ``tarpit`` and ``return``.

    :attr errorfile: HAProxy's built-in page for :attr:`status` (``headers`` ignored).
    :attr body: a raw payload; :attr body_fmt: a log-format payload (``lf-string``/``lf-file``).
    """
    status: int
    content_type: str | None = None
    body: bytes | None = None
    body_fmt: LogFormat | None = None
    headers: tuple[tuple[str, LogFormat], ...] = ()
    errorfile: bool = False

    def render(self, ctx: EvalContext) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """``(status, reason, headers, body)``; header values are latin-1 text (PEP 3333)."""
        if self.errorfile:
            reason, hdrs, body = ERROR_PAGES[self.status]
            return self.status, reason, list(hdrs), body
        headers = []
        for name, fmt in self.headers:
            value = fmt.render(ctx)
            if value:  # HAProxy skips a hdr whose value renders empty
                headers.append((name, value))
        body = self.body_fmt.render_bytes(ctx) if self.body_fmt is not None else self.body or b""
        if body and self.content_type:
            headers.append(("content-type", self.content_type))
        return self.status, reason_phrase(self.status), headers, body


@dataclass(frozen=True)
class Deny:
    """``deny``: stop the rules and answer :attr:`reply` (403 page by default)."""
    reply: Reply


@dataclass(frozen=True)
class Tarpit:
    """``tarpit``: hold the request for ``timeout tarpit``, then answer (500 page by default)."""
    reply: Reply


@dataclass(frozen=True)
class Return:
    """``return``: stop the rules and answer :attr:`reply` (200, empty, by default)."""
    reply: Reply


@dataclass(frozen=True)
class Redirect:
    """``redirect location|prefix|scheme <fmt> [code N] [options]``."""
    kind: str
    value: LogFormat
    code: int = 302
    drop_query: bool = False
    append_slash: bool = False
    ignore_empty: bool = False
    cookie: str | None = None  # the Set-Cookie value (set-cookie / clear-cookie)

    def location(self, ctx: EvalContext, target: str, host: str | None) -> str | None:
        """The Location value for a request to ``target`` (raw request-target) with Host
        ``host``; ``None`` when ``ignore-empty`` skips the rule."""
        value = self.value.render(ctx)
        if not value and self.ignore_empty:
            return None
        if self.kind == "location":
            return value
        path, sep, query = target.partition("?")
        if self.kind == "scheme":
            path = path if path and path != "*" else "/"
        if self.drop_query:
            sep = query = ""
            if self.append_slash and not path.endswith("/"):
                path += "/"
        rest = path + sep + query
        if self.kind == "scheme":
            return f"{value}://{host or ''}{rest}"
        return rest if value == "/" else value + rest

    def headers(self, location: str) -> list[tuple[str, str]]:
        out = [("location", location)]
        if self.code != 301:
            out.append(("cache-control", "no-cache"))
        if self.cookie is not None:
            out.append(("set-cookie", self.cookie))
        return out


@dataclass(frozen=True)
class SetHeader:
    """``set-header`` (``add=False``: replaces every occurrence) / ``add-header``."""
    name: str
    value: LogFormat
    add: bool = False


@dataclass(frozen=True)
class DelHeader:
    """``del-header <name> [-m str|beg|end|sub|reg]`` (names compare case-insensitively,
    except with ``reg``, which is applied as written)."""
    name: str
    method: str = "str"
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, header: str) -> bool:
        h, n = header.lower(), self.name.lower()
        if self.method == "str":
            return h == n
        if self.method == "beg":
            return h.startswith(n)
        if self.method == "end":
            return h.endswith(n)
        if self.method == "sub":
            return n in h
        assert self._regex is not None
        return self._regex.search(header) is not None


@dataclass(frozen=True)
class SetVar:
    """``set-var(<name>[,<cond>...]) <expr>`` or ``set-var-fmt(...) <fmt>``."""
    name: str
    expr: SampleExpr | None = None
    fmt: LogFormat | None = None
    conditions: tuple[str, ...] = ()

    def value(self, ctx: EvalContext) -> Value:
        if self.fmt is not None:
            return self.fmt.render_bytes(ctx).decode("utf-8", "surrogateescape")
        assert self.expr is not None
        return self.expr.evaluate(ctx)

    def allowed(self, exists: bool, old: Value, new: Value) -> bool:
        """The ``<cond>`` list against the variable's current state and the new value
        (configuration.txt, ``set-var`` converter)."""
        for cond in self.conditions:
            empty = isinstance(new, (str, bytes)) and not new
            numeric = (isinstance(old, int) and isinstance(new, int)
                       and not isinstance(old, bool) and not isinstance(new, bool))
            ok = {"ifexists": exists, "ifnotexists": not exists, "ifset": old is not None,
                  "ifnotset": old is None, "ifempty": empty, "ifnotempty": not empty,
                  "ifgt": not numeric or old > new,  # type: ignore[operator]
                  "iflt": not numeric or old < new}[cond]  # type: ignore[operator]
            if not ok:
                return False
        return True


    def apply(self, ctx: EvalContext, vars: Any) -> bool:
        """Run the action on ``vars`` (``get``/``set``/``in`` with full names, e.g. the engine's
        ``Vars``): a failed sample or an unmet ``<cond>`` leaves the variable alone, as in
        HAProxy.  Returns whether it was set; the store's own errors propagate."""
        value = self.value(ctx)
        if value is None:
            return False
        if self.conditions and not self.allowed(self.name in vars, vars.get(self.name), value):
            return False
        vars.set(self.name, value)
        return True


@dataclass(frozen=True)
class UnsetVar:
    name: str

    def apply(self, ctx: EvalContext, vars: Any) -> bool:
        return bool(vars.unset(self.name))


@dataclass(frozen=True)
class SetStatus:
    status: int
    reason: str | None = None


@dataclass(frozen=True)
class SilentDrop:
    """Close the client connection without a response."""


@dataclass(frozen=True)
class Reject:
    """Close the connection (TCP: ``reject``; HTTP: ``http-request reject``)."""


@dataclass(frozen=True)
class Allow:
    """Stop evaluating this rule set (``allow``)."""


@dataclass(frozen=True)
class Accept:
    """Stop evaluating the TCP content rules and let the connection through."""


@dataclass(frozen=True)
class Hook:
    """A Python callable as a rule, with an optional condition text (``"if { ... }"``).

    How it is called depends on the runner (see :mod:`spoe_sync.wsgi`).
    """
    fn: Callable[..., Any]
    condition: str | None = None

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)


Action = Union[SendSpoeGroup, Deny, Tarpit, Return, Redirect, SetHeader, DelHeader, SetVar,
               UnsetVar, SetStatus, SilentDrop, Reject, Allow, Accept, Hook, SetStartLine,
               SetSrc, ReplaceHeader, Capture, WaitForBody, NoEffect]


@dataclass(frozen=True)
class Rule:
    """One parsed rule.

    :attr ruleset: ``"http-request"``, ``"http-response"``, ``"http-after-response"``,
        ``"tcp-request content"`` or ``"tcp-response content"``.
    :attr keyword: the action as written (``"deny"``, ``"set-var"``, ``"hook"``...).
    :attr text: the line as written (for errors and logs).
    """
    ruleset: str
    keyword: str
    action: Action
    condition: Condition | None = None
    text: str = ""
    filename: str | None = None
    lineno: int | None = None

    def applies(self, ctx: EvalContext) -> bool:
        return self.condition is None or self.condition.evaluate(ctx)

    @property
    def var_refs(self) -> tuple[str, ...]:
        refs: list[str] = list(self.condition.var_refs) if self.condition else []
        for attr in ("expr", "fmt", "value", "body_fmt"):
            obj = getattr(self.action, attr, None)
            refs.extend(getattr(obj, "var_refs", ()))
        return tuple(dict.fromkeys(refs))


# ------------------------------------------------------------------------------------ analysis

def exprs_of(obj: Any) -> list[Any]:
    """The sample expressions of a rule action, message, condition or log-format."""
    out: list[Any] = []
    if obj is None:
        return out
    if hasattr(obj, "suites"):  # a Condition
        for suite in obj.suites:
            for term in suite:
                out.extend(e.expr for e in term.acl.exprs)
        return out
    if hasattr(obj, "exprs") and isinstance(obj.exprs, tuple):  # a LogFormat
        return list(obj.exprs)
    for attr in ("expr", "fmt", "value", "body_fmt", "reply", "condition"):
        sub = getattr(obj, attr, None)
        if sub is not None:
            out.extend([sub] if hasattr(sub, "fetch") else exprs_of(sub))
    headers = getattr(obj, "headers", ())
    for _name, fmt in headers if isinstance(headers, tuple) else ():  # not Redirect.headers()
        out.extend(exprs_of(fmt))
    for arg in getattr(obj, "args", ()) or ():
        out.extend(exprs_of(arg))
    return out


def uses_fetch(configs: Sequence[Any], events: Sequence[str], rules: Sequence[Rule],
               prefix: str, sent_groups_only: bool = False) -> bool:
    """Whether a rule, or a message of ``configs`` (:class:`~spoe_sync.config.SpoeConfig`) sent
    on ``events`` or in a group (with ``sent_groups_only``, a group some rule sends), reads a
    fetch starting with ``prefix`` (``"req.body"``...)."""
    exprs: list[Any] = []
    sent: set[tuple[str, str]] = set()
    for rule in rules:
        exprs += exprs_of(rule.action) + exprs_of(rule.condition)
        if isinstance(rule.action, SendSpoeGroup):
            sent.add((rule.action.engine, rule.action.group))
    for cfg in configs:
        for event in events:
            for message in cfg.events.get(event, ()):
                exprs += exprs_of(message)
        for group in cfg.groups:
            if sent_groups_only and (cfg.engine_id, group) not in sent:
                continue
            for message in cfg.group_messages(group):
                exprs += exprs_of(message)
    return any(str(getattr(e, "fetch", "")).startswith(prefix) for e in exprs)


#: Dispatch codes of the actions (:func:`rule_plan`).
(OP_GROUP, OP_VAR, OP_SET_HDR, OP_DEL_HDR, OP_STATUS, OP_REPLY, OP_TARPIT, OP_REDIRECT, OP_DROP, OP_ALLOW,
 OP_HOOK, OP_REWRITE, OP_SET_SRC, OP_REPLACE, OP_CAPTURE, OP_WAIT_BODY, OP_NOOP) = range(17)
_OPS: dict[type, int] = {SendSpoeGroup: OP_GROUP, SetVar: OP_VAR, UnsetVar: OP_VAR,
                           SetHeader: OP_SET_HDR, DelHeader: OP_DEL_HDR, SetStatus: OP_STATUS,
                           Deny: OP_REPLY, Return: OP_REPLY, Tarpit: OP_TARPIT, Redirect: OP_REDIRECT,
                           SilentDrop: OP_DROP, Reject: OP_DROP, Allow: OP_ALLOW, Hook: OP_HOOK, Accept: OP_ALLOW,
                           SetStartLine: OP_REWRITE, SetSrc: OP_SET_SRC, ReplaceHeader: OP_REPLACE,
                           Capture: OP_CAPTURE, WaitForBody: OP_WAIT_BODY, NoEffect: OP_NOOP}
#: ``(condition, OP_*, action)`` per rule: how runners dispatch without isinstance chains.
RulePlan = tuple[tuple[Any, int, Any], ...]


def rule_plan(rules: Sequence[Rule]) -> RulePlan:
    """``(condition, code, action)`` per rule."""
    return tuple((rule.condition, _OPS[type(rule.action)], rule.action) for rule in rules)
