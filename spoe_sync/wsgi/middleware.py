"""The WSGI middleware itself: :class:`SpoeMiddleware` (see :mod:`spoe_sync.wsgi`)."""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import HaproxyConfig, SpoeConfig, check_backend, load_config, normalize_backends
from ..config.haproxy_cfg import build_acl_registry, load_haproxy_cfg
from ..config.rule_lines import WaitForBody, parse_rules
from ..config.rule_lines.actions import rule_plan, uses_fetch
from ..engine.engine import Engine
from ..engine.transaction import Transaction
from ..errors import ConfigError, ExpressionError, SpoeConfigWarning
from ..rules.logformat import LogFormat, parse_logformat
from ..rules.sources import response_info
from ..rules.wsgisource import UNIQUE_ID_KEY
from .body import BODY_KEY, Body, buffer_request_body, buffer_response, close_result
from .fromcfg import section_options
from .handler import SpoeWSGIHandler, connection_for, listener
from .headers import HttpResponse, set_request_header
from .hubcheck import check_same_hub, current_hub
from .lifecycle import track
from .request_samples import MiddlewareSamples, new_samples
from .rule_runner import RuleRunner, labelled_plan
from .stats import SpoeStats

__all__ = ["EngineSpec", "SpoeMiddleware", "SpoeWSGIHandler", "listener"]

VARS_KEY = "spoe_sync.vars"
RESULTS_KEY = "spoe_sync.results"
#: Response bytes read for ``res.body`` when ``buffer_response`` is not given (tune.bufsize).
DEFAULT_BUFSIZE = 16384
_REQUEST_EVENTS = ("on-client-session", "on-frontend-tcp-request", "on-backend-tcp-request",
                   "on-frontend-http-request", "on-backend-http-request")
