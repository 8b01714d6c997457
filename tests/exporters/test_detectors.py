"""Detectors: causality (prefix property), ranges, Isolation Forest, breach forecasts, catalogue."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import yaml

from exporters.catalogue import CATALOGUE, render_template
from exporters.detectors import DETECTORS, get_detector
from exporters.detectors.ensemble import NoveltyEnsemble, _rolling_extreme
from exporters.detectors.forecast import predict_breach
from exporters.detectors.isolation import IsolationScorer
from tests.conftest import FIXTURES, ROOT

NAB = FIXTURES / "nab_ec2_cpu_utilization_825cc2_head1200.csv"


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_scores_are_causal_and_in_range(name: str) -> None:
    values = np.loadtxt(NAB, delimiter=",", skiprows=1, usecols=1)
    full = get_detector(name).score(values)
    assert full.shape == values.shape and np.all((full >= 0) & (full <= 1))
    for cut in (50, 333, 800, len(values) - 1):
        np.testing.assert_array_equal(get_detector(name).score(values[:cut]), full[:cut])


def test_detect_cli_prefix_property(tmp_path) -> None:
    prefix = tmp_path / "prefix.csv"
    lines = NAB.read_text().splitlines()
    prefix.write_text("\n".join(lines[:701]) + "\n")
    outs = []
    for src in (NAB, prefix):
        out = tmp_path / f"out-{src.name}"
        proc = subprocess.run(
            [sys.executable, "-m", "reactor", "detect", "--input", str(src), "--output", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        with out.open() as fh:
            outs.append(list(csv.reader(fh)))
    full, part = outs
    assert full[0] == ["timestamp", "value", "anomaly_score"]
    assert len(full) == len(lines) and len(part) == 701
    assert part == full[:701]
    assert all(0.0 <= float(r[2]) <= 1.0 for r in full[1:])


def test_detect_cli_unknown_detector(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reactor",
            "detect",
            "--input",
            str(NAB),
            "--output",
            str(tmp_path / "o.csv"),
            "--detector",
            "magic",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown detector 'magic'; known: ensemble" in proc.stderr


def test_ensemble_flags_a_new_level_once() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([10 + rng.normal(0, 1, 600), 30 + rng.normal(0, 1, 200)])
    scores = get_detector("ensemble").score(values)
    assert scores[300:590].max() < 0.75
    assert scores[600:606].max() > 0.8
    assert (scores[610:] > 0.6).sum() < 5


def _incident_series() -> np.ndarray:
    """Noise around 10, a daily spike to 15, a past incident (one-off spikes to 40 and 30), then 25 at 2600."""
    rng = np.random.default_rng(3)
    x = 10 + rng.normal(0, 0.5, 3000)
    x[np.arange(100, 3000, 288)] += 5
    x[1200], x[1500], x[2600] = 40.0, 30.0, 25.0
    return x


def test_one_off_outliers_do_not_mask_a_later_anomaly() -> None:
    # NAB's rds_cpu_utilization_cc0c53 has this shape: its second labelled spike is below the first incident.
    x = _incident_series()
    new, plain = NoveltyEnsemble().score(x), NoveltyEnsemble(outlier_every=0).score(x)
    assert new[2600] > 0.9 and plain[2600] < 0.5
    quiet = np.ones(len(x), dtype=bool)
    quiet[:1000] = False  # before 1,000 points of history the plain extremes apply anyway
    for incident in (1200, 1500, 2600):
        quiet[incident : incident + 60] = False
    assert new[quiet].max() < 0.6  # the daily spike (recurring) stays normal


def test_rolling_extreme_ignores_one_value_per_outlier_every_points() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(700, 3))
    a[rng.random(a.shape) < 0.1] = np.nan
    a[:150, 2] = np.nan  # a shorter series, front-padded as score_many does
    for maximum in (True, False):
        got = _rolling_extreme(a, 250, 30, maximum=maximum, outlier_every=60)
        for t in range(len(a)):
            for j in range(a.shape[1]):
                win = a[max(0, t - 249) : t + 1, j]
                win = win[np.isfinite(win)]
                if len(win) < 30:
                    assert np.isnan(got[t, j])
                    continue
                k = 1 + len(win) // 60  # up to 5 here
                assert got[t, j] == sorted(win, reverse=maximum)[k - 1]


def test_ensemble_is_causal_deterministic_and_batch_consistent_with_outlier_ranks() -> None:
    x = _incident_series()
    det = get_detector("ensemble")
    full = det.score(x)
    np.testing.assert_array_equal(det.score(x), full)
    for cut in (999, 1000, 1001, 2100, 2601):
        np.testing.assert_array_equal(det.score(x[:cut]), full[:cut])
    parts = [x, x[:1500], x[700:]]
    for batched, single in zip(NoveltyEnsemble().score_many(parts), parts, strict=True):
        np.testing.assert_array_equal(batched, det.score(single))


def test_ensemble_rejects_an_outlier_every_that_ignores_all_history() -> None:
    with pytest.raises(ValueError, match="outlier_every=1 would ignore every point of history"):
        NoveltyEnsemble(outlier_every=1)


def test_isolation_forest_names_the_shifted_metric() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, (200, 3))
    res = IsolationScorer().score(["latency", "errors", "cpu"], train, np.array([[0.1, 6.0, -0.2]]))
    assert res is not None and res.score > 0.55
    assert max(res.contributions, key=res.contributions.get) == "errors"
    normal = IsolationScorer().score(["latency", "errors", "cpu"], train, np.array([[0.0, 0.0, 0.0]]))
    assert normal is not None and normal.score < res.score - 0.1


def test_breach_forecast_on_a_trend() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(200)
    values = 0.5 + 0.002 * t + rng.normal(0, 0.003, len(t))  # reaches 0.9 at t = 200
    fc = predict_breach(values, 15.0, 0.9, horizon=400)
    assert fc is not None and fc.seconds is not None
    assert 0 < fc.seconds < 400 * 15
    assert fc.early is not None and fc.early <= fc.seconds
    assert fc.late is None or fc.late >= fc.seconds
    flat = predict_breach(0.5 + rng.normal(0, 0.003, 200), 15.0, 0.9, horizon=100)
    assert flat is not None and flat.seconds is None


def test_breach_forecast_with_season() -> None:
    t = np.arange(24 * 8)
    values = 0.5 + 0.1 * np.sin(2 * np.pi * t / 24) + 0.0005 * t
    fc = predict_breach(values, 3600.0, 0.75, season_length=24, horizon=24 * 5)
    assert fc is not None and fc.model == "ETS(A,Ad,A)"


def test_catalogue_has_50_templates_that_promtool_accepts(tmp_path) -> None:
    assert len(CATALOGUE) >= 50
    families = {t.family for t in CATALOGUE.values()}
    assert {
        "kube-state-metrics",
        "cadvisor",
        "istio",
        "nginx-ingress",
        "node-exporter",
        "business",
    } <= families
    params = {
        "metric": "orders_total",
        "completed": "checkouts_completed_total",
        "started": "checkouts_started_total",
        "failed": "payments_failed_total",
        "attempted": "payments_total",
        "abandoned": "carts_abandoned_total",
        "created": "carts_created_total",
        "finished": "jobs_finished_total",
        "empty": "search_empty_total",
        "total": "search_total",
        "namespace": "shop",
        "name": "checkout",
    }
    rules = []
    for name in sorted(CATALOGUE):
        for mode in ("label", "time"):
            rules.append({"record": f"sr:{name}:{mode}", "expr": render_template(name, params, mode=mode)})
    path = tmp_path / "catalogue_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "catalogue", "rules": rules}]}))
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with pytest.raises(ValueError, match="needs params"):
        render_template("orders_per_second", {"namespace": "a", "name": "b"})
