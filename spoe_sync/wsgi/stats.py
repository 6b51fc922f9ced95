"""The Prometheus stats endpoint of :mod:`spoe_sync.wsgi` (``stats_path``): each engine's
counters and a per-event/group latency histogram (prometheus-client, imported only here)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["SpoeStats"]


class SpoeStats:
    """Prometheus exposition of the engines' counters (prometheus-client, own registry).

    :param engines: a callable returning the live engines (``[]`` before the first request).
    """

    def __init__(self, engines: Any) -> None:
        self._engines = engines
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)
        self._children: dict[tuple[str, str, str, int], Any] = {}
        self.processing = Histogram(
            "spoe_processing_seconds", "Time SPOE added to a stream per event or group (pT)",
            ["engine", "kind", "name", "status"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def observe(self, engine: str, kind: str, name: str, status: int, seconds: float) -> None:
        key = (engine, kind, name, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.processing.labels(engine, kind, name, str(status))
        child.observe(seconds)

    def collect(self) -> Iterator[Any]:
        gauges = {"applets": "Agent connections alive", "idles": "Idle agent connections",
                  "nb_sending": "Frames queued or being written",
                  "nb_waiting": "Frames waiting for their ACK",
                  "in_progress": "Events and groups being processed"}
        counters = {"nb_processed": "Events and groups processed",
                    "nb_errors": "Processings that ended in error",
                    "nb_skipped": "Processings that sent nothing",
                    "nb_interrupted": "Processings interrupted by the caller",
                    "streams": "Streams created", "connections_opened": "Agent connections opened",
                    "frames_sent": "NOTIFY frames sent", "acks_received": "ACK frames received"}
        snapshots = [(e.config.engine_id, e.agent.name, e.metrics()) for e in self._engines()]
        for attr, doc in gauges.items():
            g = GaugeMetricFamily(f"spoe_{attr}", doc, labels=["engine", "agent"])
            for eid, agent, m in snapshots:
                g.add_metric([eid, agent], getattr(m, attr))
            yield g
        for attr, doc in counters.items():
            c = CounterMetricFamily(f"spoe_{attr.removeprefix('nb_')}", doc,
                                    labels=["engine", "agent"])
            for eid, agent, m in snapshots:
                c.add_metric([eid, agent], getattr(m, attr))
            yield c

    def describe(self) -> Sequence[Any]:
        return []

    def render(self) -> tuple[str, bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)
