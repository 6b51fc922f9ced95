"""SPOE for WSGI apps: :class:`SpoeMiddleware` (PEP 3333, gevent.pywsgi and gunicorn -k gevent).

::

    application = SpoeMiddleware(
        app, config="coraza.conf", engine="coraza", backends={"coraza-spoa": ["127.0.0.1:9000"]},
        http_request=["send-spoe-group coraza coraza-req",
                      "deny deny_status 403 if { var(txn.coraza.action) -m str deny }"])
    WSGIServer(listener(("0.0.0.0", 8080)), application, handler_class=SpoeWSGIHandler)

Where HAProxy fires SPOE events, so does the middleware, for each engine in declaration order:
``on-client-session`` on the first request of a client connection, ``on-frontend-tcp-request``,
``on-backend-tcp-request``, ``on-frontend-http-request`` and ``on-backend-http-request`` before
the ``http-request`` rules, ``on-server-session`` just before the app runs, ``on-tcp-response``
and ``on-http-response`` once the app has chosen its status and headers, before the
``http-response`` rules.  ``http-after-response`` rules edit every response, generated ones
included.  Rules run in declaration order (``send-spoe-group`` is one of them).

The client connection is known with :class:`SpoeWSGIHandler` (gevent.pywsgi: pass it as
``handler_class``) and under gunicorn (``gunicorn.socket``): ``sess.*`` variables then last as
long as the connection.  Elsewhere a connection is one request.

The listener must set TCP_NODELAY (:func:`listener` does): gevent.pywsgi writes headers and body
in two sends, and without it Nagle's algorithm waits for the client's delayed ACK on every
keep-alive response (about 1.1k instead of 9k requests/s on a laptop).

The app sees ``environ["spoe_sync.vars"]`` (the transaction's variables, full HAProxy names:
``.get("txn.coraza.action")``, ``sess.*`` and ``proc.*`` included; meant for reading) and
``environ["spoe_sync.results"]`` (the :class:`~spoe_sync.engine.result.ProcessingResult` of each
event and group, in order).  ``deny``, ``return``, ``redirect`` and ``tarpit`` (after
``tarpit_timeout``) answer with HAProxy's responses (its built-in error pages by default);
``silent-drop`` and ``reject`` close the client socket with an RST and no response bytes where
the server exposes it (SpoeWSGIHandler, gunicorn), and end the request with an ``EPIPE`` error
everywhere (servers then close the connection without answering).  ``buffer_body=N`` reads up to
N bytes of the request body first (``option http-buffer-request``): ``req.body`` holds what fits,
truncated beyond N as HAProxy's buffer truncates it, and the app still reads the whole body.
``stats_path="/spoe-stats"`` serves each engine's counters and a per-event/group latency
histogram in Prometheus text format (per process: each gunicorn worker has its own).

Nothing connects at construction or import: engines are built in each process on its first
request (gunicorn ``--preload`` forks after construction), and the library never monkey-patches.
An agent that is down never blocks a request beyond ``timeout processing``: the request goes on
(fail open) and rules can read ``var(txn.<prefix>.error)`` (``option set-on-error``).
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
from loguru import logger

from .config import HaproxyConfig, SpoeConfig, check_backend, load_config, normalize_backends
from .config.haproxy_cfg import load_haproxy_cfg
from .config.lexer import tokenize
from .config.proxy_rules import (
    Allow,
    DelHeader,
    Deny,
    Hook,
    Redirect,
    Reject,
    Return,
    Rule,
    SendSpoeGroup,
    SetHeader,
    SetStatus,
    SetVar,
    SilentDrop,
    Tarpit,
    UnsetVar,
    parse_rules,
    reason_phrase,
)
from .engine.engine import Engine
from .errors import ConfigError, SpoeError
from .rules import AclRegistry, EvalContext, ResponseInfo
from .samples import WSGISamples
from .wsgi_support import (
    BODY_KEY,
    Body,
    HttpResponse,
    SpoeStats,
    SpoeWSGIHandler,
    buffer_request_body,
    buffer_response,
    close_result,
    connection_for,
    delete_request_headers,
    hook_reply,
    listener,
    request_samples,
    section_acls,
    set_request_header,
    silent_drop,
)

__all__ = ["EngineSpec", "SpoeMiddleware", "SpoeWSGIHandler", "listener"]

VARS_KEY = "spoe_sync.vars"
RESULTS_KEY = "spoe_sync.results"
#: Response bytes read for ``res.body`` when ``buffer_response`` is not given (tune.bufsize).
DEFAULT_BUFSIZE = 16384
_REQUEST_EVENTS = ("on-client-session", "on-frontend-tcp-request", "on-backend-tcp-request",
                   "on-frontend-http-request", "on-backend-http-request")
_RESPONSE_EVENTS = ("on-tcp-response", "on-http-response")

StartResponse = Callable[..., Callable[[bytes], Any]]


@dataclass(frozen=True)
class EngineSpec:
    """One ``filter spoe``: a SPOE file (or loaded config), its engine scope, its backends.

    :param options: more keyword arguments for :class:`~spoe_sync.engine.engine.Engine`.
    """

    config: SpoeConfig | str | os.PathLike[str]
    engine: str | None = None
    backends: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)


def _spec(item: Any) -> EngineSpec:
    if isinstance(item, EngineSpec):
        return item
    if isinstance(item, Mapping):
        return EngineSpec(**item)
    if isinstance(item, (tuple, list)):
        return EngineSpec(*item)
    return EngineSpec(item)


class _Runtime:
    """The engines of one process."""

    def __init__(self, specs: Sequence[tuple[EngineSpec, SpoeConfig]]) -> None:
        self.engines = [Engine(cfg, spec.backends, **dict(spec.options)) for spec, cfg in specs]
        self.by_id = {e.config.engine_id: e for e in self.engines}
        self.events = {ev: [e for e in self.engines if ev in e.events]
                       for ev in _REQUEST_EVENTS + _RESPONSE_EVENTS + ("on-server-session",)}
        self.pid = os.getpid()
        self.response_events = any(self.events[ev] for ev in _RESPONSE_EVENTS)


class SpoeMiddleware:
    """WSGI middleware running SPOE engines and HAProxy rules around an app.

    :param app: the WSGI application.
    :param config: a SPOE file path, config text or :class:`~spoe_sync.config.SpoeConfig`
        (one engine; use ``engines`` for several).
    :param engine: the ``[scope]`` of ``config`` to use.
    :param backends: the agents: ``{"backend-name": ["host:port", ...]}`` (see ``Engine``).
    :param engines: several engines: :class:`EngineSpec` objects, dicts of its fields or
        ``(config, engine, backends)`` tuples; engine ids must be unique.
    :param http_request: ``http-request`` rules (text as in haproxy.cfg, without the keyword,
        or callables: ``fn(environ)`` returning ``None`` to go on or ``(status, headers,
        body)`` to answer).
    :param http_response: ``http-response`` rules (callables: ``fn(environ, response)``;
        ``response.status``/``.reason``/``.headers`` may be edited in place).
    :param http_after_response: ``http-after-response`` rules (same callables).
    :param acls: named ACLs: lines ``"<name> <criterion> [flags] [patterns]"`` (several
        lines with one name are ORed, as in HAProxy).
    :param buffer_body: read up to this many bytes of each request body before the events
        and rules (``option http-buffer-request``; without it ``req.body`` is empty).
    :param buffer_response: bytes of the response body to read before ``on-http-response``
        and the response rules (for ``res.body``); by default :data:`DEFAULT_BUFSIZE` when a
        response rule or message uses ``res.body*``, else responses stream untouched.
    :param stats_path: serve the engines' counters in Prometheus text format at this path.
    :param tarpit_timeout: seconds ``tarpit`` holds a request (HAProxy's ``timeout tarpit``).
    :raises ConfigError: a bad SPOE file, rule, ACL or duplicate engine id.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], config: Any = None,
                 engine: str | None = None, backends: Any = None, *,
                 engines: Sequence[Any] | None = None,
                 http_request: Sequence[Any] = (), http_response: Sequence[Any] = (),
                 http_after_response: Sequence[Any] = (), acls: Sequence[str] = (),
                 buffer_body: int | None = None, buffer_response: int | None = None,
                 stats_path: str | None = None, tarpit_timeout: float = 5.0,
                 rules_filename: str | None = None, base_dir: str | None = None) -> None:
        self.app = app
        specs = [_spec(e) for e in engines or ()]
        if config is not None:
            specs.insert(0, EngineSpec(config, engine, backends))
        loaded: list[tuple[EngineSpec, SpoeConfig]] = []
        for spec in specs:
            cfg = spec.config if isinstance(spec.config, SpoeConfig) else load_config(
                spec.config, spec.engine)
            _check_backends(cfg, spec.backends)
            if any(c.engine_id == cfg.engine_id for _, c in loaded):
                raise ConfigError(f"duplicated name for SPOE engine '{cfg.engine_id}'",
                                  cfg.filename)
            loaded.append((spec, cfg))
        self._specs = loaded
        groups = {cfg.engine_id: tuple(cfg.groups) for _, cfg in loaded}
        registry = AclRegistry()
        for line in acls:
            lineno = None
            if isinstance(line, str):
                name, *words = tokenize(line)
            else:  # (name, words, lineno) as read from a haproxy.cfg
                name, words, lineno = line
            try:
                registry.add(name, words, base_dir=base_dir, filename=rules_filename,
                             lineno=lineno)
            except SpoeError as exc:
                raise ConfigError(f"acl '{name}' : {exc}", rules_filename, lineno) from None
        kw = dict(acls=registry, engines=groups, filename=rules_filename, base_dir=base_dir)
        self.http_request = parse_rules(http_request, "http-request", **kw)  # type: ignore[arg-type]
        self.http_response = parse_rules(http_response, "http-response", **kw)  # type: ignore[arg-type]
        self.http_after_response = parse_rules(http_after_response, "http-after-response",
                                               **kw)  # type: ignore[arg-type]
        self.buffer_body = buffer_body
        if buffer_response is None and _uses_res_body(
                [cfg for _, cfg in loaded], self.http_response + self.http_after_response):
            buffer_response = DEFAULT_BUFSIZE  # res.body is used: buffer as HAProxy would
        self.buffer_response = buffer_response
        self.tarpit_timeout = tarpit_timeout
        self.stats_path = stats_path
        self._runtime: _Runtime | None = None
        self.stats = SpoeStats(lambda: self._runtime.engines if self._runtime else [])
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(ref))

    @classmethod
    def from_haproxy_cfg(cls, app: Callable[..., Iterable[bytes]],
                         path: str | os.PathLike[str], frontend: str,
                         **options: Any) -> SpoeMiddleware:
        """The ``filter spoe`` lines, agent backends and ``http-request``/``http-response``/
        ``http-after-response`` rules of one frontend (or listen) section of a haproxy.cfg."""
        cfg = load_haproxy_cfg(path)
        section = cfg.proxies.get(frontend)
        if section is None:
            raise ConfigError(f"no frontend or listen section named '{frontend}'", cfg.filename)
        rules: dict[str, list[Any]] = {"http-request": [], "http-response": [],
                                       "http-after-response": []}
        for line in section.rules:
            if line.words[0] in rules:
                rules[line.words[0]].append(line)
        engines = [EngineSpec(f.path, f.engine, cfg) for f in section.filters]
        options.setdefault("acls", section_acls(cfg.filename, section.name))
        return cls(app, engines=engines, http_request=rules["http-request"],
                   http_response=rules["http-response"],
                   http_after_response=rules["http-after-response"],
                   rules_filename=cfg.filename,
                   base_dir=os.path.dirname(os.path.abspath(cfg.filename)), **options)

    # ------------------------------------------------------------------ lifecycle

    @property
    def engines(self) -> list[Engine]:
        """This process's engines (built on first use)."""
        return self._get_runtime().engines

    def _get_runtime(self) -> _Runtime:
        # os.register_at_fork clears it in a child; no getpid() per request (a syscall)
        rt = self._runtime
        if rt is None:
            rt = self._runtime = _Runtime(self._specs)
        return rt

    def close(self, timeout: float | None = 5.0) -> None:
        """Close this process's engines (drain, HAPROXY-DISCONNECT)."""
        rt, self._runtime = self._runtime, None
        if rt is not None:
            for engine in rt.engines:
                engine.close(timeout)

    # ------------------------------------------------------------------ request

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        if self.stats_path is not None and environ.get("PATH_INFO") == self.stats_path:
            ctype, body = self.stats.render()
            start_response("200 OK", [("Content-Type", ctype),
                                      ("Content-Length", str(len(body)))])
            return [body]
        rt = self._get_runtime()
        tx = _Transaction(self, rt, environ)
        reply = tx.request()
        if reply is not None:
            return tx.send_reply(start_response, *reply)
        return tx.run_app(start_response)


