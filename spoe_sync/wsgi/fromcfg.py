"""What :meth:`SpoeMiddleware.from_haproxy_cfg <spoe_sync.wsgi.SpoeMiddleware.from_haproxy_cfg>`
takes from one frontend (or listen) section of a haproxy.cfg, and what it says it leaves out.

The file is read once, by :mod:`spoe_sync.config.haproxy_cfg`; this module only decides, for each
setting of the section (its ``defaults`` included), whether the middleware honours it or warns
that it does not.  A setting that changes what agents see and is silently dropped would make the
agents' verdicts differ from HAProxy's without anyone knowing (an empty ``req.body`` without
``option http-buffer-request`` lets body attacks through), so every one of them is either honoured
or named in a :class:`~spoe_sync.errors.SpoeConfigWarning` (once per keyword and call).
"""

from __future__ import annotations

import warnings
from typing import Any

from ..config.haproxy_cfg import HaproxyConfig, ProxySection, RuleLine
from ..errors import SpoeConfigWarning

__all__ = ["section_options"]

_RULESETS = ("http-request", "http-response", "http-after-response")

#: settings that change what agents (or the client) see and that the middleware does not do,
#: with what the difference is
_NOT_HONOURED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("tcp-request",), "tcp-request rules are not run (a WSGI app only sees HTTP requests); "
                       "write them as http-request rules"),
    (("tcp-response",), "tcp-response rules are not run; write them as http-response rules"),
    (("option", "forwardfor"), "no X-Forwarded-For header is added: agents and the app see "
                               "the request without it (REMOTE_ADDR is the client)"),
    (("option", "originalto"), "no X-Original-To header is added"),
    (("option", "accept-invalid-http-request"),
     "the server parses requests, not the middleware: serve with a SpoeWSGIHandler subclass "
     "that sets accept_invalid_http_request = True (8-bit bytes and '#' in the target, odd "
     "header names, an authority that differs from Host are otherwise refused with 400)"),
    (("capture", "request"), "capture slots are those of 'http-request capture ... len' rules "
                             "only, so capture.req.hdr(<n>) may name another slot than in "
                             "HAProxy"),
    (("declare", "capture"), "capture slots are those of 'http-request capture ... len' rules "
                             "only, so capture.req.hdr(<n>) may name another slot than in "
                             "HAProxy"),
    (("compression",), "responses are not compressed: on-http-response sees the app's body"),
    (("errorfile",), "deny/tarpit/return answer with HAProxy's built-in error pages"),
    (("errorfiles",), "deny/tarpit/return answer with HAProxy's built-in error pages"),
    (("http-error",), "deny/tarpit/return answer with HAProxy's built-in error pages"),
    (("redirect",), "old-style 'redirect' lines are not run; write them as "
                    "'http-request redirect' rules"),
)


def section_options(cfg: HaproxyConfig, section: ProxySection) -> dict[str, Any]:
    """The :class:`~spoe_sync.wsgi.SpoeMiddleware` keyword arguments of ``section``; warns
    (``SpoeConfigWarning``) about each setting that changes what agents see and is not
    honoured."""
    rules: dict[str, list[RuleLine]] = {name: [] for name in _RULESETS}
    for line in section.rules:
        if line.words[0] in rules:
            rules[line.words[0]].append(line)
    options: dict[str, Any] = {
        "http_request": rules["http-request"], "http_response": rules["http-response"],
        "http_after_response": rules["http-after-response"],
        "acls": [(line.words[1], list(line.words[2:]), line.lineno) for line in section.acls
                 if len(line.words) > 1],
    }
    if section.setting("option", "http-buffer-request") is not None:
        # HAProxy waits for the body (as much as one buffer holds) before the request rules
        # and the SPOE events; req.body then holds what fits (WSGISamples truncates it alike)
        options["buffer_body"] = cfg.bufsize
    for keyword, option in (("unique-id-format", "unique_id_format"),
                            ("unique-id-header", "unique_id_header")):
        setting = section.setting(keyword)
        if setting is not None and len(setting.words) > 1:
            options[option] = " ".join(setting.words[1:])
    _warn_not_honoured(cfg, section)
    return options


def _warn_not_honoured(cfg: HaproxyConfig, section: ProxySection) -> None:
    lines = list(section.settings) + [r for r in section.rules if r.words[0] not in _RULESETS]
    for keyword, why in _NOT_HONOURED:
        n = len(keyword)
        found = [line.lineno for line in lines if line.words[:n] == keyword]
        if found:
            _warn(cfg, found, " ".join(keyword), why)
    others = [line.lineno for line in lines
              if line.words[0] == "filter" and line.words[1:2] != ("spoe",)]
    if others:
        _warn(cfg, others, "filter", "only 'filter spoe' lines are run")
    for line in lines:
        if line.words[0] not in ("use_backend", "default_backend") or len(line.words) < 2:
            continue
        backend = cfg.proxies.get(line.words[1])
        if backend is not None and (backend.filters or backend.rules):
            _warn(cfg, [line.lineno], line.words[0],
                  f"the 'filter spoe' lines and rules of backend '{line.words[1]}' are not "
                  "run: the middleware reads one frontend section")


def _warn(cfg: HaproxyConfig, linenos: list[int], keyword: str, why: str) -> None:
    where = ",".join(str(n) for n in linenos)
    warnings.warn(SpoeConfigWarning(
        f"[{cfg.filename}:{where}] '{keyword}' is not honoured by the WSGI middleware: {why}"),
        stacklevel=5)