_RESPONSE_EVENTS = ("on-tcp-response", "on-http-response")
_ALL_EVENTS = (*_REQUEST_EVENTS, "on-server-session", *_RESPONSE_EVENTS)

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
        self.hub: Any = None
        self.response_events = any(self.events[ev] for ev in _RESPONSE_EVENTS)
        #: (engine, event) in firing order, HAProxy's: event by event, engines in order
        self.request_plan = tuple((e, ev) for ev in _REQUEST_EVENTS for e in self.events[ev])
        self.response_plan = tuple((e, ev) for ev in _RESPONSE_EVENTS for e in self.events[ev])
        self.server_plan = tuple((e, "on-server-session")
                                 for e in self.events["on-server-session"])


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
    :param stats_path: serve the engines' counters in Prometheus text format at this path
        (starting with ``/``), in place of the app: the request events and rules run first,
        so ``http-request deny if { path /spoe-stats } !{ src 10.0.0.0/8 }`` protects it.
    :param tarpit_timeout: seconds ``tarpit`` holds a request (HAProxy's ``timeout tarpit``).
    :param unique_id_format: a log-format for each request's ``unique-id`` (HAProxy's
        ``unique-id-format``, e.g. ``"%{+X}o %ci:%cp_%fi:%fp_%Ts_%rt:%pid"`` or
        ``"%[uuid()]"``); without it ``unique-id`` is NULL, as in HAProxy.
    :param unique_id_header: also give the app the unique id in this request header
        (HAProxy's ``unique-id-header``).
    :raises ConfigError: a bad SPOE file, rule, ACL, option or duplicate engine id.
    :warns SpoeConfigWarning: a message or rule reads ``req.body*`` without ``buffer_body``.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], config: Any = None,
                 engine: str | None = None, backends: Any = None, *,
                 engines: Sequence[Any] | None = None,
                 http_request: Sequence[Any] = (), http_response: Sequence[Any] = (),
                 http_after_response: Sequence[Any] = (), acls: Sequence[str] = (),
                 buffer_body: int | None = None, buffer_response: int | None = None,
                 stats_path: str | None = None, tarpit_timeout: float = 5.0,
                 unique_id_format: str | None = None, unique_id_header: str | None = None,
                 rules_filename: str | None = None, base_dir: str | None = None) -> None:
        self.app = app
        if stats_path is not None and (not isinstance(stats_path, str)
                                       or not stats_path.startswith("/")):
            # PATH_INFO always starts with "/": any other path could never match
            raise ConfigError(f"stats_path must be a path starting with '/', not {stats_path!r}")
        if buffer_body is not None and (isinstance(buffer_body, bool) or not isinstance(
                buffer_body, int) or buffer_body < 0):
            raise ConfigError(f"buffer_body must be a number of bytes >= 0 or None, not "
                              f"{buffer_body!r}")
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
        registry = build_acl_registry(acls, filename=rules_filename, base_dir=base_dir)
        kw = dict(acls=registry, engines=groups, filename=rules_filename, base_dir=base_dir)
        self.http_request = parse_rules(_rule_lines(http_request, "http-request"),
                                        "http-request", **kw)  # type: ignore[arg-type]
        self.http_response = parse_rules(_rule_lines(http_response, "http-response"),
                                         "http-response", **kw)  # type: ignore[arg-type]
        self.http_after_response = parse_rules(
            _rule_lines(http_after_response, "http-after-response"), "http-after-response",
            **kw)  # type: ignore[arg-type]
        self.buffer_body = buffer_body
        configs = [cfg for _, cfg in loaded]
        waits = [r.action for r in self.http_response if isinstance(r.action, WaitForBody)]
        if buffer_response is None and (waits or uses_fetch(
                configs, _RESPONSE_EVENTS, self.http_response + self.http_after_response,
                "res.body")):
            buffer_response = DEFAULT_BUFSIZE  # res.body is used: buffer as HAProxy would
        if buffer_body is None and not any(
                isinstance(r.action, WaitForBody) for r in self.http_request) and uses_fetch(
                configs, _ALL_EVENTS, self.http_request + self.http_response
                + self.http_after_response, "req.body", sent_groups_only=True):
            warnings.warn(SpoeConfigWarning(
                "a SPOE message or rule reads req.body but buffer_body is not set: it will "
                "always be empty (HAProxy: option http-buffer-request)"), stacklevel=2)
        self.unique_id_format = _unique_id_format(unique_id_format)
        self.unique_id_header = unique_id_header
        self._request_plan = labelled_plan(rule_plan(self.http_request), self.http_request,
                                           "http_request")
        self._response_plan = labelled_plan(rule_plan(self.http_response), self.http_response,
                                            "http_response")
        self._after_plan = labelled_plan(rule_plan(self.http_after_response),
                                         self.http_after_response, "http_after_response")
        self.buffer_response = buffer_response
        self.tarpit_timeout = tarpit_timeout
        self.stats_path = stats_path
        self._runtime: _Runtime | None = None
        self.stats = SpoeStats(lambda: self._runtime.engines if self._runtime else [])
        self._observer = self._observe if stats_path is not None else None
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(ref))
        track(self)  # closed at process exit: agents see HAPROXY-DISCONNECT

    @classmethod
    def from_haproxy_cfg(cls, app: Callable[..., Iterable[bytes]],
                         path: str | os.PathLike[str], frontend: str,
                         **options: Any) -> SpoeMiddleware:
        """The ``filter spoe`` lines, agent backends, ``http-request``/``http-response``/
        ``http-after-response`` rules, ``acl`` lines, ``option http-buffer-request``
        (``buffer_body`` = ``tune.bufsize``) and ``unique-id-format``/``unique-id-header`` of
        one frontend (or listen) section of a haproxy.cfg (or its ``defaults``); ``options``
        override them.

        :warns SpoeConfigWarning: for each setting of the section that changes what agents
            see and that the middleware does not honour (``tcp-request`` rules, ``option
            forwardfor``, ``errorfile``, ...).
        """
        cfg = load_haproxy_cfg(path)
        section = cfg.proxies.get(frontend)
        if section is None or section.kind == "backend":
            raise ConfigError(f"no frontend or listen section named '{frontend}'", cfg.filename)
        engines = [EngineSpec(f.path, f.engine, cfg) for f in section.filters]
        found = section_options(cfg, section)
        found.update(options)
        return cls(app, engines=engines, rules_filename=cfg.filename,
                   base_dir=os.path.dirname(os.path.abspath(cfg.filename)), **found)

    # ------------------------------------------------------------------ lifecycle

    @property
    def engines(self) -> list[Engine]:
        """This process's engines (built on first use)."""
        rt = self._runtime  # reading them (metrics) from another thread is fine
        return rt.engines if rt is not None else self._get_runtime().engines

    def _get_runtime(self) -> _Runtime:
        # os.register_at_fork clears it in a child; no getpid() per request (a syscall)
        rt = self._runtime
        if rt is None:
            hub = current_hub()  # refuses a plain thread of a threaded server
            rt = self._runtime = _Runtime(self._specs)
            rt.hub = hub
        else:
            check_same_hub(rt.hub)  # one thread-local lookup
        return rt

    def close(self, timeout: float | None = 5.0) -> None:
        """Close this process's engines (drain, HAPROXY-DISCONNECT)."""
        rt, self._runtime = self._runtime, None
        if rt is not None:
            for engine in rt.engines:
                engine.close(timeout)

    # ------------------------------------------------------------------ request

    def _observe(self, engine: Engine, kind: str, name: str, result: Any,
                 seconds: float) -> None:
        self.stats.observe(engine.config.engine_id, kind, name, int(result.status), seconds)

    def _stats_app(self, environ: dict[str, Any],
                   start_response: StartResponse) -> Iterable[bytes]:
        """The stats endpoint, run where the app would run: after the request events and
        rules, so that ``http-request deny if { path /spoe-stats } ...`` protects it."""
        ctype, body = self.stats.render()
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        rt = self._get_runtime()
        tx = _Transaction(self, rt, environ)
        # the request events, then the http-request rules (no rule: no reply)
        tx.spoe.events(rt.request_plan)
        plan = self._request_plan
        reply = tx._rules(plan, None, False) if plan else None
        if reply is not None:
            return tx.send_reply(start_response, *reply)
        return tx.run_app(start_response)


_RULE_KEYWORDS = ("http-request", "http-response", "http-after-response", "tcp-request",
                  "tcp-response")


def _rule_lines(lines: Any, ruleset: str) -> list[Any]:
    """The rules given for ``ruleset``: a single string is one rule (iterating it would make
    one rule per character), and a text line must not repeat a rule-set keyword."""
    items = [lines] if isinstance(lines, str) else list(lines)
    param = ruleset.replace("-", "_")
    for i, line in enumerate(items):
        if not isinstance(line, str):
            continue
        first, _, rest = line.strip().partition(" ")
        if first in _RULE_KEYWORDS:
            where = "" if first == ruleset else f" (and it belongs in {first.replace('-', '_')})"
            raise ConfigError(f"{param}[{i}] '{line.strip()}': drop the leading '{first}' "
                              f"keyword{where}: {param} rules are written without it, as in "
                              f"{param}=[\"{rest.strip()}\"]")
    return items


def _unique_id_format(text: str | None) -> LogFormat | None:
    if text is None:
        return None
    try:
        return parse_logformat(text, point="http-request")
    except ExpressionError as exc:
        raise ConfigError(f"unique-id-format '{text}' : {exc.message}") from None


def _check_backends(cfg: SpoeConfig, backends: Any) -> None:
    """The agent's backend is known (what Engine checks, without building one)."""
    if isinstance(backends, HaproxyConfig):
        backends = backends.backends
    try:
        check_backend(cfg, normalize_backends(backends or {}))
    except TypeError as exc:
        raise ConfigError(str(exc), cfg.filename) from None
    except ConfigError as exc:
        if not exc.message.startswith("unknown backend") or isinstance(backends, HaproxyConfig):
            raise
        raise ConfigError(f"{exc.message} (pass it as backends={{'{cfg.agent.use_backend}': "
                          f"['host:port']}})", exc.filename, exc.lineno) from None


def _forget(ref: weakref.ref[SpoeMiddleware]) -> None:
    mw = ref()
    if mw is not None:
        mw._runtime = None  # the parent's agent connections are not ours to use or close


