"""HAProxy rule lines for the WSGI middleware and the TCP proxy (configuration.txt §4.2).

``parse_rules(lines, "http-request")`` turns ``http-request``, ``http-response``,
``http-after-response``, ``tcp-request content`` and ``tcp-response content`` lines into frozen
:class:`Rule` objects once, at construction time, with HAProxy's checks and wording (an unknown
action, a bad status, a missing content-type, a fetch not usable at that point...).  A bad line
raises :class:`~spoe_sync.errors.ConfigError` naming the rule and, for a file, ``[file:line]``.

Actions (each optionally followed by ``if|unless <condition>``):

* HTTP: ``send-spoe-group <engine> <group>``, ``deny``/``tarpit`` (``[deny_status|status N]``
  plus ``return``'s options), ``return [status N] [content-type T] [string S | lf-string F |
  file F | lf-file F | default-errorfiles] [hdr <name> <fmt>]*``, ``redirect location|prefix|
  scheme <fmt> [code N] [drop-query] [append-slash] [ignore-empty] [set-cookie N[=v]]
  [clear-cookie N[=]]``, ``set-header|add-header <name> <fmt>``, ``del-header <name> [-m
  str|beg|end|sub|reg]``, ``set-var(<name>[,<cond>...]) <expr>``, ``set-var-fmt(...) <fmt>``,
  ``unset-var(<name>)``, ``set-status N [reason R]`` (responses), ``silent-drop``, ``reject``,
  ``allow``, ``replace-header|replace-value <name> <regex> <fmt>`` (Python ``re`` stands in for
  PCRE), ``strict-mode on|off``;
* http-request: ``set-method|set-path|set-pathq|set-query|set-uri <fmt>``, ``set-src <expr>``,
  ``capture <sample> len <length>`` (slots numbered in rule order) or ``capture <sample> id
  <slot>`` (a slot of such a rule: ``declare capture`` is not read), ``wait-for-body time <time>
  [at-least <bytes>]`` (also http-response);
* accepted, checked and skipped with a :class:`~spoe_sync.errors.SpoeConfigWarning`, as they
  mean nothing to a WSGI app: ``set-log-level``, ``set-nice``, ``set-tos``, ``set-mark``,
  ``set-priority-class``, ``set-priority-offset``, ``strict-mode`` (spoe_sync's rewrites never
  fail); ``lua.<name>`` is an error that says to pass a Python callable instead, ``http-response
  capture`` one that says to capture in ``http-request``;
* TCP content: ``send-spoe-group``, ``accept``, ``reject``, ``silent-drop``, ``set-var``,
  ``set-var-fmt``, ``unset-var``;
* any rule set: a Python callable (or :class:`Hook` with a condition), for what HAProxy does in
  Lua.

A condition whose fetches cannot run at the rule set's point only warns (HAProxy: "acl will
never match"); a sample expression or log-format argument that cannot run there is an error, as
in HAProxy.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Union

from ...errors import ConfigError, ExpressionError, SpoeConfigWarning
from ...rules import AclRegistry, Condition, parse_condition
from ...rules.logformat import LogFormat
from ...rules.pcre import compile_pcre
from ..haproxy_cfg import RuleLine
from ..lexer import LexError, tokenize
from .actions import (
    ERROR_PAGES,
    Accept,
    Action,
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
    reason_phrase,
)
from .args import (
    NO_EFFECT,
    REPLACE,
    capture_action,
    extra_words,
    no_effect_action,
    replace_action,
    sample_arg,
    wait_for_body_action,
)
from .args import RuleError as _RuleError
from .args import fmt as _fmt

__all__ = [
    "ACTIONS", "ERROR_PAGES", "NO_EFFECT", "RULESETS", "Accept", "Allow", "Capture", "DelHeader",
    "Deny", "Hook", "NoEffect", "Redirect", "Reject", "ReplaceHeader", "Reply", "Return", "Rule",
    "SendSpoeGroup", "SetHeader", "SetSrc", "SetStartLine", "SetStatus", "SetVar", "SilentDrop",
    "Tarpit", "UnsetVar", "WaitForBody", "parse_rule", "parse_rules", "reason_phrase",
]

RULESETS = ("http-request", "http-response", "http-after-response", "tcp-request content",
            "tcp-response content")
_HTTP_MAIN = ("send-spoe-group", "deny", "return", "redirect", "set-header", "add-header",
              "del-header", "set-var", "set-var-fmt", "unset-var", "silent-drop", "allow")
#: The actions spoe_sync implements, per rule set.
ACTIONS: dict[str, tuple[str, ...]] = {
    "http-request": (*_HTTP_MAIN, "tarpit", "reject", "set-method", "set-path", "set-pathq",
                     "set-query", "set-uri", "set-src", *REPLACE, "capture", "wait-for-body",
                     *NO_EFFECT),
    "http-response": (*_HTTP_MAIN, "set-status", *REPLACE, "capture", "wait-for-body",
                      *NO_EFFECT[:4], "strict-mode"),
    "http-after-response": ("set-header", "add-header", "del-header", "set-var", "set-var-fmt",
                            "unset-var", "set-status", "allow", *REPLACE, "capture",
                            "strict-mode"),
    "tcp-request content": ("send-spoe-group", "accept", "reject", "silent-drop", "set-var",
                            "set-var-fmt", "unset-var"),
    "tcp-response content": ("send-spoe-group", "accept", "reject", "silent-drop", "set-var",
                             "set-var-fmt", "unset-var"),
}

_VAR_NAME = re.compile(r"(proc|sess|txn|req|res)\.[A-Za-z0-9_.]+\Z")
_SET_VAR_CONDS = ("ifexists", "ifnotexists", "ifempty", "ifnotempty", "ifset", "ifnotset",
                  "ifgt", "iflt")


# ------------------------------------------------------------------------------------ parsing

RuleSource = Union[str, Sequence[str], RuleLine, Hook, Callable[..., Any]]


def parse_rules(lines: Iterable[RuleSource], ruleset: str, *, acls: AclRegistry | None = None,
                engines: Mapping[str, Collection[str]] | None = None,
                filename: str | None = None, base_dir: str | None = None,
                env: Mapping[str, str] | None = None) -> tuple[Rule, ...]:
    """Parse a list of rules of one rule set.

    :param lines: rule text as in haproxy.cfg, with or without the rule-set keyword
        (``"deny if { ... }"`` or ``"http-request deny if { ... }"``), tokenized words, a
        :class:`~spoe_sync.config.RuleLine`, a callable or a :class:`Hook`.
    :param engines: engine id -> its group names, to check ``send-spoe-group`` as HAProxy does;
        ``None`` skips the check.
    :raises ConfigError: the first bad rule, with every error in ``.errors``.
    """
    errors: list[ConfigError] = []
    rules: list[Rule] = []
    for line in lines:
        try:
            rules.append(parse_rule(line, ruleset, acls=acls, engines=engines,
                                    filename=filename, base_dir=base_dir, env=env))
        except ConfigError as exc:
            errors.append(exc)
    if not errors:
        rules = _number_captures(rules, ruleset, errors)
    if errors:
        raise ConfigError(errors[0].message, errors[0].filename, errors[0].lineno,
                          errors=tuple(errors))
    return tuple(rules)


def _number_captures(rules: list[Rule], ruleset: str, errors: list[ConfigError]) -> list[Rule]:
    """``capture ... len N`` rules take the next slot in rule order; ``capture ... id N`` must
    name one of them (HAProxy checks that once the whole proxy is read)."""
    lengths = [r.action.length for r in rules if isinstance(r.action, Capture)
               and not r.action.by_id]
    out, slot = [], 0
    for rule in rules:
        action = rule.action
        if isinstance(action, Capture):
            if not action.by_id:
                action, slot = dataclasses.replace(action, slot=slot), slot + 1
            elif action.slot < 0:  # HAProxy accepts it and never captures into it
                action = dataclasses.replace(action, length=0)
            elif action.slot >= len(lengths):
                errors.append(ConfigError(
                    f"unable to find capture id '{action.slot}' referenced by {ruleset} capture "
                    "rule (spoe_sync knows the slots of 'http-request capture <sample> len N' "
                    "rules only)", rule.filename, rule.lineno))
            else:
                action = dataclasses.replace(action, length=lengths[action.slot])
            rule = dataclasses.replace(rule, action=action)
        out.append(rule)
    return out


def parse_rule(line: RuleSource, ruleset: str, *, acls: AclRegistry | None = None,
               engines: Mapping[str, Collection[str]] | None = None,
               filename: str | None = None, lineno: int | None = None,
               base_dir: str | None = None, env: Mapping[str, str] | None = None) -> Rule:
    """Parse one rule (see :func:`parse_rules`). :raises ConfigError:"""
    if ruleset not in RULESETS:
        raise ConfigError(f"unknown rule set '{ruleset}' (expected one of {', '.join(RULESETS)})")
    acls = acls if acls is not None else AclRegistry()
    if isinstance(line, Hook) or (callable(line) and not isinstance(line, (str, RuleLine))):
        hook = line if isinstance(line, Hook) else Hook(line)
        cond = None
        if hook.condition:
            try:
                cond = _condition(tokenize(hook.condition, env), acls, base_dir, ruleset, "hook")
            except LexError as exc:
                raise ConfigError(f"'{ruleset} hook' : {exc.message}", filename, lineno) from None
            except _RuleError as exc:
                raise ConfigError(f"'{ruleset} hook' : {exc.message}", filename, lineno) from None
        return Rule(ruleset, "hook", hook, cond, hook.name, filename, lineno)
    if isinstance(line, RuleLine):
        words, lineno = list(line.words), line.lineno
        text = " ".join(words)
    elif isinstance(line, str):
        text = line.strip()
        try:
            words = tokenize(line, env)
        except LexError as exc:
            raise ConfigError(f"rule '{text}' : {exc.message}", filename, lineno) from None
    elif isinstance(line, (list, tuple)) and all(isinstance(w, str) for w in line):
        words = list(line)
        text = " ".join(words)
    else:
        raise ConfigError(f"'{ruleset}' rule {line!r} : expected the rule text (str), its words "
                          f"(a list of str), a callable or a Hook, not {type(line).__name__}",
                          filename, lineno)
    if not words:
        raise ConfigError(f"'{ruleset}' expects an action", filename, lineno)
    words = _strip_ruleset(words, ruleset)
    keyword = words[0] if words else ""
    try:
        if not words:
            raise _RuleError(f"'{ruleset}' expects an action")
        action, rest = _parse_action(words, ruleset, base_dir, engines)
        cond = None
        if rest:
            cond = _condition(rest, acls, base_dir, ruleset, _base_keyword(keyword))
    except _RuleError as exc:
        raise ConfigError(f"rule '{text}' : {exc.message}", filename, lineno) from None
    return Rule(ruleset, _base_keyword(keyword), action, cond, text, filename, lineno)


def _strip_ruleset(words: list[str], ruleset: str) -> list[str]:
    parts = ruleset.split()
    if words[:len(parts)] == parts:
        return words[len(parts):]
    if len(parts) == 2 and words[:1] == parts[1:]:
        return words[1:]
    return words


def _base_keyword(word: str) -> str:
    return word.split("(", 1)[0] if word.endswith(")") else word


def _condition(words: Sequence[str], acls: AclRegistry, base_dir: str | None, ruleset: str,
               keyword: str) -> Condition:
    if words[0] not in ("if", "unless"):
        raise extra_words(f"'{ruleset} {keyword}'", words[0])
    try:
        cond = parse_condition(words, acls, base_dir=base_dir)
    except ExpressionError as exc:
        raise _RuleError(f"error detected while parsing an '{ruleset} {keyword}' condition : "
                         f"{exc}") from None
    reason = cond.unavailable_at(ruleset)
    if reason is not None:
        warnings.warn(SpoeConfigWarning(f"'{ruleset} {keyword}' : condition '{cond.text}' will "
                                        f"never match: {reason}"), stacklevel=4)
    return cond


def _split_cond(words: list[str]) -> tuple[list[str], list[str]]:
    for i, w in enumerate(words):
        if w in ("if", "unless"):
            return words[:i], words[i:]
    return words, []


def _status(word: str, low: int, high: int) -> int:
    if not word.isdigit() or not low <= int(word) <= high:
        raise _RuleError(f"Unexpected status code '{word}'")
    return int(word)


def _read(path: str, base_dir: str | None) -> str:
    full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
    try:
        with open(full, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise _RuleError(f"failed to open file '{path}' : {exc.strerror}") from None


def _parse_action(words: list[str], ruleset: str, base_dir: str | None,
                  engines: Mapping[str, Collection[str]] | None) -> tuple[Action, list[str]]:
    kw = _base_keyword(words[0])
    if kw.startswith("lua.") and ruleset.startswith("http"):
        raise _RuleError(f"'{ruleset} {kw}': spoe_sync runs no Lua; pass a Python callable (or "
                         "a Hook with a condition) in the rule list instead")
    if kw not in ACTIONS[ruleset]:
        raise _RuleError(f"'{ruleset}' expects {', '.join(repr(a) for a in ACTIONS[ruleset])}, "
                         f"but got '{words[0]}' (spoe_sync implements these actions)")
    args, rest = _split_cond(words[1:])
    where = f"'{ruleset} {words[0]}'"
    if kw == "send-spoe-group":
        if len(args) != 2:
            raise _RuleError(f"{where} expects 2 arguments: <engine-name> <group-name>")
        if engines is not None:
            if args[0] not in engines:
                raise _RuleError(f"unable to find SPOE engine '{args[0]}' used by the "
                                 f"send-spoe-group '{args[1]}'")
            if args[1] not in engines[args[0]]:
                raise _RuleError(f"unable to find SPOE group '{args[1]}' into SPOE engine "
                                 f"'{args[0]}'")
        return SendSpoeGroup(args[0], args[1]), rest
    if kw in ("deny", "tarpit", "return"):
        reply = _reply(kw, args, ruleset, base_dir)
        cls: type[Deny | Tarpit | Return] = {"deny": Deny, "tarpit": Tarpit,
                                              "return": Return}[kw]  # type: ignore[assignment]
        return cls(reply), rest
    if kw == "redirect":
        return _redirect(args, ruleset), rest
    if kw in ("set-header", "add-header"):
        if len(args) != 2:
            raise _RuleError(f"{where} expects exactly 2 arguments.")
        return SetHeader(args[0], _fmt(args[1], ruleset), add=kw == "add-header"), rest
    if kw == "del-header":
        return _del_header(args, where), rest
    if kw in ("set-var", "set-var-fmt", "unset-var"):
        return _var_action(words[0], kw, args, ruleset), rest
    if kw in ("set-method", "set-path", "set-pathq", "set-query", "set-uri"):
        if len(args) != 1:
            raise _RuleError(f"{where} expects exactly 1 argument <format>.")
        return SetStartLine(kw[4:], _fmt(args[0], ruleset)), rest
    if kw == "set-src":
        return SetSrc(sample_arg(args, ruleset, where)), rest
    if kw in REPLACE:
        return replace_action(kw, args, ruleset, where), rest
    if kw == "capture":
        return capture_action(args, ruleset, where), rest
    if kw == "wait-for-body":
        return wait_for_body_action(args, where), rest
    if kw in NO_EFFECT:
        action = no_effect_action(kw, args, ruleset, where)
        why = ("spoe_sync's rewrites never fail" if kw == "strict-mode" else
               "a WSGI app has no such setting")
        warnings.warn(SpoeConfigWarning(f"{where} has no effect in spoe_sync ({why}); the rule "
                                        "is skipped"), stacklevel=5)
        return action, rest
    if kw == "set-status":
        if not args:
            raise _RuleError(f"{where} expects an integer status code between 100 and 999.")
        if not args[0].isdigit() or not 100 <= int(args[0]) <= 999:
            raise _RuleError(f"{where} expects an integer status code between 100 and 999.")
        reason = None
        if len(args) > 1:
            if args[1] != "reason" or len(args) != 3:
                raise extra_words(where, args[1])
            reason = args[2]
        return SetStatus(int(args[0]), reason), rest
    if args:
        raise extra_words(where, args[0])
    bare: type[SilentDrop | Reject | Allow | Accept] = {
        "silent-drop": SilentDrop, "reject": Reject, "allow": Allow,
        "accept": Accept}[kw]  # type: ignore[assignment]
    return bare(), rest


def _reply(kw: str, args: list[str], ruleset: str, base_dir: str | None) -> Reply:
    # HAProxy: deny answers 403 on requests and 502 on responses (act_parse_http_deny)
    status = {"deny": 502 if ruleset == "http-response" else 403, "tarpit": 500,
              "return": 200}[kw]
    content_type = None
    body: bytes | None = None
    body_fmt: LogFormat | None = None
    headers: list[tuple[str, LogFormat]] = []
    errorfile = kw != "return" and all(a in ("deny_status",) or a.isdigit() for a in args)
    payload_kw = None
    status_word = None
    i = 0
    while i < len(args):
        word = args[i]
        need = 2 if word == "hdr" else 1
        if word in ("status", "deny_status", "content-type", "string", "lf-string", "file",
                    "lf-file", "errorfile", "errorfiles", "hdr") and i + need >= len(args):
            raise _RuleError(f"'{word}' expects "
                             + ("<name> and <value> as arguments." if word == "hdr"
                                else "an argument."))
        if word in ("status", "deny_status") and (word == "status" or kw != "return"):
            status_word = args[i + 1]
            i += 2
        elif word == "content-type":
            content_type = args[i + 1]
            i += 2
        elif word in ("string", "lf-string", "file", "lf-file", "default-errorfiles"):
            if payload_kw is not None:
                raise _RuleError(f"unexpected '{word}' argument, '{payload_kw}' already defined")
            payload_kw = word
            if word == "default-errorfiles":
                errorfile = True
                i += 1
                continue
            text = args[i + 1] if word in ("string", "lf-string") else _read(args[i + 1],
                                                                              base_dir)
            if word.startswith("lf-"):
                body_fmt = _fmt(text, ruleset)
                body = None if not body_fmt.is_static else body_fmt.render_bytes(None)  # type: ignore[arg-type]
                if body is not None:
                    body_fmt = None
            else:
                body = text.encode("utf-8", "surrogateescape")
            i += 2
        elif word in ("errorfile", "errorfiles"):
            raise _RuleError(f"'{word}' is not supported by spoe_sync (use 'file' or "
                             "'lf-file' with 'content-type')")
        elif word == "hdr":
            headers.append((args[i + 1], _fmt(args[i + 2], ruleset)))
            i += 3
        else:
            raise extra_words(f"'{ruleset} {kw}'", word)
    if status_word is not None:
        status = _status(status_word, 200, 599)
    if errorfile and payload_kw not in (None, "default-errorfiles"):
        errorfile = False
    if errorfile and status not in ERROR_PAGES:
        raise _RuleError(f"Unexpected status code '{status}'")
    has_payload = bool(body) or body_fmt is not None
    if has_payload and not content_type:
        raise _RuleError("a content type must be defined when non-empty payload is configured.")
    if has_payload and status in (204, 304):
        raise _RuleError(f"No body expected for {status} responses.")
    return Reply(status, content_type, body, body_fmt, tuple(headers), errorfile)


def _redirect(args: list[str], ruleset: str) -> Redirect:
    kind = value = None
    code = 302
    opts: dict[str, Any] = {}
    cookie = None
    i = 0
    while i < len(args):
        word = args[i]
        if word in ("location", "prefix", "scheme", "code", "set-cookie", "clear-cookie"):
            if i + 1 >= len(args):
                raise _RuleError(f"missing argument for '{word}'.")
            arg = args[i + 1]
            if word == "code":
                if not arg.isdigit() or int(arg) not in (301, 302, 303, 307, 308):
                    raise _RuleError(f"'code': unsupported HTTP code '{arg}' (must be one of "
                                     "301, 302, 303, 307 or 308).")
                code = int(arg)
            elif word == "set-cookie":
                cookie = f"{arg}; path=/;"
            elif word == "clear-cookie":
                cookie = f"{arg}; path=/; Max-Age=0;"
            else:
                kind, value = word, arg
            i += 2
        elif word in ("drop-query", "append-slash", "ignore-empty"):
            opts[word.replace("-", "_")] = True
            i += 1
        else:
            raise _RuleError(f"expects 'code', 'prefix', 'location', 'scheme', 'set-cookie', "
                             f"'clear-cookie', 'drop-query', 'ignore-empty' or 'append-slash' "
                             f"(was '{word}')")
    if kind is None or value is None:
        raise _RuleError("redirection type expected ('prefix', 'location', or 'scheme').")
    return Redirect(kind, _fmt(value, ruleset), code, cookie=cookie, **opts)


def _del_header(args: list[str], where: str) -> DelHeader:
    if len(args) == 1:
        return DelHeader(args[0])
    if len(args) == 3 and args[1] == "-m":
        method = args[2]
        if method not in ("str", "beg", "end", "sub", "reg"):
            raise _RuleError(f"{where}: bad '-m' argument '{method}' (expected str, beg, end, "
                             "sub or reg)")
        regex = None
        if method == "reg":
            try:
                regex = compile_pcre(args[0])
            except re.error as exc:
                raise _RuleError(f"{where}: bad regex '{args[0]}' : {exc}") from None
        return DelHeader(args[0], method, regex)
    raise _RuleError(f"{where} expects <name> [ -m <meth> ]")


def _var_action(word: str, kw: str, args: list[str], ruleset: str) -> SetVar | UnsetVar:
    if "(" not in word or not word.endswith(")"):
        raise _RuleError(f"'{ruleset} {kw}' expects a variable name between parentheses: "
                         f"'{kw}(<scope>.<name>)'")
    inner = word[len(kw) + 1:-1].split(",")
    name, conds = inner[0].strip(), tuple(c.strip() for c in inner[1:])
    if not _VAR_NAME.match(name):
        raise _RuleError(f"invalid variable name '{name}'. A variable name must be start by its "
                         "scope. The scope can be 'proc', 'sess', 'txn', 'req', 'res' or "
                         "'check'.")
    if kw == "unset-var":
        if conds:
            raise _RuleError(f"'{word}' takes no condition")
        if args:
            raise extra_words(f"'{ruleset} {word}'", args[0])
        return UnsetVar(name)
    for c in conds:
        if c not in _SET_VAR_CONDS:
            raise _RuleError(f"'{c}' is not a valid set-var condition (expected one of "
                             f"{', '.join(_SET_VAR_CONDS)})")
    if len(conds) > 4:
        raise _RuleError("set-var accepts at most four conditions")
    where = f"'{ruleset} {word}'"
    if kw == "set-var":
        return SetVar(name, expr=sample_arg(args, ruleset, where), conditions=conds)
    if not args:
        raise _RuleError(f"{where} expects a log-format string")
    if len(args) > 1:
        raise extra_words(where, args[1])
    return SetVar(name, fmt=_fmt(args[0], ruleset), conditions=conds)

