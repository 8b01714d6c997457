"""The reactor's own metrics (``/metrics``), in Prometheus multiprocess mode under gunicorn.

prometheus_client picks its value storage when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR``;
``smart-rollback serve`` sets that variable (to a fresh, empty directory) before anything imports this
module. Series names are a contract with the shipped dashboards (ARCHITECTURE §3.3).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

INTAKE_REQUESTS = Counter(
    "smart_rollback_intake_requests_total",
    "Webhook requests by source and HTTP status.",
    ["source", "code"],
)
INTAKE_ALERTS = Counter(
    "smart_rollback_intake_alerts_total",
    "Alerts received by source and what became of them (accepted, duplicate, ignored, truncated).",
    ["source", "result"],
)
INTAKE_LATENCY = Histogram(
    "smart_rollback_intake_latency_seconds",
    "Time from request start to the durable acknowledgement.",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DECISIONS = Counter(
    "smart_rollback_decisions_total",
    "Decisions by action (rollback, hold, ignore), strategy, mode and the rule that settled it (cooldown, "
    "max_rollbacks, pre_existing...: reactor.engine.RULES).",
    ["action", "strategy", "mode", "rule"],
)
ROLLBACKS = Counter(
    "smart_rollback_rollbacks_total",
    "Executed rollbacks by strategy and result (succeeded, failed, stopped).",
    ["strategy", "result"],
)
TIME_TO_ROLLBACK = Histogram(
    "smart_rollback_time_to_rollback_seconds",
    "From the alert's start to the rollback's last step, by strategy.",
    ["strategy"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
STEPS = Counter(
    "smart_rollback_steps_total",
    "Strategy steps by action and result.",
    ["action", "result"],
)
JOB_RETRIES = Counter(
    "smart_rollback_job_retries_total",
    "Jobs put back after a temporary failure, by kind.",
    ["kind"],
)


class QueueDepthCollector:
    """Jobs pending and running, read from the store at scrape time (the same for every process)."""

    def __init__(self, depth: Callable[[], dict[str, int]]) -> None:
        self._depth = depth

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "smart_rollback_queue_depth", "Jobs waiting or running, by status.", labels=["status"]
        )
        try:
            depth = self._depth()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the store is down
            return
        for status, count in sorted(depth.items()):
            family.add_metric([status], count)
        yield family


class _Registries:
    """Several collectors exposed as one, for ``generate_latest``."""

    def __init__(self, *collectors: object) -> None:
        self._collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self._collectors:
            yield from collector.collect()  # type: ignore[attr-defined]


def render(extra: Iterable[object] = ()) -> tuple[bytes, str]:
    """The exposition for ``/metrics``: every gunicorn process aggregated in multiprocess mode."""
    base: object = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        base = registry
    return generate_latest(_Registries(base, *extra)), CONTENT_TYPE_LATEST
