"""The Prometheus sink: a custom collector (``/metrics``) and an optional Pushgateway push.

Series (the contract with the shipped alert rules and dashboards; documented in docs/metrics.md), each
with the target identity labels ``platform, cluster, namespace, target, component, revision`` (+ ``release``):

- ``smart_rollback_health_score`` 0-100; absent while no judgement exists yet.
- ``smart_rollback_verdict{verdict}`` 1 for the current verdict, 0 for the others.
- ``smart_rollback_metric_verdict{metric, critical, classification}`` 1 for each metric's classification.
- ``smart_rollback_data_sufficient`` 1/0: gate alert rules on it so missing data never fires them.
- ``smart_rollback_anomaly_score{detector}`` 0-1.
- ``smart_rollback_anomaly_contribution{metric}`` share of the Isolation-Forest score per metric.
- ``smart_rollback_predicted_breach_seconds{metric}`` (+ ``_early`` / ``_late`` interval ends) when the
  forecast crosses the metric's ``breach_threshold`` within the horizon.
- ``smart_rollback_metric_failing_since_timestamp_seconds{metric}`` for each metric not passing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from prometheus_client.core import GaugeMetricFamily, Metric

from exporters.errors import ExporterError
from exporters.judge import CLASSIFICATIONS, VERDICTS

IDENTITY = ("platform", "cluster", "namespace", "target", "component", "revision", "release")


class HealthCollector:
    """Collects from ``reports()`` (the exporter's latest reports) at scrape time."""

    def __init__(self, reports: Callable[[], Sequence[Any]]) -> None:
        self._reports = reports

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        ident = list(IDENTITY)
        health = GaugeMetricFamily("smart_rollback_health_score", "Composite health score 0-100.", labels=ident)
        verdict = GaugeMetricFamily(
            "smart_rollback_verdict",
            "1 for the current verdict of the target, 0 for the others.",
            labels=[*ident, "verdict"],
        )
        metric_verdict = GaugeMetricFamily(
            "smart_rollback_metric_verdict",
            "1 for each metric's current classification.",
            labels=[*ident, "metric", "critical", "classification"],
        )
        sufficient = GaugeMetricFamily(
            "smart_rollback_data_sufficient", "1 when the judgement had enough data, else 0.", labels=ident
        )
        anomaly = GaugeMetricFamily("smart_rollback_anomaly_score", "Anomaly score 0-1.", labels=[*ident, "detector"])
        contribution = GaugeMetricFamily(
            "smart_rollback_anomaly_contribution",
            "Share of the Isolation-Forest anomaly score attributed to each metric.",
            labels=[*ident, "metric"],
        )
        breach = GaugeMetricFamily(
            "smart_rollback_predicted_breach_seconds",
            "Forecast seconds until the metric crosses its breach threshold.",
            labels=[*ident, "metric"],
        )
        breach_early = GaugeMetricFamily(
            "smart_rollback_predicted_breach_seconds_early",
            "Early end of the breach-time interval.",
            labels=[*ident, "metric"],
        )
        breach_late = GaugeMetricFamily(
            "smart_rollback_predicted_breach_seconds_late",
            "Late end of the breach-time interval.",
            labels=[*ident, "metric"],
        )
        stable = GaugeMetricFamily(
            "smart_rollback_baseline_health_score",
            "While a canary shares traffic with its baseline: the baseline's latest window judged against the one "
            "before it, 0-100, when at least one metric was judged (revision: the baseline's). Progressive rollbacks "
            "read it.",
            labels=ident,
        )
        since = GaugeMetricFamily(
            "smart_rollback_metric_failing_since_timestamp_seconds",
            "Unix time since which the metric has not passed.",
            labels=[*ident, "metric"],
        )
        for r in self._reports():
            labels = r.labels
            values = [labels.get(k, "") for k in IDENTITY]
            if r.score is not None:
                health.add_metric(values, float(r.score))
            for v in VERDICTS:
                verdict.add_metric([*values, v], 1.0 if r.verdict == v else 0.0)
            sufficient.add_metric(values, 1.0 if r.sufficient else 0.0)
            if r.judgement is not None:
                for name, m in r.judgement.metrics.items():
                    for c in CLASSIFICATIONS:
                        metric_verdict.add_metric(
                            [*values, name, "true" if m.critical else "false", c],
                            1.0 if m.classification == c else 0.0,
                        )
            for det, score in r.anomaly.items():
                anomaly.add_metric([*values, det], float(score))
            for name, share in r.contributions.items():
                contribution.add_metric([*values, name], float(share))
            for name, fc in r.breaches.items():
                if fc.seconds is not None:
                    breach.add_metric([*values, name], fc.seconds)
                if fc.early is not None:
                    breach_early.add_metric([*values, name], fc.early)
                if fc.late is not None:
                    breach_late.add_metric([*values, name], fc.late)
            for e in r.explanations:
                if e.since is not None:
                    since.add_metric([*values, e.name], e.since)
            if r.stable_score is not None:
                own = {**labels, "revision": r.stable_revision}
                stable.add_metric([own.get(k, "") for k in IDENTITY], r.stable_score)
        yield from (
            health,
            verdict,
            metric_verdict,
            sufficient,
            anomaly,
            contribution,
            breach,
            breach_early,
            breach_late,
            stable,
            since,
        )


class PushgatewayPusher:
    """PUTs the health series (and the exporter's own) to a Pushgateway after each cycle."""

    name: ClassVar[str] = "pushgateway"

    def __init__(
        self,
        url: str,
        *,
        job: str = "smart-rollback",
        grouping: dict[str, str] | None = None,
        timeout: float = 10.0,
        registry: Any = None,
    ) -> None:
        self.url = url
        self.job = job
        self.grouping = grouping or {}
        self.timeout = timeout
        self.registry = registry

    def publish(self, reports: Sequence[Any]) -> None:
        from prometheus_client import CollectorRegistry, push_to_gateway

        registry = CollectorRegistry()
        registry.register(HealthCollector(lambda: reports))
        if self.registry is not None:
            registry.register(_Forward(self.registry))
        try:
            push_to_gateway(self.url, job=self.job, registry=registry, grouping_key=self.grouping, timeout=self.timeout)
        except OSError as exc:
            raise ExporterError(f"push to Pushgateway {self.url} failed: {exc}") from exc


class _Forward:
    """Re-exposes another registry's metrics (the exporter's self-metrics) in the pushed group."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()
