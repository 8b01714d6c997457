"""The exporter service with a generated source: splits, sharding, stale targets, errors, sinks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest

from exporters.config import ExporterConfig, load_config
from exporters.errors import ConfigError
from exporters.service import Exporter, parse_shard, shard_of
from exporters.sinks import DatadogSeriesSink, HealthCollector, PushgatewayPusher
from tests.conftest import FIXTURES
from tests.exporters.fakes import GeneratedSource, revisions

NOW = 1_800_000_000.0


def _config(**target) -> ExporterConfig:
    base = {
        "cluster": "prod-eu",
        "namespace": "shop",
        "name": "checkout",
        "source": "gen",
        "window": 300,
        "lookback": 1800,
        "step": 15,
        "detectors": ["ensemble", "isolation_forest"],
        "metrics": [
            {"name": "latency", "query": "latency", "judge": {"group": "latency"}},
            {"name": "errors", "query": "errors", "judge": {"group": "errors", "kind": "count"}},
        ],
    }
    base.update(target)
    return ExporterConfig.model_validate(
        {"sources": {"gen": {"type": "prometheus", "url": "http://127.0.0.1:1"}}, "targets": [base]}
    )


def _counts(plan: dict[str, tuple[float, float, float]]):
    def make(start, end, step):
        rng = np.random.default_rng(1)
        from exporters.sources import Series

        out = []
        for rev, (first, last, lam) in plan.items():
            ts = np.arange(max(start, first), min(end, last) + 1e-9, step)
            if len(ts):
                out.append(Series({"revision": rev}, ts, rng.poisson(lam, len(ts)).astype(float)))
        return out

    return make


def test_newest_revision_is_the_canary_and_fails() -> None:
    src = GeneratedSource(
        {
            "latency": revisions({"v1": (NOW - 1800, NOW, 0.10), "v2": (NOW - 600, NOW, 0.30)}),
            "errors": _counts({"v1": (NOW - 1800, NOW, 0.2), "v2": (NOW - 600, NOW, 5.0)}),
        }
    )
    exp = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW)
    (report,) = exp.run_cycle()
    assert report.revision == "v2"
    assert report.verdict == "fail" and report.score == 0.0 and report.sufficient
    assert {e.name for e in report.explanations} == {"latency", "errors"}
    assert all(e.since == NOW for e in report.explanations)
    assert report.labels == {
        "platform": "kubernetes",
        "cluster": "prod-eu",
        "namespace": "shop",
        "target": "checkout",
        "component": "checkout",
        "revision": "v2",
    }
    assert 0.0 <= report.anomaly["ensemble"] <= 1.0
    assert report.anomaly["isolation_forest"] > 0.5
    assert max(report.contributions, key=report.contributions.get) in ("latency", "errors")


def test_canary_changes_without_restart_and_since_persists() -> None:
    plan = {"v1": (NOW - 1800, NOW, 0.10), "v2": (NOW - 600, NOW, 0.30)}
    src = GeneratedSource({"latency": revisions(plan), "errors": _counts({"v1": (NOW - 1800, NOW, 1.0)})})
    clock = [NOW]
    exp = Exporter(_config(), sources={"gen": src}, clock=lambda: clock[0])
    assert exp.run_cycle()[0].revision == "v2"
    # A third revision is deployed (the config is unchanged): it becomes the canary.
    plan["v3"] = (NOW + 100 - 500, NOW + 100, 0.1)
    clock[0] = NOW + 100
    report = exp.run_cycle()[0]
    assert report.revision == "v3"


def test_full_rollout_compares_with_the_previous_revision() -> None:
    src = GeneratedSource(
        {
            "latency": revisions({"v1": (NOW - 1800, NOW - 900, 0.10), "v2": (NOW - 900, NOW, 0.10)}),
            "errors": _counts({"v1": (NOW - 1800, NOW - 900, 1.0), "v2": (NOW - 900, NOW, 1.0)}),
        }
    )
    report = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW).run_cycle()[0]
    assert report.revision == "v2" and report.verdict == "pass" and report.score == 100.0


def test_time_split_uses_the_deploy_time() -> None:
    def series(start, end, step):
        from exporters.sources import Series

        ts = np.arange(start, end, step)
        rng = np.random.default_rng(3)
        vs = np.where(ts >= NOW - 300, 0.5, 0.1) + rng.normal(0, 0.01, len(ts))
        return [Series({}, ts, vs)]

    src = GeneratedSource({"latency": series, "errors": _counts({"": (NOW - 3600, NOW, 1.0)})})
    src.instant["deploy_time"] = NOW - 300
    cfg = _config(split={"mode": "time", "deploy_time_query": "deploy_time"})
    report = Exporter(cfg, sources={"gen": src}, clock=lambda: NOW).run_cycle()[0]
    assert report.judgement.metrics["latency"].classification == "high"
    assert report.judgement.metrics["errors"].classification == "pass"


def test_source_error_means_insufficient_and_is_counted() -> None:
    src = GeneratedSource({"latency": revisions({"v1": (NOW - 1800, NOW, 0.1)})})  # no "errors" query
    exp = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW)
    (report,) = exp.run_cycle()
    assert report.error and "errors" in report.error and report.verdict == "insufficient"
    assert (
        exp.registry.get_sample_value("smart_rollback_exporter_source_errors_total", {"source": "gen", "kind": "query"})
        == 1.0
    )
    text = generate_latest(_registry_with(exp)).decode()
    assert 'smart_rollback_data_sufficient{cluster="prod-eu"' in text
    assert "smart_rollback_health_score{" not in text.replace("# HELP smart_rollback_health_score", "")


def _registry_with(exp: Exporter) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(HealthCollector(exp.snapshot))
    return reg


def test_collector_series_and_labels() -> None:
    src = GeneratedSource(
        {
            "latency": revisions({"v1": (NOW - 1800, NOW, 0.10), "v2": (NOW - 600, NOW, 0.10)}),
            "errors": _counts({"v1": (NOW - 1800, NOW, 1.0), "v2": (NOW - 600, NOW, 1.0)}),
        }
    )
    exp = Exporter(_config(release="spring"), sources={"gen": src}, clock=lambda: NOW)
    exp.run_cycle()
    reg = _registry_with(exp)
    ident = {
        "platform": "kubernetes",
        "cluster": "prod-eu",
        "namespace": "shop",
        "target": "checkout",
        "component": "checkout",
        "revision": "v2",
        "release": "spring",
    }
    assert reg.get_sample_value("smart_rollback_health_score", ident) == 100.0
    assert reg.get_sample_value("smart_rollback_verdict", {**ident, "verdict": "pass"}) == 1.0
    assert reg.get_sample_value("smart_rollback_verdict", {**ident, "verdict": "fail"}) == 0.0
    assert reg.get_sample_value("smart_rollback_data_sufficient", ident) == 1.0
    assert (
        reg.get_sample_value(
            "smart_rollback_metric_verdict",
            {**ident, "metric": "errors", "critical": "false", "classification": "pass"},
        )
        == 1.0
    )
    assert reg.get_sample_value("smart_rollback_anomaly_score", {**ident, "detector": "ensemble"}) is not None


def test_sharding_is_stable_and_partitions() -> None:
    keys = [f"kubernetes/c/ns/app{i}/app{i}" for i in range(200)]
    shards = [shard_of(k, 3) for k in keys]
    assert shards == [shard_of(k, 3) for k in keys]
    assert set(shards) == {0, 1, 2}
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_targets_of_other_shards_are_not_scored_and_stale_targets_drop(tmp_path) -> None:
    src = GeneratedSource({"latency": revisions({"v1": (NOW - 1800, NOW + 10**6, 0.1)}), "errors": _counts({})})
    targets = tmp_path / "targets.yml"
    names = [f"app{i}" for i in range(12)]

    def write(ns):
        entries = [
            {
                "cluster": "c",
                "namespace": "ns",
                "name": n,
                "source": "gen",
                "step": 15,
                "metrics": [{"name": "latency", "query": "latency"}],
            }
            for n in ns
        ]
        targets.write_text(json.dumps({"targets": entries}))

    write(names)
    cfg = ExporterConfig.model_validate(
        {
            "sources": {"gen": {"type": "prometheus", "url": "http://127.0.0.1:1"}},
            "target_files": [str(targets)],
            "stale_after": 60,
        }
    )
    clock = [NOW]
    scored = set()
    for i in range(3):
        exp = Exporter(cfg, shard=(i, 3), sources={"gen": src}, clock=lambda: clock[0])
        mine = {r.target.name for r in exp.run_cycle()}
        assert not mine & scored
        scored |= mine
    assert scored == set(names)
    exp = Exporter(cfg, sources={"gen": src}, clock=lambda: clock[0])
    exp.run_cycle()
    write(names[:5])  # seven targets removed from the file, no restart
    clock[0] += 30
    exp.run_cycle()
    assert len(exp.snapshot()) == 12  # still within stale_after
    clock[0] += 61
    exp.run_cycle()
    assert sorted(r.target.name for r in exp.snapshot()) == sorted(names[:5])


def test_config_errors_are_clear(tmp_path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        "sources: {p: {type: prometheus}}\n"
        "targets:\n"
        "  - {cluster: c, namespace: n, name: a, source: q, metrics: [{template: no_such_thing}]}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert "needs 'url'" in text and "unknown template 'no_such_thing'" in text
    path.write_text("sources: {d: {type: datadog, api_key_env: DDK, app_key_env: DDA}}\n")
    with pytest.raises(ConfigError, match="environment variable DDK is not set"):
        load_config(path, environ={})
    path.write_text("sources: {p: {type: graphite, url: x}}\n")
    with pytest.raises(ConfigError, match="unknown source type 'graphite'; known: datadog, elasticsearch"):
        load_config(path, environ={})


def test_datadog_sink_matches_the_captured_request(recorder) -> None:
    captured = json.loads((FIXTURES / "datadog-v2-series-request.json").read_text())
    recorder.respond = lambda req: (202, {}, b'{"errors": []}')
    src = GeneratedSource(
        {
            "latency": revisions({"v1": (NOW - 1800, NOW, 0.10), "v2": (NOW - 600, NOW, 0.30)}),
            "errors": _counts({"v1": (NOW - 1800, NOW, 1.0), "v2": (NOW - 600, NOW, 1.0)}),
        }
    )
    exp = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW)
    reports = exp.run_cycle()
    DatadogSeriesSink(api_key="dummy-api-key", host=recorder.url, tags=["env:prod"], clock=lambda: NOW).publish(reports)
    req = recorder.requests[0]
    assert req.method == "POST" and req.path == captured["path"]
    for header in ("Content-Type", "Accept", "DD-API-KEY", "Accept-Encoding"):
        assert req.headers[header] == captured["headers"][header]
    assert req.headers["User-Agent"].startswith("datadog-api-client-python/")
    body = req.json()
    assert set(body) == set(captured["body"])
    ref = captured["body"]["series"][0]
    by_name = {s["metric"]: s for s in body["series"]}
    health = by_name["smart_rollback.health_score"]
    assert set(health) <= set(ref) and health["type"] == ref["type"] == 3
    assert health["points"] == [{"timestamp": int(NOW), "value": health["points"][0]["value"]}]
    assert isinstance(health["points"][0]["timestamp"], int)
    assert "revision:v2" in health["tags"] and "target:checkout" in health["tags"] and "env:prod" in health["tags"]
    assert {s["metric"] for s in body["series"]} >= {
        "smart_rollback.health_score",
        "smart_rollback.data_sufficient",
        "smart_rollback.verdict",
        "smart_rollback.anomaly_score",
    }
    # Which metric failed, as the Prometheus sink tells it: the current classification only (no billed zeros).
    verdicts = {
        tuple(t for t in v["tags"] if t.split(":")[0] in ("metric", "critical", "classification")): v["points"]
        for v in body["series"]
        if v["metric"] == "smart_rollback.metric_verdict"
    }
    assert verdicts[("metric:latency", "critical:false", "classification:high")] == [{"timestamp": NOW, "value": 1.0}]
    assert len(verdicts) == len(reports[0].judgement.metrics)
    [since] = [v for v in body["series"] if v["metric"] == "smart_rollback.metric_failing_since"]
    assert "metric:latency" in since["tags"] and since["points"][0]["value"] == reports[0].explanations[0].since


def test_pushgateway_push(pushgateway) -> None:
    src = GeneratedSource(
        {
            "latency": revisions({"v1": (NOW - 1800, NOW, 0.10), "v2": (NOW - 600, NOW, 0.30)}),
            "errors": _counts({"v1": (NOW - 1800, NOW, 1.0), "v2": (NOW - 600, NOW, 1.0)}),
        }
    )
    exp = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW)
    PushgatewayPusher(pushgateway, job="smart-rollback", grouping={"instance": "exp-0"}).publish(exp.run_cycle())
    text = requests.get(f"{pushgateway}/metrics", timeout=5).text
    lines = [line for line in text.splitlines() if line.startswith("smart_rollback_health_score{")]
    assert len(lines) == 1
    assert 'job="smart-rollback"' in lines[0] and 'instance="exp-0"' in lines[0] and 'revision="v2"' in lines[0]


def test_after_a_rollback_the_revision_serving_again_is_the_canary() -> None:
    # v2 was deployed and rolled back 60 s ago: v1 serves again. v2 is the newest to appear, but the revision
    # still serving (v1) is judged, against v2's last window, so the score recovers at once.
    src = GeneratedSource(
        {
            "latency": revisions({"v1": (NOW - 1800, NOW, 0.10), "v2": (NOW - 600, NOW - 60, 0.30)}),
            "errors": _counts({"v1": (NOW - 1800, NOW, 0.2), "v2": (NOW - 600, NOW - 60, 5.0)}),
        }
    )
    report = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW).run_cycle()[0]
    assert report.revision == "v1"
    assert report.verdict == "pass" and report.score == 100.0


def test_a_revision_deployed_again_after_its_rollback_is_the_canary() -> None:
    # In the 1800 s lookback: v2 serves first (deployed, then rolled back at NOW-1500), v1 serves from then on,
    # and v2 is deployed again as a canary at NOW-240, both serving now. v2 appeared earlier in the lookback than
    # v1, but it is v2 that most recently started serving: it is the canary, and it fails.
    def segments(plan: dict[str, list[tuple[float, float, float]]]):
        def make(start, end, step):
            from exporters.sources import Series

            out = []
            for rev, runs in plan.items():
                ts = np.concatenate([np.arange(max(start, a), min(end, b) + 1e-9, step) for a, b, _ in runs])
                vs = np.concatenate([np.full(len(np.arange(max(start, a), min(end, b) + 1e-9, step)), level)
                                     for a, b, level in runs])  # fmt: skip
                out.append(Series({"revision": rev}, ts, vs + np.random.default_rng(3).normal(0, 0.01, len(ts))))
            return out

        return make

    src = GeneratedSource(
        {
            "latency": segments(
                {"v2": [(NOW - 1800, NOW - 1500, 0.30), (NOW - 240, NOW, 0.30)], "v1": [(NOW - 1500, NOW, 0.10)]}
            ),
            "errors": _counts({"v1": (NOW - 1500, NOW, 0.2), "v2": (NOW - 240, NOW, 5.0)}),
        }
    )
    report = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW).run_cycle()[0]
    assert report.revision == "v2"
    assert report.verdict == "fail"


def _counter_config(**errors) -> ExporterConfig:
    """errors and requests as raw counters (errors per request), plus a latency with no shortcut."""
    return ExporterConfig.model_validate(
        {
            "sources": {"gen": {"type": "prometheus", "url": "http://127.0.0.1:1"}},
            "judge": {"groups": {"errors": 60, "latency": 40}},
            "targets": [
                {
                    "cluster": "prod-eu",
                    "namespace": "shop",
                    "name": "checkout",
                    "source": "gen",
                    "window": 300,
                    "lookback": 1800,
                    "step": 15,
                    "detectors": [],
                    "metrics": [
                        {
                            "name": "errors",
                            "query": "errors_total",
                            "counter": True,
                            "judge": {"group": "errors", "kind": "count", "denominator": "requests"},
                            **errors,
                        },
                        {"name": "requests", "query": "requests_total", "counter": True, "judge": {"muted": True}},
                        {"name": "latency", "query": "latency", "judge": {"group": "latency"}},
                    ],
                }
            ],
        }
    )


def _cumulative(pods: dict[tuple[str, str], tuple[float, float, float, float | None]]):
    """Raw counter series per ``(revision, pod)``: ``(first_seen, value_at_first, per_step, restarted_at)``; a
    restart sets the counter back to zero (then it counts on)."""

    def make(start, end, step):
        from exporters.sources import Series

        out = []
        for (rev, pod), (first, initial, per_step, restart) in pods.items():
            ts = np.arange(max(start, first), end + step / 2, step)
            values = initial + per_step * np.round((ts - first) / step)
            if restart is not None:
                values = np.where(ts >= restart, per_step * (np.round((ts - restart) / step) + 1), values)
            if len(ts):
                out.append(Series({"revision": rev, "pod": pod, "__name__": "x_total"}, ts, values))
        return out

    return make


def test_counters_judge_a_new_revision_on_its_first_scrape() -> None:
    # v1 runs two pods since long before the lookback (one restarts 150 s ago); v2's pod appeared and was
    # scraped once, at NOW: 20 errors in its first 60 requests, against v1's 1 % over the window.
    v1 = {("v1", "a"): (NOW - 7200, 90_000.0, 50.0, None), ("v1", "b"): (NOW - 7200, 70_000.0, 50.0, NOW - 150)}
    v1_errors = {("v1", "a"): (NOW - 7200, 900.0, 0.5, None), ("v1", "b"): (NOW - 7200, 700.0, 0.5, NOW - 150)}
    src = GeneratedSource(
        {
            "requests_total": _cumulative({**v1, ("v2", "c"): (NOW, 60.0, 50.0, None)}),
            "errors_total": _cumulative({**v1_errors, ("v2", "c"): (NOW, 20.0, 10.0, None)}),
            "latency": revisions({"v1": (NOW - 7200, NOW, 0.04), "v2": (NOW - 1, NOW, 0.4)}),
        }
    )
    report = Exporter(_counter_config(), sources={"gen": src}, clock=lambda: NOW).run_cycle()[0]
    assert report.revision == "v2"
    errors = report.judgement.metrics["errors"]
    rate = errors.details["rate_test"]
    # Per-step increases summed over v1's pods across the restart (a drop is a restart from zero); v2's first
    # value is its increase from zero. 20 steps in the 300 s window x 2 pods x 50 requests.
    assert (rate["baseline_exposure"], rate["baseline_events"]) == (2000.0, 20.0)
    assert (rate["canary_exposure"], rate["canary_events"]) == (60.0, 20.0)
    assert errors.classification == "high"
    assert report.judgement.metrics["latency"].classification == "insufficient"
    assert report.verdict == "fail" and report.sufficient and report.score == 40.0


def test_a_counter_without_a_counter_denominator_waits_for_its_second_scrape() -> None:
    # Without a denominator, the span of v2's first value (pod start to first scrape) is unknown: it anchors
    # the next value and counts nothing, as rate() would.
    src = GeneratedSource(
        {
            "requests_total": _cumulative({("v1", "a"): (NOW - 7200, 90_000.0, 50.0, None)}),
            "errors_total": _cumulative(
                {("v1", "a"): (NOW - 7200, 900.0, 0.5, None), ("v2", "c"): (NOW, 20.0, 10.0, None)}
            ),
            "latency": revisions({"v1": (NOW - 7200, NOW, 0.04)}),
        }
    )
    cfg = _counter_config(judge={"group": "errors", "kind": "count"})
    report = Exporter(cfg, sources={"gen": src}, clock=lambda: NOW).run_cycle()[0]
    assert report.revision == "v2"
    assert report.judgement.metrics["errors"].classification == "nodata"
    assert not report.sufficient


def test_a_counter_and_its_denominator_are_both_counters_or_neither() -> None:
    with pytest.raises(ValueError, match="'errors' and its denominator 'requests' must both be counters"):
        _counter_config(counter=False)


def test_a_stopped_baseline_is_judged_on_its_whole_last_window() -> None:
    # v2 served from NOW-500 and was rolled back at NOW-250; v1 serves on. The window (300 s) still holds three
    # of v2's points: they are not the baseline, v2's whole last window (17 points) is.
    src = GeneratedSource(
        {
            "latency": revisions({"v1": (NOW - 1800, NOW, 0.10), "v2": (NOW - 500, NOW - 251, 0.10)}),
            "errors": _counts({"v1": (NOW - 1800, NOW, 1.0), "v2": (NOW - 500, NOW - 251, 1.0)}),
        }
    )
    report = Exporter(_config(), sources={"gen": src}, clock=lambda: NOW).run_cycle()[0]
    assert report.revision == "v1"
    assert report.judgement.metrics["latency"].details["statistics"]["baseline"]["count"] == 17
    assert report.verdict == "pass" and report.sufficient


def _stable_then(level_after: float, *, baseline_ends: float = NOW):
    """v1 (the baseline) at 0.10 s, then ``level_after`` in its last 300 s; v2 (the canary) at 0.10 s since NOW-600."""

    def make(start, end, step):
        from exporters.sources import Series

        rng = np.random.default_rng(3)
        ts1 = np.arange(max(start, NOW - 1800), min(end, baseline_ends) + 1e-9, step)
        v1 = np.where(ts1 > NOW - 300, level_after, 0.10) + rng.normal(0, 0.005, len(ts1))
        ts2 = np.arange(max(start, NOW - 600), end + 1e-9, step)
        return [
            Series({"revision": "v1"}, ts1, v1),
            Series({"revision": "v2"}, ts2, 0.10 + rng.normal(0, 0.005, len(ts2))),
        ]

    return make


@pytest.mark.parametrize(
    ("after", "ends", "expect"),
    [(0.10, NOW, "healthy"), (0.25, NOW, "failing"), (0.10, NOW - 600, "absent")],
    ids=["steady-baseline", "baseline-degrades", "full-rollout"],
)
def test_a_live_baseline_is_scored_against_its_own_previous_window(after: float, ends: float, expect: str) -> None:
    """What a progressive rollback checks between steps: the side taking the traffic back stays as healthy as it
    was. Exported only while the baseline serves with the canary, on sufficient data, under its own revision."""
    src = GeneratedSource({"latency": _stable_then(after, baseline_ends=ends), "errors": _counts({})})
    exp = Exporter(_config(metrics=[{"name": "latency", "query": "latency", "judge": {"group": "latency"}}]),
                   sources={"gen": src}, clock=lambda: NOW)  # fmt: skip
    [report] = exp.run_cycle()
    assert report.revision == "v2"
    reg = CollectorRegistry()
    reg.register(HealthCollector(exp.snapshot))
    lines = [
        line
        for line in generate_latest(reg).decode().splitlines()
        if line.startswith("smart_rollback_baseline_health_score{")
    ]
    if expect == "absent":
        assert report.stable_judgement is None and lines == []
        return
    assert report.stable_revision == "v1" and report.stable_judgement is not None
    [line] = lines
    assert 'revision="v1"' in line and 'target="checkout"' in line
    score = float(line.rsplit(" ", 1)[1])
    assert (score >= 75) if expect == "healthy" else (score < 50), (score, report.stable_judgement.reason)
    # The canary's own score is untouched by its baseline's trouble: the canary is judged against it as before.
    assert report.judgement is not None and report.judgement.metrics["latency"].classification != "high"
