"""The rule runner of :mod:`spoe_sync.wsgi`: one ``http-request``, ``http-response`` or
``http-after-response`` rule set over a request, in declaration order (configuration.txt §4.2).

Request rewrites (``set-path``, ``set-src``, ``replace-header``...) edit the WSGI environ
(:mod:`spoe_sync.wsgi.rewrite`) and rebuild the samples, so that later rules, SPOE messages and
the app see the new request, as HAProxy's later rules and backend do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gevent
from loguru import logger

from ..config.rule_lines import Redirect, reason_phrase
from ..config.rule_lines.actions import (
    ERROR_PAGES,
    OP_ALLOW,
    OP_CAPTURE,
    OP_DEL_HDR,
    OP_DROP,
    OP_GROUP,
    OP_HOOK,
    OP_REDIRECT,
    OP_REPLACE,
    OP_REPLY,
    OP_REWRITE,
    OP_SET_HDR,
    OP_SET_SRC,
    OP_STATUS,
    OP_TARPIT,
    OP_VAR,
    OP_WAIT_BODY,
    RulePlan,
)
from ..errors import SpoeError
from .handler import silent_drop
from .headers import HttpResponse, delete_request_headers, hook_reply, set_request_header
from .request_samples import MiddlewareSamples
from .rewrite import (
    capture,
    replace_request_headers,
    rewrite_request_line,
    set_client_address,
    wait_for_body,
)

__all__ = ["LabelledPlan", "Reply", "RuleRunner", "error_page", "labelled_plan"]

Reply = tuple[int, str, list[tuple[str, str]], bytes]
#: ``(condition, code, action, label)`` per rule: the label names the rule in logs
LabelledPlan = tuple[tuple[Any, int, Any, str], ...]


def labelled_plan(plan: RulePlan, rules: Sequence[Any], param: str) -> LabelledPlan:
    """``plan`` with each rule's name for the logs: ``[file:line] text`` for a haproxy.cfg
    line, ``http_request[2] 'text'`` for the third rule given to the middleware."""
    out = []
    for i, (step, rule) in enumerate(zip(plan, rules)):
        if rule.lineno is not None:
            label = f"[{rule.filename}:{rule.lineno}] '{rule.text}'"
        else:
            label = f"{param}[{i}] '{rule.text}'"
        out.append((*step, label))
    return tuple(out)


def _fired(label: str, what: str) -> None:
    # what a deny/return/redirect/reject did and which rule did it: INFO on the spoe_sync
    # logger (off until the application enables it), so that a blocked request can be traced
    logger.info(f"rule {label} {what}")  # not "SPOE:": that prefix is the SPOE log line's


def error_page(status: int) -> Reply:
    """HAProxy's built-in error response for ``status``."""
    reason, headers, body = ERROR_PAGES[status]
    return status, reason, list(headers), body


