"""SPOE logging: the per-processing log line and the library's own log.

The line is SPOE.txt §4's, exactly as HAProxy 2.6 prints it
(docs/explanation/haproxy-behaviour.md §6)::

    SPOE: [<agent>] <EVENT:<name>> sid=<sid> st=<status> <reqT>/<qT>/<wT>/<resT>/<pT> <idles>/<applets> <nb_sending>/<nb_waiting> <nb_errors>/<nb_processed>

``GROUP:<name>`` for groups.  It is emitted at *notice* when ``st=0`` and at
*warning* otherwise, only for a processing that ran to an end (``pT != -1``),
not at all for ``st=0`` under ``option dontlog-normal``, and only to the
agent's ``log`` destinations: no ``log`` line, no SPOE log, as in HAProxy.
``log global`` means the application's loguru sinks.

In the engine, loguru is used here and nowhere else: every engine record is
emitted from this module, so it carries a ``spoe_sync...`` name.  (The adapters,
``spoe_sync.wsgi``, ``spoe_sync.proxy`` and ``spoe_sync.demo``, log through
loguru themselves; the agent side, ``spoe_sync.agent``, through the standard
``logging`` module.)  The library's loguru records are disabled
(``logger.disable("spoe_sync")``) until the application calls
``logger.enable("spoe_sync")``.  loguru has no *notice* level: notice lines go
out at ``INFO``.  Records carry ``extra`` keys ``spoe_agent``, ``spoe_kind``,
``spoe_name`` and ``spoe_status`` for filtering.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger as _logger

from .syslog import NOTICE, WARNING, LogSink, make_sink

__all__ = [
    "LOGGER_NAME",
    "LogCounters",
    "ServerNotices",
    "SpoeLog",
    "debug",
    "format_spoe_line",
]

#: The name the application enables: ``logger.enable("spoe_sync")``.
LOGGER_NAME = "spoe_sync"



def _configured_by_application(name: str) -> bool:
    """The application already called ``logger.enable``/``disable`` for ``name`` (or a
    parent of it) before importing spoe_sync: its choice must stand."""
    # loguru keeps those calls as (prefix + ".", enabled) pairs; a private attribute, so a
    # loguru without it falls back to the library default (off)
    pairs = getattr(getattr(_logger, "_core", None), "activation_list", None) or ()
    return any((name + ".").startswith(prefix) for prefix, _ in pairs)


if not _configured_by_application(LOGGER_NAME):
    _logger.disable(LOGGER_NAME)

# syslog severity -> loguru level name (loguru has no notice, emerg, alert, crit)
_LOGURU_LEVELS = ("CRITICAL", "CRITICAL", "CRITICAL", "ERROR", "WARNING", "INFO", "INFO", "DEBUG")


def debug(message: str) -> None:
    """A library debug record (dropped names, protocol detail)."""
    _logger.debug(message)


def internal_error(where: str, exc: BaseException) -> None:
    """A bug caught before it could hang a stream: an error record with the
    traceback (the stream itself only sees a status)."""
    _logger.opt(exception=exc).error(f"spoe_sync internal error in {where}: {exc!r}")


#: Seconds during which a server's next outage is not reported again (it is
#: counted, and the next report says how many there were).
NOTICE_INTERVAL = 10.0


class ServerNotices:
    """Warn once when an agent server becomes unreachable, once when it
    recovers: the library's own records (logger ``spoe_sync``, level WARNING,
    ``extra`` keys ``spoe_agent`` and ``spoe_server``), whatever the agent's
    SPOE ``log`` lines say.  Without them an unreachable agent was silent, every
    event failing with a status nobody read.

    A server that flaps is not reported at every change: an outage that begins
    less than ``interval`` seconds after the last reported one is only
    counted (its recovery too), and the next report says how many were.
    """

    def __init__(self, agent: str, interval: float = NOTICE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.agent = agent
        self.interval = interval
        self._clock = clock
        self._reported_at: dict[str, float] = {}
        self._down: set[str] = set()
        self._unreported: dict[str, int] = {}
        #: the last change heard of, per server (a repeat is no change)
        self._last: dict[str, str] = {}

    def report(self, kind: str, server: str, address: str, reason: str) -> bool:
        """``kind`` is ``"unreachable"`` or ``"recovered"``; True when a record went out."""
        if self._last.get(server, "recovered") == kind:
            return False
        self._last[server] = kind
        if kind == "recovered":
            if server not in self._down:
                return False  # its outage was not reported (or was already over)
            self._down.discard(server)
            self._emit(server, f"SPOE agent '{self.agent}': server {server} ({address}) "
                               "answers again")
            return True
        now = self._clock()
        last = self._reported_at.get(server)
        if last is not None and now - last < self.interval:
            self._unreported[server] = self._unreported.get(server, 0) + 1
            return False
        self._reported_at[server] = now
        self._down.add(server)
        more = self._unreported.pop(server, 0)
        again = f" ({more} more outage{'s' if more > 1 else ''} since the last report)" \
            if more else ""
        self._emit(server, f"SPOE agent '{self.agent}': server {server} ({address}) is "
                           f"unreachable: {reason}; its frames fail at once while it backs "
                           f"off{again}")
        return True

    def _emit(self, server: str, message: str) -> None:
        _logger.bind(spoe_agent=self.agent, spoe_server=server).warning(message)


class _PoolCounters(Protocol):
    """The pool's share of the agent counters (docs/explanation/haproxy-behaviour.md §3.5)."""

    @property
    def idles(self) -> int: ...
    @property
    def applets(self) -> int: ...
    @property
    def nb_sending(self) -> int: ...
    @property
    def nb_waiting(self) -> int: ...


