"""New Relic NRQL queries over NerdGraph (``POST /graphql``)."""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import numpy as np
import requests

from exporters.errors import QueryError, SourceUnavailable
from exporters.sources.base import Series

_GRAPHQL = "query($account: Int!, $nrql: Nrql!) { actor { account(id: $account) { nrql(query: $nrql) { results } } } }"


class NewRelicSource:
    """Runs an NRQL ``TIMESERIES`` query, e.g. ``SELECT average(duration) FROM Transaction FACET appVersion``.

    ``SINCE``/``UNTIL`` and ``TIMESERIES <step> seconds`` are appended from the requested range unless the
    query already has them. Each facet becomes one Series labelled ``facet``; each aggregate column is a
    Series labelled ``column``.
    """

    name: ClassVar[str] = "newrelic"

    def __init__(
        self,
        *,
        api_key: str,
        account_id: int,
        url: str = "https://api.newrelic.com/graphql",
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.account_id = int(account_id)
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update({"API-Key": api_key, "Content-Type": "application/json"})

    def nrql(self, query: str, start: float, end: float, step: float) -> str:
        upper = query.upper()
        parts = [query.strip()]
        if " SINCE " not in f" {upper} ":
            parts.append(f"SINCE {int(start * 1000)} UNTIL {int(end * 1000)}")
        if " TIMESERIES" not in f" {upper}":
            parts.append(f"TIMESERIES {max(1, int(step))} seconds")
        return " ".join(parts)

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        nrql = self.nrql(query, start, end, step)
        payload = {"query": _GRAPHQL, "variables": {"account": self.account_id, "nrql": nrql}}
        try:
            resp = self.session.post(self.url, data=json.dumps(payload), timeout=self.timeout)
        except requests.RequestException as exc:
            raise SourceUnavailable(
                f"new relic at {self.url} unreachable ({type(exc).__name__})", source=self.name, query=nrql
            ) from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise SourceUnavailable(
                f"new relic answered HTTP {resp.status_code} for {nrql!r}", source=self.name, query=nrql
            )
        try:
            body = resp.json()
        except ValueError:
            raise QueryError(
                f"new relic answered HTTP {resp.status_code} with a non-JSON body for {nrql!r}",
                source=self.name,
                query=nrql,
            ) from None
        if body.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in body["errors"])
            raise QueryError(f"new relic rejected NRQL {nrql!r}: {messages}", source=self.name, query=nrql)
        if resp.status_code >= 400:
            raise QueryError(f"new relic answered HTTP {resp.status_code} for {nrql!r}", source=self.name, query=nrql)
        try:
            results = body["data"]["actor"]["account"]["nrql"]["results"] or []
        except (KeyError, TypeError):
            raise QueryError(
                f"new relic answer for {nrql!r} has no data.actor.account.nrql.results",
                source=self.name,
                query=nrql,
            ) from None
        return _to_series(results)


_TIME_KEYS = {"beginTimeSeconds", "endTimeSeconds", "facet", "timestamp"}


def _to_series(rows: list[dict[str, Any]]) -> list[Series]:
    grouped: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in rows:
        facet = row.get("facet")
        facet_text = ",".join(map(str, facet)) if isinstance(facet, list) else ("" if facet is None else str(facet))
        ts = float(row.get("beginTimeSeconds", row.get("timestamp", 0.0)))
        for key, value in row.items():
            if key in _TIME_KEYS:
                continue
            if isinstance(value, dict):  # percentile(...) gives {"99": 0.42}
                for sub, v in value.items():
                    grouped.setdefault((facet_text, f"{key}.{sub}"), []).append((ts, _f(v)))
            else:
                grouped.setdefault((facet_text, key), []).append((ts, _f(value)))
    out = []
    for (facet_text, column), points in grouped.items():
        points.sort()
        labels = {"column": column}
        if facet_text:
            labels["facet"] = facet_text
        out.append(Series(labels, np.array([p[0] for p in points]), np.array([p[1] for p in points])))
    return out


def _f(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan
