"""Reading the parts of an existing haproxy.cfg that spoe_sync can reuse.

* ``backend``/``listen`` sections: ``server NAME ADDR [check] [inter T] [rise N] [fall N]
  [weight W] [maxconn N] [disabled]``, ``default-server``, ``balance``, ``timeout
  connect|server``, ``option spop-check``, ``mode tcp|spop|http`` (``defaults`` apply);
* ``filter spoe [engine NAME] config FILE`` lines of frontends, listens and backends;
* ``tune.bufsize`` of ``global`` (it bounds ``max-frame-size``);
* the ``http-request``/``tcp-request``/``http-response``/``tcp-response``/
  ``http-after-response`` lines and the ``acl`` lines of every proxy, kept tokenized with
  their line numbers;
* every other line of a ``frontend``/``listen``/``backend`` section, after those of the last
  ``defaults`` section before it (what the proxy inherits), as ``settings``: the WSGI
  middleware honours or warns about the ones that change what agents see.

Everything else is skipped: this is not a haproxy.cfg validator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ..errors import ConfigError, SpoeError
from ..rules import AclRegistry
from .backends import BALANCE_ALGORITHMS, Backend, Server
from .lexer import LexError, split_lines, tokenize
from .loader import load_config, read_source
from .model import SpoeConfig
from .syntax import parse_time_ms

__all__ = ["AclSource", "HaproxyConfig", "ProxySection", "RuleLine", "SpoeFilter",
           "build_acl_registry", "load_haproxy_cfg", "parse_haproxy_cfg"]

_PROXY_KINDS = ("frontend", "backend", "listen")
_OTHER_SECTIONS = ("global", "defaults", "resolvers", "peers", "userlist", "ring", "program",
                   "http-errors", "cache", "mailers", "crt-store", "traces", "log-forward")
_RULE_KEYWORDS = ("http-request", "http-response", "http-after-response", "tcp-request",
                  "tcp-response")
# server keywords that take a value, so that their value is not read as a keyword
_SERVER_VALUE_KWS = frozenset((
    "addr", "agent-addr", "agent-inter", "agent-port", "agent-send", "alpn", "ca-file",
    "check-alpn", "check-proto", "check-sni", "ciphers", "ciphersuites", "cookie", "crl-file",
    "crt", "downinter", "error-limit", "fastinter", "id", "init-addr", "log-proto", "maxqueue",
    "minconn", "namespace", "observe", "on-error", "on-marked-down", "on-marked-up",
    "pool-low-conn", "pool-max-conn", "pool-purge-delay", "port", "proto", "proxy-v2-options",
    "redir", "resolve-net", "resolve-opts", "resolve-prefer", "resolvers", "slowstart", "sni",
    "source", "ssl-max-ver", "ssl-min-ver", "tcp-ut", "track", "verify", "verifyhost",
    "ws", "max-reuse", "hash-key", "set-proxy-v2-tlv-fmt", "usesrc", "shard", "guid",
))


_Err = Callable[[str, int], None]


@dataclass(frozen=True)
class RuleLine:
    """A rule line kept for later layers (``words`` tokenized, HAProxy's rules)."""

    words: tuple[str, ...]
    lineno: int


@dataclass(frozen=True)
class SpoeFilter:
    """A ``filter spoe [engine NAME] config FILE`` line."""

    proxy: str
    proxy_kind: str
    engine: str | None
    config: str
    lineno: int
    path: str

    def load(self, *, bufsize: int = 16384) -> SpoeConfig:
        """Load this filter's SPOE file as HAProxy would (scope, proxy kind, bufsize)."""
        return load_config(self.path, self.engine, proxy=self.proxy_kind, bufsize=bufsize)


@dataclass
class _Defaults:
    mode: str = "tcp"
    balance: str = "roundrobin"
    timeout_connect: float | None = None
    timeout_server: float | None = None
    server_defaults: dict[str, object] = field(default_factory=dict)
    settings: list[RuleLine] = field(default_factory=list)


@dataclass(frozen=True)
class ProxySection:
    """A ``frontend``/``backend``/``listen`` section, as far as spoe_sync reads it."""

    kind: str
    name: str
    lineno: int
    mode: str
    filters: tuple[SpoeFilter, ...]
    rules: tuple[RuleLine, ...]
    backend: Backend | None
    acls: tuple[RuleLine, ...] = ()
    #: the section's other lines, the inherited ``defaults`` ones first (a later line of a
    #: keyword overrides an earlier one, ``no option X`` included, as in HAProxy)
    settings: tuple[RuleLine, ...] = ()

    def setting(self, *keyword: str) -> RuleLine | None:
        """The last line starting with ``keyword`` (its words), defaults included; ``None``
        when there is none or when ``no <keyword>`` came last."""
        n = len(keyword)
        found: RuleLine | None = None
        for line in self.settings:
            if line.words[:n] == keyword:
                found = line
            elif line.words[0] == "no" and line.words[1:n + 1] == keyword:
                found = None
        return found


@dataclass(frozen=True)
class HaproxyConfig:
    """What spoe_sync took from a haproxy.cfg."""

    filename: str
    proxies: Mapping[str, ProxySection]
    backends: Mapping[str, Backend]
    filters: tuple[SpoeFilter, ...]
    bufsize: int = 16384

    def load_filters(self) -> list[tuple[SpoeFilter, SpoeConfig]]:
        """Load the SPOE file of every ``filter spoe`` line, in file order.

        :raises ConfigError: from the first file that does not load.
        """
        return [(flt, flt.load(bufsize=self.bufsize)) for flt in self.filters]


class _Proxy:
    def __init__(self, kind: str, name: str, lineno: int, d: _Defaults) -> None:
        self.kind, self.name, self.lineno = kind, name, lineno
        self.mode, self.balance = d.mode, d.balance
        self.timeout_connect, self.timeout_server = d.timeout_connect, d.timeout_server
        self.server_defaults = dict(d.server_defaults)
        self.spop_check = False
        self.servers: list[Server] = []
        self.filters: list[SpoeFilter] = []
        self.rules: list[RuleLine] = []
        self.acls: list[RuleLine] = []
        self.settings: list[RuleLine] = list(d.settings)


def load_haproxy_cfg(path: str | os.PathLike[str]) -> HaproxyConfig:
    """Read a haproxy.cfg file (see :func:`parse_haproxy_cfg`)."""
    text, filename = read_source(os.fspath(path))
    return parse_haproxy_cfg(text, filename=filename)


def parse_haproxy_cfg(text: str, *, filename: str = "<string>",
                      env: Mapping[str, str] | None = None) -> HaproxyConfig:
    """Parse haproxy.cfg text. :raises ConfigError: with every problem found."""
    errors: list[ConfigError] = []
    defaults = _Defaults()
    proxies: list[_Proxy] = []
    current: _Proxy | _Defaults | None = None
    in_global = False
    bufsize = 16384
    base = os.path.dirname(os.path.abspath(filename)) if filename != "<string>" else os.getcwd()

    def err(message: str, lineno: int) -> None:
        errors.append(ConfigError(message, filename, lineno))

    for line in split_lines(text):
        try:
            words = tokenize(line.raw, env)
        except LexError as exc:
            err(exc.describe(line.raw), line.lineno)
            continue
        if not words:
            continue
        kw = words[0]
        if kw in _PROXY_KINDS:
            if len(words) < 2:
                err(f"'{kw}' expects <name> as an argument.", line.lineno)
                current = None
                continue
            current = _Proxy(kw, words[1], line.lineno, defaults)
            proxies.append(current)
            continue
        if kw in _OTHER_SECTIONS:
            current = None
            in_global = kw == "global"
            if kw == "defaults":
                defaults = _Defaults()
                current = defaults
            continue
        if in_global and kw == "tune.bufsize" and len(words) > 1:
            if not words[1].isdigit() or int(words[1]) < 1024:
                err(f"'tune.bufsize' expects a positive integer argument, got '{words[1]}'",
                    line.lineno)
            else:
                bufsize = int(words[1])
        if current is None:
            continue
        _proxy_line(current, words, line.lineno, err, base)

    return _finish(proxies, filename, errors, bufsize)


def _proxy_line(p: _Proxy | _Defaults, words: list[str], lineno: int, err: _Err,
                base: str) -> None:
    kw = words[0]
    arg = words[1] if len(words) > 1 else ""
    if kw == "mode":
        p.mode = arg
    elif kw == "balance":
        if arg not in BALANCE_ALGORITHMS and not arg.startswith(("uri", "url_param", "hdr", "rdp")):
            err(f"'balance' : unknown balance algorithm '{arg}'", lineno)
        p.balance = arg
    elif kw == "timeout" and arg in ("connect", "server") and len(words) > 2:
        parsed = parse_time_ms(words[2], f"timeout {arg}")
        if parsed.error:
            err(parsed.error, lineno)
        else:
            setattr(p, f"timeout_{arg}", (parsed.ms or 0) / 1000.0 or None)
    elif kw == "default-server":
        p.server_defaults.update(_server_options(words[1:], lineno, err, {}))
    elif isinstance(p, _Defaults):
        p.settings.append(RuleLine(tuple(words), lineno))
    elif kw == "option" and arg == "spop-check":
        p.spop_check = True
    elif kw == "server":
        if len(words) < 3:
            err("'server' expects <name> and <addr>[:<port>] as arguments.", lineno)
            return
        opts = _server_options(words[3:], lineno, err, p.server_defaults)
        try:
            p.servers.append(Server(words[2], name=words[1], **opts))
        except ConfigError as exc:
            err(exc.message, lineno)
    elif kw == "filter" and arg == "spoe":
        _filter_line(p, words, lineno, err, base)
    elif kw in _RULE_KEYWORDS:
        p.rules.append(RuleLine(tuple(words), lineno))
    elif kw == "acl":
        p.acls.append(RuleLine(tuple(words), lineno))
    else:
        p.settings.append(RuleLine(tuple(words), lineno))


def _server_options(words: list[str], lineno: int, err: _Err,
                    inherited: Mapping[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = dict(inherited)
    i = 0
    while i < len(words):
        w = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if w in ("check", "disabled"):
            opts[w] = True
        elif w in ("no-check", "enabled"):
            opts["check" if w == "no-check" else "disabled"] = False
        elif w == "inter":
            parsed = parse_time_ms(value, "inter")
            if parsed.error or not parsed.ms:
                err(f"'inter' : invalid value '{value}'", lineno)
            else:
                opts["inter"] = parsed.ms / 1000.0
            i += 1
        elif w in ("rise", "fall", "weight", "maxconn"):
            if not value.isdigit():
                err(f"'{w}' expects an integer argument, got '{value}'", lineno)
            else:
                opts[w] = int(value)
            i += 1
        elif w in _SERVER_VALUE_KWS:
            i += 1
        i += 1
    return opts


def _filter_line(p: _Proxy, words: list[str], lineno: int, err: _Err, base: str) -> None:
    engine = config = None
    pos = 2
    while pos < len(words):
        if words[pos] in ("engine", "config"):
            if pos + 1 >= len(words) or not words[pos + 1]:
                err(f"'spoe' : '{words[pos]}' option without value", lineno)
                return
            if words[pos] == "engine":
                engine = words[pos + 1]
            else:
                config = words[pos + 1]
            pos += 2
        else:
            err(f"unknown keyword '{words[pos]}'", lineno)
            return
    if config is None:
        err("'spoe' : missing config file", lineno)
        return
    path = config
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(base, config)  # HAProxy uses its cwd; try the cfg's directory too
    p.filters.append(SpoeFilter(p.name, p.kind, engine, config, lineno, path))


def _finish(proxies: list[_Proxy], filename: str, errors: list[ConfigError],
            bufsize: int) -> HaproxyConfig:
    sections: dict[str, ProxySection] = {}
    backends: dict[str, Backend] = {}
    filters: list[SpoeFilter] = []
    for p in proxies:
        backend = None
        if p.kind in ("backend", "listen"):
            try:
                backend = Backend(p.name, tuple(p.servers), p.balance, p.timeout_connect,
                                  p.timeout_server, p.spop_check, p.mode, filename, p.lineno)
            except ConfigError as exc:
                errors.append(exc)
            else:
                backends[p.name] = backend
        sections[p.name] = ProxySection(p.kind, p.name, p.lineno, p.mode, tuple(p.filters),
                                        tuple(p.rules), backend, tuple(p.acls),
                                        tuple(p.settings))
        filters.extend(p.filters)
    if errors:
        raise ConfigError(errors[0].message, errors[0].filename, errors[0].lineno,
                          errors=tuple(errors))
    return HaproxyConfig(filename, sections, backends, tuple(filters), bufsize)


#: one ``acl`` line: its text (``"[acl] <name> <criterion> [flags] [patterns]"``), a haproxy.cfg
#: :class:`RuleLine`, or ``(name, words, lineno)``
AclSource = Union[str, RuleLine, Sequence[Any]]


def build_acl_registry(lines: Iterable[AclSource] | str, *, filename: str | None = None,
                       base_dir: str | None = None,
                       errors: list[ConfigError] | None = None) -> AclRegistry:
    """The named ACLs of ``acl`` lines (several lines of one name are ORed, as in HAProxy):
    the one builder of the WSGI middleware, the TCP proxy and ``spoe-sync check``.

    :param lines: ``acl`` lines (a single string is one line).
    :param errors: collect every bad line's :class:`ConfigError` here and go on (what a
        checker wants); without it the first bad line raises, with all of them in ``.errors``.
    :raises ConfigError: ``acl '<name>' : <problem>``, with the line's file and number.
    """
    registry = AclRegistry()
    found: list[ConfigError] = []
    for line in [lines] if isinstance(lines, str) else lines:
        lineno: int | None = None
        label = ""
        try:
            if isinstance(line, str):
                label = line.strip()
                words = tokenize(line)
                if words[:1] == ["acl"]:
                    words = words[1:]
            elif isinstance(line, RuleLine):
                words, lineno = list(line.words[1:]), line.lineno
            else:  # (name, words, lineno) as the WSGI middleware's callers pass them
                name, rest, lineno = line  # type: ignore[str-unpack,assignment]
                words = [str(name), *rest]
        except LexError as exc:
            found.append(ConfigError(f"acl '{label}' : {exc.message}", filename, lineno))
            continue
        if len(words) < 2:
            found.append(ConfigError(f"acl '{' '.join(words)}' : expects an ACL name and a "
                                     "criterion", filename, lineno))
            continue
        try:
            registry.add(words[0], words[1:], base_dir=base_dir, filename=filename,
                         lineno=lineno)
        except SpoeError as exc:
            found.append(ConfigError(f"acl '{words[0]}' : {exc}", filename, lineno))
    if errors is not None:
        errors.extend(found)
    elif found:
        raise ConfigError(found[0].message, found[0].filename, found[0].lineno,
                          errors=tuple(found))
    return registry