class _Timings(Protocol):
    """What the log line reads of :class:`~spoe_sync.engine.result.Timings`
    (described here, not imported: result.py imports this module's users)."""

    @property
    def process(self) -> int: ...


class _Result(Protocol):
    """What the log line reads of :class:`~spoe_sync.engine.result.ProcessingResult`."""

    @property
    def status(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def skipped(self) -> bool: ...
    @property
    def timings(self) -> _Timings: ...


class _Counters(_PoolCounters, Protocol):
    """The agent counters of docs/explanation/haproxy-behaviour.md §3.5, by HAProxy's names."""

    @property
    def nb_errors(self) -> int: ...
    @property
    def nb_processed(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LogCounters:
    """The counters a log line shows, read after the processing ended
    (``nb_processed`` already counts it)."""

    idles: int = 0
    applets: int = 0
    nb_sending: int = 0
    nb_waiting: int = 0
    nb_errors: int = 0
    nb_processed: int = 0

    @classmethod
    def from_pool(cls, pool: _PoolCounters, *, nb_errors: int, nb_processed: int) -> LogCounters:
        """From the pool's metrics (:class:`~spoe_sync.engine.PoolMetrics`) and the
        engine's processing counters."""
        return cls(pool.idles, pool.applets, pool.nb_sending, pool.nb_waiting, nb_errors,
                   nb_processed)


def format_spoe_line(agent: str, kind: str, name: str, sid: int, status: int,
                     timings: _Timings | str, counters: _Counters) -> str:
    """The SPOE log line (SPOE.txt §4), without a syslog header."""
    return (f"SPOE: [{agent}] <{kind.upper()}:{name}> sid={sid} st={int(status)} {timings} "
            f"{counters.idles}/{counters.applets} {counters.nb_sending}/{counters.nb_waiting} "
            f"{counters.nb_errors}/{counters.nb_processed}")


class _AgentLogOptions(Protocol):
    name: str
    logs: Sequence[Any]
    log_global: bool
    dontlog_normal: bool


class SpoeLog:
    """The SPOE log of one agent: its ``log`` destinations and options.

    :param agent: the agent name shown in ``[...]``.
    :param targets: the agent's ``log`` lines (:class:`spoe_sync.config.LogTarget`)
        or ready :class:`~spoe_sync.engine.syslog.LogSink` objects.
    :param log_global: ``log global``: also log through loguru.
    :param dontlog_normal: ``option dontlog-normal``.
    :param tag: the syslog TAG / APP-NAME (HAProxy puts its program name).
    :param hostname: HOSTNAME of rfc3164/rfc5424 headers (HAProxy 2.6 without
        ``log-send-hostname`` sends ``localhost`` and ``-``).
    :raises ValueError: a target is invalid (unknown facility, format, ...).
    """

    def __init__(self, agent: str, targets: Iterable[Any] = (), *, log_global: bool = False,
                 dontlog_normal: bool = False, tag: str = "spoe_sync",
                 hostname: str | None = None) -> None:
        self.agent = agent
        self.sinks: tuple[LogSink, ...] = tuple(
            t if isinstance(t, LogSink) else make_sink(t, tag=tag, hostname=hostname)
            for t in targets)
        self.log_global = log_global
        self.dontlog_normal = dontlog_normal

    @classmethod
    def from_agent(cls, agent: _AgentLogOptions, **options: Any) -> SpoeLog:
        """From a :class:`spoe_sync.config.AgentConfig` (``name``, ``logs``,
        ``log_global``, ``dontlog_normal``)."""
        return cls(agent.name, agent.logs, log_global=agent.log_global,
                   dontlog_normal=agent.dontlog_normal, **options)

    @property
    def enabled(self) -> bool:
        """False when the agent has no ``log`` line: nothing is ever logged."""
        return bool(self.sinks) or self.log_global

    def processing(self, result: _Result, sid: int, counters: _Counters) -> str | None:
        """Log one finished processing; returns the line when it was logged
        (to at least the loguru path or one sink), else ``None``.

        Nothing is logged for a skipped processing, one that never ran to an
        end (``pT == -1``), or ``st=0`` under ``dontlog-normal``.
        """
        if not self.enabled or result.skipped or result.timings.process < 0:
            return None
        status = int(result.status)
        if status == 0 and self.dontlog_normal:
            return None
        line = format_spoe_line(self.agent, result.kind, result.name, sid, status,
                                result.timings, counters)
        self.emit(line, NOTICE if status == 0 else WARNING, kind=result.kind, name=result.name,
                  status=status)
        return line

    def emit(self, line: str, severity: int, **extra: Any) -> None:
        """Send any line (e.g. HAProxy's emerg "failed to create SPOE applet")
        to the agent's destinations at a syslog ``severity`` (0..7)."""
        for sink in self.sinks:
            sink.emit(line, severity)
        if self.log_global:
            fields = {f"spoe_{k}": v for k, v in extra.items()}
            _logger.bind(spoe_agent=self.agent, **fields).log(_LOGURU_LEVELS[severity], line)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def __repr__(self) -> str:
        where = [repr(s) for s in self.sinks] + (["loguru"] if self.log_global else [])
        return f"<SpoeLog [{self.agent}] -> {', '.join(where) or 'nowhere'}>"