def _exprs_of(obj: Any) -> list[Any]:
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
            out.extend([sub] if hasattr(sub, "fetch") else _exprs_of(sub))
    for _name, fmt in getattr(obj, "headers", ()) or ():
        out.extend(_exprs_of(fmt))
    for arg in getattr(obj, "args", ()) or ():
        out.extend(_exprs_of(arg))
    return out


def _uses_res_body(configs: Sequence[SpoeConfig], rules: Sequence[Rule]) -> bool:
    exprs: list[Any] = []
    for rule in rules:
        exprs += _exprs_of(rule.action) + _exprs_of(rule.condition)
    for cfg in configs:
        for event in _RESPONSE_EVENTS:
            for message in cfg.events.get(event, ()):
                exprs += _exprs_of(message)
        for group in cfg.groups:
            for message in cfg.group_messages(group):
                exprs += _exprs_of(message)
    return any(str(getattr(e, "fetch", "")).startswith("res.body") for e in exprs)


def _check_backends(cfg: SpoeConfig, backends: Any) -> None:
    """The agent's backend is known (what Engine checks, without building one)."""
    if isinstance(backends, HaproxyConfig):
        backends = backends.backends
    try:
        check_backend(cfg, normalize_backends(backends or {}))
    except TypeError as exc:
        raise ConfigError(str(exc), cfg.filename) from None


