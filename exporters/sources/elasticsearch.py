"""Elasticsearch aggregations as time series, e.g. the error-log rate per version.

The query is a JSON document::

    {"index": "logs-*", "filter": {"term": {"level": "error"}}, "split_by": "version",
     "metric": {"avg": {"field": "duration_ms"}}, "per_second": true}

It becomes one ``size: 0`` search: the filter plus a time range, a ``terms`` aggregation on ``split_by``
(optional) and a ``date_histogram`` with ``fixed_interval = step``; each bucket's value is the ``metric``
sub-aggregation or, without one, the document count (divided by the step with ``per_second``).
Pinned to the 8.x client (``elasticsearch>=8.13,<9``): the 9.x client refuses 8.x servers.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import numpy as np

from exporters.errors import QueryError, SourceUnavailable
from exporters.sources.base import Series


class ElasticsearchSource:
    name: ClassVar[str] = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        time_field: str = "@timestamp",
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        client: Any = None,
    ) -> None:
        self.url = url
        self.time_field = time_field
        self.timeout = timeout
        if client is None:
            from elasticsearch import Elasticsearch

            kwargs: dict[str, Any] = {"request_timeout": timeout}
            if api_key:
                kwargs["api_key"] = api_key
            elif username:
                kwargs["basic_auth"] = (username, password or "")
            client = Elasticsearch(url, **kwargs)
        self.client = client

    def body(self, spec: dict[str, Any], start: float, end: float, step: float) -> dict[str, Any]:
        time_range = {
            "range": {self.time_field: {"gte": int(start * 1000), "lte": int(end * 1000), "format": "epoch_millis"}}
        }
        filters = [time_range] + ([spec["filter"]] if spec.get("filter") else [])
        histogram: dict[str, Any] = {
            "date_histogram": {
                "field": self.time_field,
                "fixed_interval": f"{max(1, int(step))}s",
                "min_doc_count": 0,
                "extended_bounds": {"min": int(start * 1000), "max": int(end * 1000)},
            }
        }
        if spec.get("metric"):
            histogram["aggs"] = {"value": spec["metric"]}
        aggs: dict[str, Any] = {"over_time": histogram}
        if spec.get("split_by"):
            aggs = {
                "split": {
                    "terms": {"field": spec["split_by"], "size": int(spec.get("max_splits", 20))},
                    "aggs": aggs,
                }
            }
        return {"size": 0, "query": {"bool": {"filter": filters}}, "aggs": aggs}

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        from elasticsearch import ApiError, TransportError

        try:
            spec = json.loads(query)
        except ValueError as exc:
            raise QueryError(
                f"elasticsearch query is not JSON: {exc}: {query!r}", source=self.name, query=query
            ) from exc
        if not isinstance(spec, dict) or "index" not in spec:
            raise QueryError(f"elasticsearch query needs an 'index': {query!r}", source=self.name, query=query)
        body = self.body(spec, start, end, step)
        try:
            resp = self.client.search(index=spec["index"], body=body)
        except ApiError as exc:
            status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", 0) or 0
            cls = SourceUnavailable if status >= 500 or status == 429 else QueryError
            raise cls(
                f"elasticsearch answered HTTP {status} for {query!r}: {exc.message}",
                source=self.name,
                query=query,
            ) from exc
        except TransportError as exc:
            raise SourceUnavailable(
                f"elasticsearch at {self.url} unreachable ({type(exc).__name__})",
                source=self.name,
                query=query,
            ) from exc
        aggs = dict(resp).get("aggregations", {})
        divisor = float(step) if spec.get("per_second") else 1.0
        if "split" in aggs:
            return [
                _series({spec["split_by"]: str(b["key"])}, b["over_time"]["buckets"], divisor)
                for b in aggs["split"]["buckets"]
            ]
        return [_series({}, aggs.get("over_time", {}).get("buckets", []), divisor)]


def _series(labels: dict[str, str], buckets: list[dict[str, Any]], divisor: float) -> Series:
    ts = np.array([float(b["key"]) / 1000.0 for b in buckets], dtype=float)
    values = []
    for b in buckets:
        if "value" in b:
            v = b["value"].get("value")
            values.append(math.nan if v is None else float(v) / divisor)
        else:
            values.append(float(b.get("doc_count", 0)) / divisor)
    return Series(labels, ts, np.array(values, dtype=float))
