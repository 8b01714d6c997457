"""Datadog metric queries (``GET /api/v1/query``) through the official ``datadog-api-client``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from exporters.errors import QueryError, SourceUnavailable
from exporters.sources.base import Series


class DatadogSource:
    """Timeseries in the Datadog query language, e.g. ``avg:http.duration{env:prod} by {version}``.

    ``host`` selects the site (``https://api.datadoghq.eu``…) or a local server in tests; the keys are
    passed in (the caller reads them from wherever it keeps secrets; nothing is read from the environment).
    """

    name: ClassVar[str] = "datadog"

    def __init__(
        self,
        *,
        api_key: str,
        app_key: str,
        host: str = "https://api.datadoghq.com",
        timeout: float = 10.0,
    ) -> None:
        from datadog_api_client import Configuration

        self.host = host.rstrip("/")
        self.timeout = timeout
        self._config = Configuration(host=self.host, request_timeout=timeout)
        self._config.api_key["apiKeyAuth"] = api_key
        self._config.api_key["appKeyAuth"] = app_key

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        from datadog_api_client import ApiClient
        from datadog_api_client.exceptions import ApiException
        from datadog_api_client.v1.api.metrics_api import MetricsApi
        from urllib3.exceptions import HTTPError

        try:
            with ApiClient(self._config) as client:
                resp = MetricsApi(client).query_metrics(_from=int(start), to=int(end), query=query)
        except ApiException as exc:
            status = exc.status or 0
            cls = SourceUnavailable if status >= 500 or status == 429 else QueryError
            raise cls(
                f"datadog at {self.host} answered HTTP {status} for query {query!r}: {str(exc.body)[:300]}",
                source=self.name,
                query=query,
            ) from exc
        except HTTPError as exc:
            raise SourceUnavailable(
                f"datadog at {self.host} unreachable ({type(exc).__name__})", source=self.name, query=query
            ) from exc
        body = resp.to_dict()
        if body.get("status") == "error" or body.get("error"):
            raise QueryError(
                f"datadog rejected query {query!r}: {body.get('error') or body.get('message')}",
                source=self.name,
                query=query,
            )
        return [_to_series(s) for s in body.get("series", [])]


def _labels(item: dict[str, Any]) -> dict[str, str]:
    tags = item.get("tag_set") or [t for t in str(item.get("scope", "")).split(",") if ":" in t]
    labels: dict[str, str] = {}
    for tag in tags:
        key, _, value = tag.partition(":")
        labels[key.strip()] = value.strip()
    if item.get("metric"):
        labels.setdefault("__name__", str(item["metric"]))
    return labels


def _to_series(item: dict[str, Any]) -> Series:
    points = item.get("pointlist") or []
    ts = np.array([float(p[0]) / 1000.0 for p in points], dtype=float)
    vs = np.array([math.nan if p[1] is None else float(p[1]) for p in points], dtype=float)
    return Series(_labels(item), ts, vs, meta={"scope": item.get("scope", "")})