class _Transaction(RuleRunner):
    """One request through the engines (a :class:`~spoe_sync.engine.transaction.Transaction`)
    and the rules."""

    __slots__ = ("ctx", "environ", "mw", "rt", "samples", "spoe", "vars")
    mw: SpoeMiddleware
    rt: _Runtime

    def __init__(self, mw: SpoeMiddleware, rt: _Runtime, environ: dict[str, Any]) -> None:
        self.mw, self.rt, self.environ = mw, rt, environ
        conn = connection_for(environ)
        session = conn.session
        if session is None and rt.engines:
            session = conn.session = rt.engines[0].new_session()
        if mw.buffer_body is not None and BODY_KEY not in environ:
            buffer_request_body(environ, mw.buffer_body)
        self.samples = samples = new_samples(environ)
        self.spoe = spoe = Transaction(rt.engines, samples, session, observer=mw._observer)
        environ[RESULTS_KEY] = spoe.results
        self.vars = environ[VARS_KEY] = spoe.vars
        self.ctx = spoe.ctx
        if mw.unique_id_format is not None:
            self._unique_id(mw.unique_id_format)

    def _unique_id(self, fmt: LogFormat) -> None:
        # generated once per stream, before the first event (HAProxy: at the first use)
        uid = fmt.render(self.ctx)
        env = self.environ
        env[UNIQUE_ID_KEY] = self.samples.unique_id = uid
        if self.mw.unique_id_header:
            set_request_header(env, self.mw.unique_id_header, uid)
            self._set_samples(MiddlewareSamples(env))

    def _set_samples(self, samples: MiddlewareSamples) -> None:
        uid = self.environ.get(UNIQUE_ID_KEY)
        if uid is not None:
            samples.unique_id = uid
        self.samples = samples
        self.spoe.set_samples(samples)
        self.ctx = self.spoe.ctx

    # -- rules

    def _response_samples(self, resp: HttpResponse, body: bytes | None = None) -> None:
        info = response_info(resp.status, tuple(resp.headers), body, reason=resp.reason,
                             version="HTTP/1.1")
        # res.ver is the server's version, not the client's: HAProxy speaks HTTP/1.1 to
        # servers, and the app is the server here (an HTTP/1.0 client still gets 1.1)
        self._set_samples(self.samples.with_response(info))

    # -- responses

    def send_reply(self, start_response: StartResponse, status: int, reason: str,
                   headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
        """A response made by a rule: ``http-after-response`` rules, then out."""
        headers = list(headers)
        if status >= 200 and status not in (204, 304):  # HAProxy sends none on those
            headers.append(("content-length", str(len(body))))
        resp = HttpResponse(status, reason, headers)
        if self.mw._after_plan:
            self._response_samples(resp)
            self._rules(self.mw._after_plan, resp, final=True)
        start_response(resp.status_line, resp.headers)
        return [body]

    def run_app(self, start_response: StartResponse) -> Iterable[bytes]:
        rt, mw = self.rt, self.mw
        app = mw.app
        if mw.stats_path is not None and self.environ.get("PATH_INFO") == mw.stats_path:
            app = mw._stats_app
        if rt.server_plan:
            self.spoe.events(rt.server_plan)
        if not (rt.response_events or mw._response_plan or mw._after_plan
                or mw.buffer_response is not None):
            return app(self.environ, start_response)  # nothing to do on the response
        self.samples.settle()  # the response's fetches see the request the app was given
        captured: list[Any] = []
        pending: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]],
                    exc_info: Any = None) -> Callable[[bytes], Any]:
            if captured and exc_info is None:
                raise AssertionError("start_response called twice without exc_info")
            captured[:] = [status, list(headers), exc_info]
            return pending.append

        result = app(self.environ, capture)
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
        limit = mw.buffer_response
        if limit is not None:
            head, body, chunks = buffer_response(pending + head, chunks, limit)
            pending = []
        self._response_samples(resp, body)
        self.spoe.events(rt.response_plan)
        if mw._response_plan:  # (no rule: no reply)
            reply = self._rules(mw._response_plan, resp, final=False)
            if reply is not None:
                close_result(result)
                return self.send_reply(start_response, *reply)
        if mw._after_plan:
            self._rules(mw._after_plan, resp, final=True)
        write = start_response(resp.status_line, resp.headers, exc_info)
        for data in pending:
            write(data)
        return Body(head, chunks, result)
