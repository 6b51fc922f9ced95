"""The Prometheus stats endpoint of :mod:`spoe_sync.wsgi` (``stats_path``): each engine's
counters and a per-event/group latency histogram (prometheus-client, imported only here).

One process: the engines' counters are read at each scrape (a custom collector).  Several
processes (gunicorn ``-w 2``): each worker has its own engines, so a scrape answered by one
worker would show that worker's counters only, a different figure on each scrape.  When
``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus-client's multiprocess mode), every worker
writes its engines' counters into prometheus-client's per-process files as they change, and
the endpoint answers with their aggregate (``MultiProcessCollector``): counters summed over
every worker that ever ran, gauges over the live ones (gunicorn's ``child_exit`` hook should
call :func:`spoe_sync.wsgi.child_exit` so that a dead worker's gauges go away).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["SpoeStats", "child_exit"]

_GAUGES = {"applets": "Agent connections alive", "idles": "Idle agent connections",
           "nb_sending": "Frames queued or being written",
           "nb_waiting": "Frames waiting for their ACK",
           "in_progress": "Events and groups being processed"}
_COUNTERS = {"nb_processed": "Events and groups processed",
             "nb_errors": "Processings that ended in error",
             "nb_skipped": "Processings that sent nothing",
             "nb_interrupted": "Processings interrupted by the caller",
             "streams": "Streams created", "connections_opened": "Agent connections opened",
             "frames_sent": "NOTIFY frames sent", "acks_received": "ACK frames received"}
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_LABELS = ["engine", "agent"]


def multiprocess_dir() -> str | None:
    """prometheus-client's multiprocess directory, when its multiprocess mode is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(
        "prometheus_multiproc_dir") or None


class SpoeStats:
    """Prometheus exposition of the engines' counters (prometheus-client, own registry).

    :param engines: a callable returning the live engines (``[]`` before the first request).
    """

    def __init__(self, engines: Any) -> None:
        self._engines = engines
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[str, str, str, int], Any] = {}
        if self.multiprocess:
            from prometheus_client import multiprocess, values

            if values.ValueClass is values.MutexValue:
                # prometheus-client picks where values live when it is first imported: set
                # PROMETHEUS_MULTIPROC_DIR after that (importing spoe_sync.wsgi is enough) and
                # every metric would stay in this process's memory, the scrape empty.  The
                # variable says what the application wants: pick again for the metrics to come.
                values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
            # the metrics live in the per-process files, not in a registry: the endpoint's
            # registry only reads the files back, aggregated
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
            metric_registry = None
            self._gauges = {a: Gauge(f"spoe_{a}", doc, _LABELS, registry=None,
                                     multiprocess_mode="livesum") for a, doc in _GAUGES.items()}
            self._counters = {a: Counter(f"spoe_{a.removeprefix('nb_')}", doc, _LABELS,
                                         registry=None) for a, doc in _COUNTERS.items()}
            #: each engine's counters as last written (a rebuilt engine starts at 0 again)
            self._written: weakref.WeakKeyDictionary[Any, dict[str, int]] = \
                weakref.WeakKeyDictionary()
        else:
            self.registry.register(self)
            metric_registry = self.registry
        self.processing = Histogram(
            "spoe_processing_seconds", "Time SPOE added to a stream per event or group (pT)",
            ["engine", "kind", "name", "status"], registry=metric_registry, buckets=_BUCKETS)

    def observe(self, engine: str, kind: str, name: str, status: int, seconds: float) -> None:
        key = (engine, kind, name, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.processing.labels(engine, kind, name, str(status))
        child.observe(seconds)
        if self.multiprocess:
            self.write()

    def write(self) -> None:
        """Multiprocess mode: write this process's engine counters to its files."""
        for engine in self._engines():
            m = engine.metrics()
            labels = (engine.config.engine_id, engine.agent.name)
            for attr, gauge in self._gauges.items():
                gauge.labels(*labels).set(0 if engine.closed else getattr(m, attr))
            written = self._written.setdefault(engine, {})
            for attr, counter in self._counters.items():
                value = getattr(m, attr)
                delta = value - written.get(attr, 0)
                if delta > 0:
                    counter.labels(*labels).inc(delta)
                    written[attr] = value

    def collect(self) -> Iterator[Any]:
        snapshots = [(e.config.engine_id, e.agent.name, e.metrics()) for e in self._engines()]
        for attr, doc in _GAUGES.items():
            g = GaugeMetricFamily(f"spoe_{attr}", doc, labels=_LABELS)
            for eid, agent, m in snapshots:
                g.add_metric([eid, agent], getattr(m, attr))
            yield g
        for attr, doc in _COUNTERS.items():
            c = CounterMetricFamily(f"spoe_{attr.removeprefix('nb_')}", doc, labels=_LABELS)
            for eid, agent, m in snapshots:
                c.add_metric([eid, agent], getattr(m, attr))
            yield c

    def describe(self) -> Sequence[Any]:
        return []

    def render(self) -> tuple[str, bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.multiprocess:
            self.write()  # this worker's latest figures, then every worker's files
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook (runs in the master): in multiprocess mode, drop the dead
    worker's live gauges (its counters stay in the sums).  Without the mode, nothing."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
