"""Prometheus HTTP API source (``/api/v1/query`` and ``/api/v1/query_range``)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import requests

from exporters.errors import QueryError, SourceUnavailable
from exporters.sources.base import Series


class PrometheusSource:
    """Reads a Prometheus-compatible API (Prometheus, Thanos, Mimir, VictoriaMetrics).

    ``session`` is injectable (auth headers, TLS, a recording session in tests); ``timeout`` bounds every
    request and is also passed to Prometheus as the query ``timeout`` so the server stops working too.
    """

    name: ClassVar[str] = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        if headers:
            self.session.headers.update(headers)

    def _get(self, path: str, params: dict[str, Any], query: str) -> Any:
        params = {**params, "timeout": f"{self.timeout:g}s"}
        try:
            resp = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise SourceUnavailable(
                f"prometheus at {self.url} did not answer within {self.timeout:g}s for query {query!r}",
                source=self.name,
                query=query,
            ) from exc
        except requests.RequestException as exc:
            raise SourceUnavailable(
                f"prometheus at {self.url} unreachable ({type(exc).__name__}: {exc})",
                source=self.name,
                query=query,
            ) from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            err_type, err = body.get("errorType", "error"), body.get("error", "")
            cls = SourceUnavailable if err_type in ("timeout", "canceled", "unavailable") else QueryError
            raise cls(f"prometheus rejected query {query!r}: {err_type}: {err}", source=self.name, query=query)
        if resp.status_code >= 500:
            raise SourceUnavailable(
                f"prometheus at {self.url} answered HTTP {resp.status_code} for query {query!r}",
                source=self.name,
                query=query,
            )
        if resp.status_code >= 400 or not isinstance(body, dict):
            raise QueryError(
                f"prometheus answered HTTP {resp.status_code} for query {query!r}: {resp.text[:300]}",
                source=self.name,
                query=query,
            )
        return body["data"]

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        data = self._get("/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step}, query)
        return [_to_series(item) for item in data.get("result", [])]

    def query(self, query: str, at: float | None = None) -> list[Series]:
        """An instant query; a scalar result becomes one unlabelled Series."""
        params: dict[str, Any] = {"query": query}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params, query)
        if data.get("resultType") in ("scalar", "string"):
            ts, value = data["result"]
            return [Series({}, np.array([float(ts)]), np.array([_float(value)]))]
        return [_to_series(item) for item in data.get("result", [])]


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _to_series(item: dict[str, Any]) -> Series:
    points = item.get("values") or ([item["value"]] if "value" in item else [])
    ts = np.array([float(p[0]) for p in points], dtype=float)
    vs = np.array([_float(p[1]) for p in points], dtype=float)
    return Series(dict(item.get("metric", {})), ts, vs)