class RuleRunner:
    """The rule-running half of a transaction (mixed into :mod:`spoe_sync.wsgi`'s)."""

    __slots__ = ()

    ctx: Any
    environ: dict[str, Any]
    mw: Any
    samples: Any
    #: the request's :class:`~spoe_sync.engine.transaction.Transaction` (its SPOE filters)
    spoe: Any
    vars: Any

    def _set_samples(self, samples: MiddlewareSamples) -> None:
        raise NotImplementedError

    def _response_samples(self, resp: HttpResponse, body: bytes | None = None) -> None:
        raise NotImplementedError

    def _rules(self, plan: LabelledPlan, resp: HttpResponse | None,
               final: bool) -> Reply | None:
        """Run one rule set: ``resp`` is None for ``http-request``; ``final`` for
        ``http-after-response`` (the response is already chosen: no reply, no redirect)."""
        env = self.environ
        for cond, code, action, label in plan:
            if cond is not None and not cond.evaluate(self.ctx):
                continue
            if code == OP_GROUP:
                self.spoe.group(action.engine, action.group)
            elif code == OP_VAR:
                try:
                    action.apply(self.ctx, self.vars)
                except SpoeError as exc:
                    logger.debug(f"SPOE: {action} refused: {exc}")
            elif code == OP_SET_HDR:
                value = action.value.render(self.ctx)
                if resp is None:
                    set_request_header(env, action.name, value, action.add)
                    self._set_samples(MiddlewareSamples(env))
                else:
                    if not action.add:
                        name = action.name.lower()
                        resp.headers[:] = [h for h in resp.headers if h[0].lower() != name]
                    resp.headers.append((action.name, value))
                    self._response_samples(resp)
            elif code == OP_DEL_HDR:
                if resp is None:
                    delete_request_headers(env, action.matches)
                    self._set_samples(MiddlewareSamples(env))
                else:
                    resp.headers[:] = [h for h in resp.headers if not action.matches(h[0])]
                    self._response_samples(resp)
            elif code == OP_STATUS:
                assert resp is not None  # set-status is a response action
                resp.status = action.status
                resp.reason = action.reason or reason_phrase(action.status)
                self._response_samples(resp)
            elif code == OP_REPLY and not final:
                reply = action.reply.render(self.ctx)
                _fired(label, f"answered {reply[0]}")
                return reply  # type: ignore[no-any-return]
            elif code == OP_TARPIT:
                _fired(label, f"holds the request {self.mw.tarpit_timeout}s (tarpit)")
                gevent.sleep(self.mw.tarpit_timeout)
                return action.reply.render(self.ctx)  # type: ignore[no-any-return]
            elif code == OP_REDIRECT and not final:
                reply = self._redirect(action)
                if reply is not None:
                    _fired(label, f"redirected ({reply[0]})")
                    return reply
            elif code == OP_DROP:
                _fired(label, "closed the connection without a response")
                raise silent_drop(env)
            elif code == OP_ALLOW:
                break
            elif code == OP_HOOK:
                out = action.fn(env) if resp is None else action.fn(env, resp)
                if out is not None and not final:
                    reply = hook_reply(out)
                    _fired(label, f"answered {reply[0]}")
                    return reply
            elif code >= OP_REWRITE:
                reply = self._rewrite(code, action, resp)
                if reply is not None:
                    return reply
        return None

    def _rewrite(self, code: int, action: Any, resp: HttpResponse | None) -> Reply | None:
        """The actions that rewrite the request, read it for later or wait for its body
        (no-effect actions fall through: nothing to do)."""
        env = self.environ
        if code == OP_REPLACE:
            template = action.value.render(self.ctx)
            if resp is not None:
                name = action.name.lower()
                resp.headers[:] = [(n, action.replace(v, template) if n.lower() == name else v)
                                   for n, v in resp.headers]
                self._response_samples(resp)
            elif replace_request_headers(env, action, template):
                self._set_samples(MiddlewareSamples(env))
        elif code == OP_REWRITE:
            request = self.samples.request
            new = action.value.render_bytes(self.ctx).decode("latin-1")
            target = _environ_text(request.target) if request is not None else "/"
            if not rewrite_request_line(env, action, new, target):
                logger.info(f"SPOE: set-{action.part} made a request line the server would "
                            f"refuse ({new!r}): 400")
                return error_page(400)
            self._set_samples(MiddlewareSamples(env))
        elif code == OP_SET_SRC:
            if set_client_address(env, action.expr.evaluate(self.ctx)):
                self._set_samples(MiddlewareSamples(env))
        elif code == OP_CAPTURE:
            capture(env, action, action.expr.evaluate(self.ctx))
        elif code == OP_WAIT_BODY and resp is None:
            # the response's body is buffered before the response rules (buffer_response)
            if not wait_for_body(env, action.at_least, action.time_ms):
                return error_page(408)
            self._set_samples(MiddlewareSamples(env))
        return None

    def _redirect(self, action: Redirect) -> Reply | None:
        request = self.samples.request
        target = _environ_text(request.target) if request is not None else "/"
        location = action.location(self.ctx, target, self.environ.get("HTTP_HOST"))
        if location is None:
            return None
        return action.code, reason_phrase(action.code), action.headers(location), b""


def _environ_text(target: str) -> str:
    """A request target as the fetches hold it (text whose UTF-8 encoding is the raw bytes)
    back in the environ's PEP 3333 form (the raw bytes as latin-1), which the rewrites build
    on and gevent.pywsgi writes out."""
    return target.encode("utf-8", "surrogateescape").decode("latin-1")
