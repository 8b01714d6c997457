"""Sources: Prometheus against a real server; Datadog, New Relic, Elasticsearch against a recorder."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from exporters.errors import QueryError, SourceUnavailable
from exporters.sources.datadog import DatadogSource
from exporters.sources.elasticsearch import ElasticsearchSource
from exporters.sources.newrelic import NewRelicSource
from exporters.sources.prometheus import PrometheusSource
from tests.conftest import free_port


def test_prometheus_query_range_and_errors(start_prometheus) -> None:
    prom = start_prometheus({})
    prom.wait_for("count_over_time(up[1m])", lambda r: bool(r) and float(r[0]["value"][1]) >= 3)
    src = PrometheusSource(prom.url, timeout=5)
    now = time.time()
    series = src.query_range('up{job="prometheus"}', now - 30, now, 1)
    assert len(series) == 1
    assert series[0].labels["job"] == "prometheus"
    assert len(series[0].values) >= 3 and set(series[0].values.tolist()) == {1.0}
    instant = src.query("scalar(up)")
    assert instant[0].values[0] == 1.0
    with pytest.raises(QueryError) as err:
        src.query_range("sum(rate(up[1m])", now - 30, now, 1)
    assert "sum(rate(up[1m])" in str(err.value) and "bad_data" in str(err.value)
    assert err.value.query == "sum(rate(up[1m])"


def test_prometheus_unreachable_and_slow(recorder) -> None:
    with pytest.raises(SourceUnavailable, match="unreachable"):
        PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2).query_range("up", 0, 10, 1)

    def slow(req):
        time.sleep(1.5)
        return 200, {}, b'{"status":"success","data":{"resultType":"matrix","result":[]}}'

    recorder.respond = slow
    with pytest.raises(SourceUnavailable, match=r"did not answer within 0\.5s"):
        PrometheusSource(recorder.url, timeout=0.5).query_range("up", 0, 10, 1)


def test_prometheus_server_error_is_unavailable(recorder) -> None:
    recorder.respond = lambda req: (503, {}, b"overloaded")
    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        PrometheusSource(recorder.url).query_range("up", 0, 10, 1)


DD_RESPONSE = {
    "status": "ok",
    "res_type": "time_series",
    "query": "avg:http.duration{env:prod} by {version}",
    "from_date": 1700000000000,
    "to_date": 1700000060000,
    "group_by": ["version"],
    "series": [
        {
            "metric": "http.duration",
            "display_name": "http.duration",
            "scope": "env:prod,version:v2",
            "tag_set": ["version:v2"],
            "expression": "avg:http.duration{env:prod,version:v2}",
            "pointlist": [[1700000000000.0, 0.25], [1700000030000.0, None], [1700000060000.0, 0.5]],
            "start": 1700000000000,
            "end": 1700000060000,
            "interval": 30,
            "length": 3,
            "aggr": "avg",
        }
    ],
}


def test_datadog_query(recorder) -> None:
    recorder.respond = lambda req: (200, {}, json.dumps(DD_RESPONSE).encode())
    src = DatadogSource(api_key="k-api", app_key="k-app", host=recorder.url)
    series = src.query_range("avg:http.duration{env:prod} by {version}", 1700000000, 1700000060, 30)
    req = recorder.requests[0]
    url = urlsplit(req.path)
    assert req.method == "GET" and url.path == "/api/v1/query"
    assert parse_qs(url.query) == {
        "from": ["1700000000"],
        "to": ["1700000060"],
        "query": ["avg:http.duration{env:prod} by {version}"],
    }
    assert req.headers["DD-API-KEY"] == "k-api" and req.headers["DD-APPLICATION-KEY"] == "k-app"
    assert series[0].labels["version"] == "v2"
    assert series[0].timestamps.tolist() == [1700000000.0, 1700000030.0, 1700000060.0]
    assert series[0].values[0] == 0.25 and series[0].values[2] == 0.5


def test_datadog_errors(recorder) -> None:
    recorder.respond = lambda req: (400, {}, b'{"errors": ["Error parsing query: unexpected token"]}')
    with pytest.raises(QueryError, match="avg:broken"):
        DatadogSource(api_key="a", app_key="b", host=recorder.url).query_range("avg:broken{", 0, 60, 30)
    recorder.respond = lambda req: (500, {}, b'{"errors": ["internal"]}')
    with pytest.raises(SourceUnavailable):
        DatadogSource(api_key="a", app_key="b", host=recorder.url).query_range("avg:x{*}", 0, 60, 30)


def test_newrelic_nrql(recorder) -> None:
    results = [
        {"beginTimeSeconds": 100, "endTimeSeconds": 130, "facet": "v1", "average.duration": 0.2},
        {"beginTimeSeconds": 100, "endTimeSeconds": 130, "facet": "v2", "average.duration": 0.4},
        {"beginTimeSeconds": 130, "endTimeSeconds": 160, "facet": "v2", "average.duration": 0.5},
    ]
    body = {"data": {"actor": {"account": {"nrql": {"results": results}}}}}
    recorder.respond = lambda req: (200, {}, json.dumps(body).encode())
    src = NewRelicSource(api_key="NRAK-x", account_id=42, url=f"{recorder.url}/graphql")
    series = src.query_range("SELECT average(duration) FROM Transaction FACET appVersion", 100, 160, 30)
    req = recorder.requests[0]
    assert req.method == "POST" and req.path == "/graphql" and req.headers["API-Key"] == "NRAK-x"
    sent = req.json()
    assert sent["variables"]["account"] == 42
    assert sent["variables"]["nrql"] == (
        "SELECT average(duration) FROM Transaction FACET appVersion SINCE 100000 UNTIL 160000 TIMESERIES 30 seconds"
    )
    assert "nrql(query: $nrql)" in sent["query"]
    by_facet = {s.labels["facet"]: s for s in series}
    assert by_facet["v2"].values.tolist() == [0.4, 0.5] and by_facet["v1"].labels["column"] == "average.duration"


def test_newrelic_error(recorder) -> None:
    body = {"errors": [{"message": "NRQL Syntax error: Error at line 1 position 7"}], "data": None}
    recorder.respond = lambda req: (200, {}, json.dumps(body).encode())
    with pytest.raises(QueryError, match="NRQL Syntax error") as err:
        NewRelicSource(api_key="k", account_id=1, url=recorder.url).query_range("SELECT oops", 0, 60, 30)
    assert "SELECT oops" in err.value.query


ES_HEADERS = {
    "X-Elastic-Product": "Elasticsearch",
    "Content-Type": "application/vnd.elasticsearch+json;compatible-with=8",
}


def test_elasticsearch_error_rate_per_version(recorder) -> None:
    def buckets(counts):
        return [{"key": 1700000000000 + i * 60000, "doc_count": c} for i, c in enumerate(counts)]

    resp = {
        "took": 3,
        "timed_out": False,
        "hits": {"total": {"value": 9, "relation": "eq"}, "hits": []},
        "aggregations": {
            "split": {
                "buckets": [
                    {"key": "v1", "doc_count": 3, "over_time": {"buckets": buckets([1, 2, 0])}},
                    {"key": "v2", "doc_count": 6, "over_time": {"buckets": buckets([3, 3, 0])}},
                ]
            }
        },
    }
    recorder.respond = lambda req: (200, ES_HEADERS, json.dumps(resp).encode())
    src = ElasticsearchSource(recorder.url)
    query = json.dumps(
        {"index": "logs-*", "filter": {"term": {"level": "error"}}, "split_by": "version", "per_second": True}
    )
    series = src.query_range(query, 1700000000, 1700000120, 60)
    req = recorder.requests[-1]
    assert req.method == "POST" and req.path.startswith("/logs-*/_search")
    body = req.json()
    assert body["size"] == 0
    assert {"term": {"level": "error"}} in body["query"]["bool"]["filter"]
    assert body["aggs"]["split"]["terms"]["field"] == "version"
    hist = body["aggs"]["split"]["aggs"]["over_time"]["date_histogram"]
    assert hist["fixed_interval"] == "60s" and hist["field"] == "@timestamp"
    by_version = {s.labels["version"]: s for s in series}
    assert by_version["v2"].values.tolist() == [0.05, 0.05, 0.0]


def test_elasticsearch_bad_query(recorder) -> None:
    err = {"error": {"type": "parsing_exception", "reason": "unknown query [trem]"}, "status": 400}
    recorder.respond = lambda req: (400, ES_HEADERS, json.dumps(err).encode())
    src = ElasticsearchSource(recorder.url)
    with pytest.raises(QueryError, match="400"):
        src.query_range(json.dumps({"index": "logs", "filter": {"trem": {}}}), 0, 60, 60)
    with pytest.raises(QueryError, match="needs an 'index'"):
        src.query_range("{}", 0, 60, 60)
