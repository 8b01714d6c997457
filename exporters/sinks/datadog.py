"""Datadog sink: the health series as v2 metric series (``POST /api/v2/series``) with tags.

Names: ``<prefix>.health_score``, ``<prefix>.data_sufficient``, ``<prefix>.anomaly_score`` (tag
``detector``), ``<prefix>.predicted_breach_seconds`` (tag ``metric``), ``<prefix>.verdict`` (tag
``verdict``, 1 for the current one), ``<prefix>.metric_verdict`` (tags ``metric``, ``critical``,
``classification``, 1 for each metric's current classification), ``<prefix>.metric_failing_since`` (tag
``metric``: the Unix time since which it has not passed) and ``<prefix>.baseline_health_score`` (a live
baseline's latest window against its previous one, tagged with its own revision); all gauges (intake type
3). Only current values are sent, not the zeros Prometheus keeps for the other verdicts: each tag
combination is a billed custom metric. The identity labels become tags (``target:checkout``,
``revision:v42``...), plus the configured ``tags``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from exporters.errors import ExporterError


class DatadogSeriesSink:
    name: ClassVar[str] = "datadog"

    def __init__(
        self,
        *,
        api_key: str,
        host: str = "https://api.datadoghq.com",
        prefix: str = "smart_rollback",
        tags: Sequence[str] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        from datadog_api_client import Configuration

        self.host = host
        self.prefix = prefix
        self.tags = list(tags)
        self.clock = clock or time.time
        self._config = Configuration(host=host)
        self._config.api_key["apiKeyAuth"] = api_key

    def series(self, reports: Sequence[Any]) -> list[Any]:
        from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
        from datadog_api_client.v2.model.metric_point import MetricPoint
        from datadog_api_client.v2.model.metric_series import MetricSeries

        now = int(self.clock())
        out: list[Any] = []

        def add(name: str, value: float, tags: list[str], unit: str | None = None) -> None:
            kwargs: dict[str, Any] = {"unit": unit} if unit else {}
            out.append(
                MetricSeries(
                    metric=f"{self.prefix}.{name}",
                    type=MetricIntakeType.GAUGE,
                    points=[MetricPoint(timestamp=now, value=float(value))],
                    tags=tags,
                    **kwargs,
                )
            )

        def tagged(labels: dict[str, str]) -> list[str]:
            return [f"{k}:{v}" for k, v in labels.items() if v] + self.tags

        for r in reports:
            tags = tagged(r.labels)
            if r.score is not None:
                add("health_score", r.score, tags)
            add("data_sufficient", 1.0 if r.sufficient else 0.0, tags)
            add("verdict", 1.0, [*tags, f"verdict:{r.verdict}"])
            if r.judgement is not None:
                for metric, m in r.judgement.metrics.items():
                    critical = "true" if m.critical else "false"
                    add("metric_verdict", 1.0, [*tags, f"metric:{metric}", f"critical:{critical}",
                                                f"classification:{m.classification}"])  # fmt: skip
            for e in r.explanations:
                if e.since is not None:
                    add("metric_failing_since", e.since, [*tags, f"metric:{e.name}"])
            if r.stable_score is not None:
                add("baseline_health_score", r.stable_score, tagged({**r.labels, "revision": r.stable_revision}))
            for det, score in r.anomaly.items():
                add("anomaly_score", score, [*tags, f"detector:{det}"])
            for metric, fc in r.breaches.items():
                if fc.seconds is not None:
                    add("predicted_breach_seconds", fc.seconds, [*tags, f"metric:{metric}"], unit="second")
        return out

    def publish(self, reports: Sequence[Any]) -> None:
        from datadog_api_client import ApiClient
        from datadog_api_client.exceptions import ApiException
        from datadog_api_client.v2.api.metrics_api import MetricsApi
        from datadog_api_client.v2.model.metric_payload import MetricPayload
        from urllib3.exceptions import HTTPError

        series = self.series(reports)
        if not series:
            return
        try:
            with ApiClient(self._config) as client:
                MetricsApi(client).submit_metrics(body=MetricPayload(series=series))
        except (ApiException, HTTPError) as exc:
            raise ExporterError(f"Datadog series submission to {self.host} failed: {exc}") from exc