def _forget(ref: weakref.ref[SpoeMiddleware]) -> None:
    mw = ref()
    if mw is not None:
        mw._runtime = None  # the parent's agent connections are not ours to use or close


class _Transaction:
    """One request through the engines and rules."""

    def __init__(self, mw: SpoeMiddleware, rt: _Runtime, environ: dict[str, Any]) -> None:
        self.mw, self.rt, self.environ = mw, rt, environ
        conn = connection_for(environ)
        self.first = not conn.started
        conn.started = True
        if conn.session is None and rt.engines:
            conn.session = rt.engines[0].new_session()
        self.session = conn.session
        if mw.buffer_body is not None and BODY_KEY not in environ:
            buffer_request_body(environ, mw.buffer_body)
        self.samples = request_samples(environ, conn)
        self.streams: dict[str, Any] = {}
        self.vars: Any = None
        self.results: list[Any] = []
        environ[RESULTS_KEY] = self.results
        if rt.engines:
            first = rt.engines[0].new_stream(self.samples, self.session)
            self.vars = first.vars
            self.streams[rt.engines[0].config.engine_id] = first
        else:
            from .engine.vars import Vars
            self.vars = Vars()
        environ[VARS_KEY] = self.vars
        self.ctx = EvalContext(self.samples, self.vars)

    def _stream(self, engine: Engine) -> Any:
        stream = self.streams.get(engine.config.engine_id)
        if stream is None:
            # every engine of the transaction shares its variables, as HAProxy's filters do
            stream = engine.new_stream(self.samples, self.session)
            stream.vars = self.vars
            stream.samples = self.samples
            self.streams[engine.config.engine_id] = stream
        return stream

    def _set_samples(self, samples: WSGISamples) -> None:
        self.samples = samples
        self.ctx = EvalContext(samples, self.vars)
        for stream in self.streams.values():
            stream.samples = samples

    def _process(self, engine: Engine, kind: str, name: str) -> None:
        stream = self._stream(engine)
        start = time.monotonic()
        try:
            if kind == "event":
                result = engine.process_event(stream, name)
            else:
                result = engine.send_group(stream, name)
        except SpoeError as exc:  # EngineClosed while shutting down: fail open
            logger.warning(f"SPOE: [{engine.name}] {kind} {name}: {exc}")
            return
        self.results.append(result)
        if not result.skipped and self.mw.stats_path is not None:  # nobody reads it otherwise
            self.mw.stats.observe(engine.config.engine_id, kind, name, int(result.status),
                                  time.monotonic() - start)

    def _events(self, names: Iterable[str]) -> None:
        for event in names:
            if event == "on-client-session" and not self.first:
                continue
            for engine in self.rt.events[event]:
                self._process(engine, "event", event)

    # -- rules

    def request(self) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
        """Events and ``http-request`` rules; a reply when a rule answered."""
        self._events(_REQUEST_EVENTS)
        env = self.environ
        for rule in self.mw.http_request:
            if not rule.applies(self.ctx):
                continue
            action = rule.action
            if isinstance(action, SendSpoeGroup):
                self._process(self.rt.by_id[action.engine], "group", action.group)
            elif isinstance(action, (SetVar, UnsetVar)):
                self._var(action)
            elif isinstance(action, SetHeader):
                set_request_header(env, action.name, action.value.render(self.ctx), action.add)
                self._set_samples(WSGISamples(env))
            elif isinstance(action, DelHeader):
                delete_request_headers(env, action.matches)
                self._set_samples(WSGISamples(env))
            elif isinstance(action, (Deny, Return)):
                return action.reply.render(self.ctx)
            elif isinstance(action, Tarpit):
                gevent.sleep(self.mw.tarpit_timeout)
                return action.reply.render(self.ctx)
            elif isinstance(action, Redirect):
                reply = self._redirect(action)
                if reply is not None:
                    return reply
            elif isinstance(action, (SilentDrop, Reject)):
                raise silent_drop(env)
            elif isinstance(action, Allow):
                break
            elif isinstance(action, Hook):
                out = action.fn(env)
                if out is not None:
                    return hook_reply(out)
        return None

    def _var(self, action: SetVar | UnsetVar) -> None:
        try:
            action.apply(self.ctx, self.vars)
        except SpoeError as exc:
            logger.debug(f"SPOE: {action} refused: {exc}")

    def _redirect(self, action: Redirect) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
        request = self.samples.request
        target = request.target if request is not None else "/"
        location = action.location(self.ctx, target, self.environ.get("HTTP_HOST"))
        if location is None:
            return None
        return action.code, reason_phrase(action.code), action.headers(location), b""

    def _response_rules(self, rules: Sequence[Rule], resp: HttpResponse,
                        final: bool) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
        for rule in rules:
            if not rule.applies(self.ctx):
                continue
            action = rule.action
            if isinstance(action, SendSpoeGroup):
                self._process(self.rt.by_id[action.engine], "group", action.group)
            elif isinstance(action, (SetVar, UnsetVar)):
                self._var(action)
            elif isinstance(action, SetHeader):
                value = action.value.render(self.ctx)
                if not action.add:
                    resp.headers[:] = [h for h in resp.headers if h[0].lower() !=
                                       action.name.lower()]
                resp.headers.append((action.name, value))
                self._response_samples(resp)
            elif isinstance(action, DelHeader):
                resp.headers[:] = [h for h in resp.headers if not action.matches(h[0])]
                self._response_samples(resp)
            elif isinstance(action, SetStatus):
                resp.status = action.status
                resp.reason = action.reason or reason_phrase(action.status)
                self._response_samples(resp)
            elif isinstance(action, (Deny, Return)) and not final:
                return action.reply.render(self.ctx)
            elif isinstance(action, Redirect) and not final:
                reply = self._redirect(action)
                if reply is not None:
                    return reply
            elif isinstance(action, (SilentDrop, Reject)):
                raise silent_drop(self.environ)
            elif isinstance(action, Allow):
                break
            elif isinstance(action, Hook):
                out = action.fn(self.environ, resp)
                if out is not None and not final:
                    return hook_reply(out)
        return None

    def _response_samples(self, resp: HttpResponse, body: bytes | None = None) -> None:
        info = ResponseInfo(resp.status, tuple(resp.headers), body,  # type: ignore[arg-type]
                            reason=resp.reason,
                            version=str(self.environ.get("SERVER_PROTOCOL", "HTTP/1.1")))
        self._set_samples(self.samples.with_response(info))

    # -- responses

    def send_reply(self, start_response: StartResponse, status: int, reason: str,
                   headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
        """A response made by a rule: ``http-after-response`` rules, then out."""
        resp = HttpResponse(status, reason, [*list(headers), ("content-length", str(len(body)))])
        self._response_samples(resp)
        self._response_rules(self.mw.http_after_response, resp, final=True)
        start_response(resp.status_line, resp.headers)
        return [body]

    def run_app(self, start_response: StartResponse) -> Iterable[bytes]:
        self._events(("on-server-session",))
        mw = self.mw
        if not (self.rt.response_events or mw.http_response or mw.http_after_response
                or mw.buffer_response is not None):
            return mw.app(self.environ, start_response)  # nothing to do on the response
        captured: list[Any] = []
        pending: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]],
                    exc_info: Any = None) -> Callable[[bytes], Any]:
            if captured and exc_info is None:
                raise AssertionError("start_response called twice without exc_info")
            captured[:] = [status, list(headers), exc_info]
            return pending.append

        result = self.mw.app(self.environ, capture)
        chunks = iter(result)
        head: list[bytes] = []
        try:
            while not captured:  # the app calls start_response lazily (generators)
                head.append(next(chunks))
        except StopIteration:
            pass
        except BaseException:
            close_result(result)
            raise
        if not captured:
            close_result(result)
            raise AssertionError("the WSGI application did not call start_response")
        status_text, headers, exc_info = captured
        code, _, reason = str(status_text).partition(" ")
        resp = HttpResponse(int(code), reason, headers)
        body: bytes | None = None
        limit = self.mw.buffer_response
        if limit is not None:
            head, body, chunks = buffer_response(pending + head, chunks, limit)
            pending = []
        self._response_samples(resp, body)
        self._events(_RESPONSE_EVENTS)
        reply = self._response_rules(self.mw.http_response, resp, final=False)
        if reply is not None:
            close_result(result)
            return self.send_reply(start_response, *reply)
        self._response_rules(self.mw.http_after_response, resp, final=True)
        write = start_response(resp.status_line, resp.headers, exc_info)
        for data in pending:
            write(data)
        return Body(head, chunks, result)
