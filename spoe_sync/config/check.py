"""``spoe-sync check``: load SPOE files like ``haproxy -c`` and say what was loaded.

Errors are printed as ``[file:line] message`` (all of them), warnings as
``[file:line] warning: message``, then a short summary per engine. With a haproxy.cfg,
every ``filter spoe`` line of it is checked with its backend, the ``send-spoe-group``
rules of the proxies are checked against the engines' groups, and their other rule lines and
``acl`` lines are parsed as the WSGI middleware and the TCP proxy would parse them (an action
spoe_sync does not run is a warning: HAProxy accepts it, the middleware would refuse it); the
summaries come after all checks, and only when everything is valid, followed by one verdict
line (HAProxy's ``Error(s) found in configuration file`` on failure).

The last line always counts the files checked, the errors and the warnings, valid or not.  A
file that is not text (control bytes throughout: a binary given by mistake) is one error, not
one per "line" of it.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping
from typing import TextIO

from ..errors import ConfigError, SpoeConfigWarning
from .backends import Backend, check_backend
from .haproxy_cfg import HaproxyConfig, ProxySection, RuleLine, build_acl_registry, load_haproxy_cfg
from .loader import load_config
from .model import MessageConfig, SpoeConfig
from .rule_lines import ACTIONS, parse_rules

__all__ = ["format_summary", "run_check"]

_RULE_POINTS = {("tcp-request", "content"): "tcp-request content",
                ("tcp-response", "content"): "tcp-response content",
                ("http-request", None): "http-request", ("http-response", None): "http-response"}


def run_check(path: str | None = None, *, engine: str | None = None, haproxy: str | None = None,
              out: TextIO | None = None) -> int:
    """Check one SPOE file (``path``, ``engine``) or every SPOE filter of ``haproxy``; the
    last line printed is always the count of files checked, errors and warnings.

    :returns: 0 when valid (warnings allowed), 1 when an error was found, 2 on misuse.
    """
    report = _Report(out if out is not None else sys.stdout)
    if (path is None) == (haproxy is None):
        report.line("spoe-sync check: give a SPOE file, or --haproxy haproxy.cfg")
        return 2
    if path is not None:
        config = _load(report, path, engine, "frontend")
        if config is not None:
            report.line(format_summary(config))
        code = 0 if config is not None else 1
    else:
        code = _check_haproxy_file(haproxy, report)
    report.line(report.totals())
    return code


def _check_haproxy_file(path: str | None, out: _Report) -> int:
    assert path is not None
    if not out.read_text_file(path):
        return 1
    try:
        cfg = load_haproxy_cfg(path)
    except ConfigError as exc:
        _print_errors(out, exc)
        return 1
    return _check_haproxy(cfg, out)


class _Report:
    """Where the lines go, counting the files read and the errors and warnings said (for
    the closing line, printed whatever the verdict)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.files: dict[str, None] = {}  # ordered, each file once
        self.errors = 0
        self.warnings = 0

    def line(self, text: str) -> None:
        """Print one line whatever the file's bytes and the terminal's encoding are."""
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        try:
            self.out.write(text + "\n")
        except UnicodeEncodeError:
            self.out.write(text.encode("ascii", "backslashreplace").decode("ascii") + "\n")

    def error(self, text: str) -> None:
        self.errors += 1
        self.line(text)

    def warning(self, text: str) -> None:
        self.warnings += 1
        self.line(text)

    def read_text_file(self, path: str) -> bool:
        """Count ``path`` as checked; ``False`` (one error said) when it is not a text file:
        its bytes read as configuration lines would give one error per line."""
        self.files[path] = None
        why = _not_text(path)
        if why is not None:
            self.error(f"[{path}] not a configuration file: {why}")
            return False
        return True

    def totals(self) -> str:
        return (f"checked {_plural(len(self.files), 'file')}: {_plural(self.errors, 'error')}, "
                f"{_plural(self.warnings, 'warning')}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_SNIFF = 1 << 16
# bytes no text file holds: NUL and the C0 controls other than tab, newline, vertical tab, form
# feed and CR, and DEL
_CONTROL = frozenset(b for b in range(32) if b not in b"\t\n\v\f\r") | {0x7F}


def _not_text(path: str) -> str | None:
    """Why ``path`` is not text, or ``None``.  A few stray control bytes are not enough: a
    text file with a NUL in one line is an error of that line, which the loader names as
    ``haproxy -c`` does ("Stray NUL character"); a binary has them everywhere.  An
    unreadable file is left to the loader too, which says why in its own words."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
    except OSError:
        return None
    bad = [i for i, b in enumerate(head) if b in _CONTROL]
    if len(bad) > max(8, len(head) // 100):
        return (f"{len(bad)} control bytes in its first {len(head)} bytes, the first at offset "
                f"{bad[0]} (a binary file?)")
    return None


def _load(out: _Report, path: str, engine: str | None, proxy: str,
          bufsize: int = 16384) -> SpoeConfig | None:
    if not out.read_text_file(path):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpoeConfigWarning)
        try:
            config = load_config(path, engine, proxy=proxy, bufsize=bufsize)
        except ConfigError as exc:
            config = None
            error: ConfigError | None = exc
        else:
            error = None
    for w in caught:
        if issubclass(w.category, SpoeConfigWarning):
            out.warning(_warning_line(w.message))
    if error is not None:
        _print_errors(out, error)
    return config


def _warning_line(warning: Warning | str) -> str:
    text = str(warning)
    if text.startswith("["):
        loc, _, rest = text.partition("] ")
        return f"{loc}] warning: {rest}"
    return f"warning: {text}"


def _print_errors(out: _Report, exc: ConfigError) -> None:
    """Each error at the line to fix; when HAProxy's text names another line of the same
    file (the agent, message or group declaration), a note points there too."""
    for e in exc.errors:
        out.error(f"{e.location} {e.message}" if e.location else e.message)
        if e.filename is None:
            continue
        for m in re.finditer(rf"(?:declared|declare)? ?at {re.escape(e.filename)}:(\d+)", e.message):
            if int(m.group(1)) != e.lineno:
                out.line(f"[{e.filename}:{m.group(1)}] note: declared here")


def _check_haproxy(cfg: HaproxyConfig, out: _Report) -> int:
    if not cfg.filters:
        out.error(f"[{cfg.filename}] no 'filter spoe' line found")
        return 1
    failed = False
    engines: dict[str, dict[str, SpoeConfig]] = {}
    summaries: list[str] = []
    for flt in cfg.filters:
        where = f"[{cfg.filename}:{flt.lineno}]"
        config = _load(out, flt.path, flt.engine, flt.proxy_kind, cfg.bufsize)
        if config is None:
            out.line(f"{where} 'filter' : 'Error(s) found in configuration file {flt.config}'")
            failed = True
            continue
        seen = engines.setdefault(flt.proxy, {})
        if config.engine_id in seen:
            out.error(f"{where} Proxy {flt.proxy} : duplicated name for SPOE engine "
                  f"'{config.engine_id}'.")
            failed = True
            continue
        seen[config.engine_id] = config
        try:
            backend = check_backend(config, cfg.backends)
        except ConfigError as exc:
            out.error(f"{exc.location or where} Proxy {flt.proxy} : {exc.message} (filter spoe at "
                  f"{cfg.filename}:{flt.lineno})")
            failed = True
            continue
        summaries.append(format_summary(config, backend, proxy=flt.proxy))
    for proxy in cfg.proxies.values():
        failed |= _check_send_spoe_group(cfg, proxy, engines.get(proxy.name, {}), out)
        failed |= _check_rules(cfg, proxy, out)
    # the verdict comes last and is the only one: a "valid" SPOE file followed by a rule error
    # would read as both (summaries are printed only when the whole set-up is valid)
    if failed:
        out.line(f"Error(s) found in configuration file : {cfg.filename}")
        return 1
    for summary in summaries:
        out.line(summary)
    out.line(f"{cfg.filename}: valid ({len(summaries)} SPOE filter(s))")
    return 0


def _check_send_spoe_group(cfg: HaproxyConfig, proxy: ProxySection,
                           engines: Mapping[str, SpoeConfig], out: _Report) -> bool:
    failed = False
    for rule in proxy.rules:
        words = rule.words
        if "send-spoe-group" not in words:
            continue
        i = words.index("send-spoe-group")
        point = _RULE_POINTS.get((words[0], words[1] if words[0].startswith("tcp") else None))
        where = f"[{cfg.filename}:{rule.lineno}]"
        if len(words) < i + 3 or (len(words) > i + 3 and words[i + 3] not in ("if", "unless")):
            out.error(f"{where} '{' '.join(words[: i + 1])}' : expects 2 arguments: "
                  "<engine-id> <group-id>")
            failed = True
            continue
        if point is None:
            out.error(f"{where} 'send-spoe-group' is not available in '{' '.join(words[:2])}'")
            failed = True
            continue
        engine_id, group = words[i + 1], words[i + 2]
        config = engines.get(engine_id)
        if config is None:
            out.error(f"{where} Proxy '{proxy.name}': unable to find SPOE engine '{engine_id}' "
                  f"used by the send-spoe-group '{group}'.")
            failed = True
            continue
        if group not in config.groups:
            out.error(f"{where} Proxy '{proxy.name}': unable to find SPOE group '{group}' into "
                  f"SPOE engine '{engine_id}' configuration.")
            failed = True
            continue
        for msg in config.group_messages(group):
            for arg in msg.args:
                why = arg.expr.unavailable_at(point)
                if why is not None:
                    out.error(f"{where} Invalid SPOE message '{msg.name}' used by SPOE group "
                          f"'{group}' at {msg.filename}:{msg.lineno}: {why}")
                    failed = True
                    break
    return failed


# HAProxy 2.6's actions per rule set (configuration.txt §4.2), less the stick-counter ones
# (matched by _COUNTERS): an action in here that spoe_sync does not run is only a warning,
# any other word an error, as in ``haproxy -c``.
_COMMON = ("allow", "deny", "reject", "capture", "set-var", "set-var-fmt", "unset-var",
           "silent-drop", "set-log-level", "set-mark", "set-nice", "set-tos", "strict-mode",
           "add-header", "set-header", "del-header", "replace-header", "replace-value",
           "send-spoe-group", "redirect", "return", "wait-for-body", "add-acl", "del-acl",
           "set-map", "del-map", "ot-group")
_HAPROXY_ACTIONS = {
    "http-request": frozenset((
        *_COMMON, "auth", "cache-use", "disable-l7-retry", "do-resolve", "early-hint",
        "normalize-uri", "replace-path", "replace-pathq", "replace-uri", "set-dst",
        "set-dst-port", "set-method", "set-path", "set-pathq", "set-priority-class",
        "set-priority-offset", "set-query", "set-src", "set-src-port", "set-timeout", "set-uri",
        "tarpit", "use-service", "wait-for-handshake")),
    "http-response": frozenset((*_COMMON, "cache-store", "set-status")),
    "http-after-response": frozenset((
        "add-header", "allow", "capture", "del-header", "replace-header", "replace-value",
        "set-header", "set-status", "set-var", "set-var-fmt", "strict-mode", "unset-var",
        "ot-group")),
    "tcp-request content": frozenset((
        "accept", "capture", "do-resolve", "reject", "send-spoe-group", "set-dst",
        "set-dst-port", "set-log-level", "set-mark", "set-nice", "set-priority-class",
        "set-priority-offset", "set-src", "set-src-port", "set-tos", "set-var", "set-var-fmt",
        "silent-drop", "switch-mode", "unset-var", "use-service", "ot-group")),
    "tcp-response content": frozenset((
        "accept", "close", "reject", "send-spoe-group", "set-log-level", "set-mark",
        "set-nice", "set-tos", "set-var", "set-var-fmt", "silent-drop", "unset-var",
        "ot-group")),
}
# Actions spoe_sync parses in some rule sets only, where HAProxy accepts this form of them
# too (a response capture into a ``declare capture response`` slot): rule words -> True.
_NOT_RUN = {
    ("http-response", "capture"): lambda words: "id" in words and "len" not in words,
    ("http-after-response", "capture"): lambda words: "id" in words and "len" not in words,
}
_COUNTERS = re.compile(r"(track-sc\d+|sc-inc-gpc\d*|sc-set-gpt\d*|sc-add-gpc)\Z")


def _haproxy_runs(ruleset: str, action: str) -> bool:
    """HAProxy 2.6 knows ``action`` in ``ruleset`` (``lua.*``: a Lua action, which only
    HAProxy with that Lua file can judge)."""
    return (action in _HAPROXY_ACTIONS[ruleset] or action.startswith("lua.")
            or bool(_COUNTERS.match(action)))


def _ruleset(words: tuple[str, ...]) -> tuple[str | None, str]:
    """The rule set of a rule line and its action keyword (``set-var(txn.x)`` -> ``set-var``);
    None for the rule sets spoe_sync has no equivalent of (``tcp-request connection``...)."""
    if words[0] in ("http-request", "http-response", "http-after-response") and len(words) > 1:
        return words[0], words[1].split("(", 1)[0]
    if words[0] in ("tcp-request", "tcp-response") and len(words) > 2 and words[1] == "content":
        return f"{words[0]} content", words[2].split("(", 1)[0]
    return None, ""


def _check_rules(cfg: HaproxyConfig, proxy: ProxySection, out: _Report) -> bool:
    """The ``acl`` lines and the rule lines other than ``send-spoe-group`` of one proxy."""
    base_dir = os.path.dirname(os.path.abspath(cfg.filename))
    failed = False
    found: list[ConfigError] = []
    acls = build_acl_registry(proxy.acls, filename=cfg.filename, base_dir=base_dir,
                              errors=found)
    for exc in found:
        out.error(str(exc))
        failed = True
    rulesets: dict[str, list[RuleLine]] = {}
    for rule in proxy.rules:
        ruleset, action = _ruleset(rule.words)
        if ruleset is None or action == "send-spoe-group":  # the latter: checked above
            continue
        not_run = _NOT_RUN.get((ruleset, action))
        if ((not_run is not None and not_run(rule.words))
                or (action not in ACTIONS[ruleset] and _haproxy_runs(ruleset, action))):
            out.warning(f"[{cfg.filename}:{rule.lineno}] warning: '{ruleset} {action}' is not run "
                  "by spoe_sync: its WSGI middleware and TCP proxy would refuse this rule")
            continue
        rulesets.setdefault(ruleset, []).append(rule)
    for ruleset, rules in rulesets.items():
        # one rule set at a time, as the middleware reads it (capture slots are numbered
        # along it)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpoeConfigWarning)
            try:
                parse_rules(rules, ruleset, acls=acls, filename=cfg.filename, base_dir=base_dir)
            except ConfigError as exc:
                _print_errors(out, exc)
                failed = True
        for w in caught:
            if issubclass(w.category, SpoeConfigWarning):
                out.warning(_warning_line(w.message))
    return failed


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "unset"
    ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _fmt_message(msg: MessageConfig) -> str:
    args = ", ".join(f"{a.name}={a.expr.text}" if a.name else a.expr.text for a in msg.args)
    cond = " (conditional)" if msg.condition is not None else ""
    return f"{msg.name}({args}){cond}"


def format_summary(config: SpoeConfig, backend: Backend | None = None, *,
                   proxy: str | None = None) -> str:
    """A few lines saying what was loaded: agent, backend, timeouts, messages per event,
    groups and options."""
    a = config.agent
    head = f"{config.filename}: valid"
    if config.scope is not None:
        head += f", engine [{config.scope}]"
    if proxy is not None:
        head += f" (filter of proxy '{proxy}')"
    lines = [head, f"  agent      {a.name} (variables txn.{a.var_prefix}.*)"]
    if backend is not None:
        servers = ", ".join(f"{s.label}={s.address}" for s in backend.servers) or "no server"
        lines.append(f"  backend    {backend.name}: {servers} (balance {backend.balance})")
    else:
        lines.append(f"  backend    {a.use_backend}")
    t = a.timeouts
    lines.append(f"  timeouts   hello {_fmt_time(t.hello)}, idle {_fmt_time(t.idle)}, "
                 f"processing {_fmt_time(t.processing)}")
    if config.events:
        for event, msgs in config.events.items():
            lines.append(f"  event      {event}: " + ", ".join(_fmt_message(m) for m in msgs))
    else:
        lines.append("  event      (no message is sent on an event)")
    for name in config.groups:
        msgs = config.group_messages(name)
        lines.append(f"  group      {name}: " + (", ".join(_fmt_message(m) for m in msgs) or "empty"))
    caps = [c for c, on in (("pipelining", a.pipelining), ("async", a.async_),
                            ("send-frag-payload", a.send_frag_payload)) if on]
    opts = [f"capabilities {','.join(caps) or 'none'}", f"max-frame-size {a.max_frame_size}"]
    for label, var in (("set-on-error", a.set_on_error), ("set-process-time", a.set_process_time),
                       ("set-total-time", a.set_total_time)):
        if var:
            opts.append(f"{label} {a.var_name(var)}")
    if a.continue_on_error:
        opts.append("continue-on-error")
    lines.append("  options    " + ", ".join(opts))
    if config.warnings:
        lines.append(f"  warnings   {len(config.warnings)}")
    return "\n".join(lines)
