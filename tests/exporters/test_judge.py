"""What the judge adds to Kayenta (rate, spread, sample size, tri-state), its config and the judge CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from exporters.judge import Judge, JudgeConfig, variance_inflation
from exporters.mannwhitney import mann_whitney_many
from tests.conftest import ROOT


def test_kayenta_426_sparse_errors() -> None:
    """Zeros vs [0,1,2,1,0,0]: Kayenta says Pass; we say insufficient, and fail with more data."""
    base, can = {"errors": [0] * 6}, {"errors": [0, 1, 2, 1, 0, 0]}
    kayenta = Judge(JudgeConfig(mode="kayenta")).judge(base, can)
    assert kayenta.metrics["errors"].classification == "pass"
    smart = Judge(JudgeConfig(min_samples=5)).judge(base, can)
    m = smart.metrics["errors"]
    assert m.kind == "count" and m.classification == "insufficient"
    assert "need at least" in m.reason
    rng = np.random.default_rng(0)
    more = Judge().judge({"errors": rng.poisson(0.05, 60)}, {"errors": rng.poisson(0.7, 60)})
    assert more.metrics["errors"].classification == "high"
    assert more.metrics["errors"].details["rate_test"]["outcome"] == "high"


def test_rate_test_with_a_denominator() -> None:
    rng = np.random.default_rng(1)
    cfg = JudgeConfig.model_validate({"metrics": {"errors": {"kind": "count", "denominator": "requests"}}})
    # Canary gets 4x the traffic and 4x the errors: the same error ratio, a pass.
    base = {"errors": rng.poisson(1, 60), "requests": np.full(60, 100.0)}
    can = {"errors": rng.poisson(4, 60), "requests": np.full(60, 400.0)}
    res = Judge(cfg).judge(base, can)
    assert "requests" not in res.metrics
    assert res.metrics["errors"].details["rate_test"]["outcome"] == "pass"


def test_kayenta_780_noisier_canary_same_median() -> None:
    rng = np.random.default_rng(2)
    base = {"latency": 100 + rng.normal(0, 2, 60)}
    can = {"latency": 100 + rng.normal(0, 10, 60)}
    assert Judge(JudgeConfig(mode="kayenta")).judge(base, can).metrics["latency"].classification == "pass"
    m = Judge().judge(base, can).metrics["latency"]
    assert m.classification == "high" and "noisier" in m.reason
    assert m.details["spread_test"]["ratio"] > 1.5


def test_sample_size_gating_and_tri_state() -> None:
    base = {"latency": [1.0, 1.1, 0.9], "cpu": list(np.linspace(1, 2, 30))}
    can = {"latency": [5.0, 5.1, 4.9], "cpu": list(np.linspace(1, 2, 30))}
    res = Judge().judge(base, can)
    assert res.metrics["latency"].classification == "insufficient"
    assert res.verdict == "insufficient" and not res.sufficient
    crit = JudgeConfig.model_validate({"metrics": {"latency": {"critical": True}}})
    res = Judge(crit).judge(base, {**can, "other": [1.0] * 30})
    assert res.verdict == "insufficient" and "critical metric latency" in res.reason
    # Kayenta: a critical metric without data zeroes the score (a fail).
    kay = JudgeConfig.model_validate({"mode": "kayenta", "metrics": {"latency": {"critical": True}}})
    assert Judge(kay).judge({"latency": [1.0]}, {"latency": []}).verdict == "fail"


def test_a_significant_event_rate_fails_before_min_samples() -> None:
    """A count is judged on event totals: one canary interval with enough events decides a fail; too few
    events, or a rate that looks fine, still waits for min_samples (a pass needs the full sample)."""
    cfg = JudgeConfig.model_validate(
        {"min_samples": 2, "metrics": {"errors": {"kind": "count", "denominator": "requests"}}}
    )
    base = {"errors": [0, 0, 1, 0, 0, 0, 0, 0], "requests": [40.0] * 8}
    m = Judge(cfg).judge(base, {"errors": [6], "requests": [20]}).metrics["errors"]
    assert m.classification == "high" and "on 1 canary and 8 baseline points" in m.reason
    assert m.details["rate_test"]["canary_events"] == 6 and m.details["rate_test"]["p_value_high"] < 0.02
    few = Judge(cfg).judge(base, {"errors": [1], "requests": [20]}).metrics["errors"]
    assert few.classification == "insufficient" and "min_samples" in few.reason
    healthy = Judge(cfg).judge(base, {"errors": [1], "requests": [2000]}).metrics["errors"]
    assert healthy.classification == "insufficient" and healthy.details["rate_test"]["outcome"] == "pass"
    # Continuous metrics have no such shortcut: one point is one point.
    lat = Judge(JudgeConfig(min_samples=2)).judge({"latency": [0.1] * 8}, {"latency": [9.0]}).metrics["latency"]
    assert lat.classification == "insufficient"


def test_a_fail_the_missing_metrics_cannot_undo_is_decided() -> None:
    """Errors fail, latency lacks data: with errors weighing 60, the score is at most 40 even if latency
    passes, so the verdict is a fail now; weighing 40, latency could still make it 60: insufficient."""
    metrics = {
        "errors": {"group": "errors", "kind": "count", "denominator": "requests"},
        "latency": {"group": "latency"},
    }
    base = {"errors": [0, 0, 1, 0, 0, 0, 0, 0], "requests": [40.0] * 8, "latency": [0.04] * 8}
    can = {"errors": [6], "requests": [20], "latency": [0.4]}
    heavy = JudgeConfig.model_validate({"min_samples": 2, "groups": {"errors": 60, "latency": 40}, "metrics": metrics})
    res = Judge(heavy).judge(base, can)
    assert res.metrics["latency"].classification == "insufficient"
    assert res.verdict == "fail" and res.sufficient and res.score == 40.0
    assert "at most 40.0 even if latency (no data yet) pass" in res.reason
    light = JudgeConfig.model_validate({"min_samples": 2, "groups": {"errors": 40, "latency": 60}, "metrics": metrics})
    res = Judge(light).judge(base, can)
    assert res.verdict == "insufficient" and not res.sufficient
    # A group holding a failing and a missing metric counts the missing one as passing in the best case.
    both = JudgeConfig.model_validate({"min_samples": 2, "metrics": {**metrics, "latency": {"group": "errors"}}})
    assert Judge(both).judge(base, can).verdict == "insufficient"  # at most 50: marginal is still possible
    # Kayenta mode keeps Kayenta's rules (50 % without data: a fail with score 0).
    kay = Judge(JudgeConfig.model_validate({"mode": "kayenta", "min_samples": 2, "metrics": metrics}))
    assert kay.judge(base, can).score == 0.0


def test_groups_weights_and_thresholds() -> None:
    rng = np.random.default_rng(3)
    cfg = JudgeConfig.model_validate(
        {
            "groups": {"latency": 60, "errors": 40},
            "thresholds": {"pass": 90, "marginal": 50},
            "metrics": {"p99": {"group": "latency"}, "p50": {"group": "latency"}, "e": {"group": "errors"}},
        }
    )
    base = {n: 10 + rng.normal(0, 1, 60) for n in ("p99", "p50", "e")}
    can = {"p99": 20 + rng.normal(0, 1, 60), "p50": 10 + rng.normal(0, 1, 60), "e": 10 + rng.normal(0, 1, 60)}
    res = Judge(cfg).judge(base, can)
    assert res.groups["latency"]["score"] == 50.0 and res.groups["errors"]["score"] == 100.0
    assert res.score == 70.0 and res.verdict == "marginal"
    crit = JudgeConfig.model_validate({"metrics": {"p99": {"critical": True}}})
    res = Judge(crit).judge(base, can)
    assert res.score == 0.0 and res.verdict == "fail" and "critical" in res.reason


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValidationError, match="sum to 120"):
        JudgeConfig.model_validate({"groups": {"a": 60, "b": 60}})
    with pytest.raises(ValidationError, match="direction"):
        JudgeConfig.model_validate({"metrics": {"x": {"direction": "up"}}})
    with pytest.raises(ValidationError, match="marginal"):
        JudgeConfig.model_validate({"thresholds": {"pass": 50, "marginal": 70}})


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_judge_cli(tmp_path) -> None:
    rng = np.random.default_rng(4)
    base, can = tmp_path / "b.csv", tmp_path / "c.csv"
    rows_b = ["timestamp,latency,errors"] + [f"{i},{100 + rng.normal(0, 3):.3f},{rng.poisson(0.2)}" for i in range(60)]
    rows_c = ["timestamp,latency,errors"] + [f"{i},{130 + rng.normal(0, 3):.3f},{rng.poisson(0.2)}" for i in range(60)]
    base.write_text("\n".join(rows_b) + "\n")
    can.write_text("\n".join(rows_c) + "\n")
    proc = _run("judge", "--baseline", str(base), "--canary", str(can))
    assert proc.returncode == 3, proc.stderr  # one of two metrics fails: score 50 -> marginal
    out = json.loads(proc.stdout)
    assert set(out) >= {"score", "verdict", "metrics", "groups"}
    assert out["verdict"] == "marginal" and out["score"] == 50.0
    assert out["metrics"]["latency"]["classification"] == "high"
    assert out["metrics"]["errors"]["kind"] == "count"
    assert "timestamp" not in out["metrics"]
    assert "reason" in out["metrics"]["latency"] and "mann_whitney" in out["metrics"]["latency"]
    cfg = tmp_path / "judge.yml"
    cfg.write_text("metrics:\n  latency: {direction: decrease}\n")
    proc = _run("judge", "--baseline", str(base), "--canary", str(can), "--config", str(cfg))
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"] == "pass"
    cfg.write_text("metrics:\n  latency: {direction: sideways}\n")
    proc = _run("judge", "--baseline", str(base), "--canary", str(can), "--config", str(cfg))
    assert proc.returncode == 2 and "metrics.latency" in proc.stderr and "direction" in proc.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("latency\n1\nfast\n")
    proc = _run("judge", "--baseline", str(bad), "--canary", str(can))
    assert proc.returncode == 2 and "bad.csv:3" in proc.stderr and "'fast'" in proc.stderr


@pytest.mark.parametrize("mode", ["smart", "kayenta"])
def test_vectorised_path_agrees_with_the_general_path(mode: str) -> None:
    rng = np.random.default_rng(5)
    pairs = []
    for t in range(30):
        base = {f"m{j}": 100 + rng.normal(0, 5, 40) for j in range(6)}
        can = {f"m{j}": 100 * (1 + 0.1 * ((t + j) % 3)) + rng.normal(0, 5 * (1 + (t % 2)), 40) for j in range(6)}
        base["same"], can["same"] = np.ones(40), np.ones(40)
        base["ints"], can["ints"] = rng.poisson(2, 40).astype(float), rng.poisson(3, 40).astype(float)
        base["smooth"], can["smooth"] = _overlapping(rng, 40), _overlapping(rng, 40, 1 + 0.05 * (t % 4))
        pairs.append((base, can))
    cfg = JudgeConfig(mode=mode)
    fast = Judge(cfg).judge_many(pairs)
    slow = Judge(cfg, vectorised=False).judge_many(pairs)
    assert [j.as_dict() for j in fast] == [j.as_dict() for j in slow]


def _overlapping(rng: np.random.Generator, n: int, scale: float = 1.0, width: int = 3) -> np.ndarray:
    """What ``rate(x[3m])`` sampled every minute gives: each point averages ``width`` independent intervals."""
    raw = rng.normal(100.0, 10.0, n + width - 1)
    return scale * np.convolve(raw, np.ones(width) / width, mode="valid")


def _false_positives(cfg: JudgeConfig, draw, runs: int = 400) -> float:
    rng = np.random.default_rng(11)
    pairs = [({"latency": draw(rng)}, {"latency": draw(rng)}) for _ in range(runs)]
    judged = Judge(cfg).judge_many(pairs)
    return sum(j.metrics["latency"].classification != "pass" for j in judged) / runs


@pytest.mark.parametrize("n", [8, 30])
def test_overlapping_windows_do_not_inflate_false_positives(n: int) -> None:
    """Healthy canaries whose points share their rate() windows: the correction keeps the false-positive rate
    near what independent points give; Kayenta's independence assumption fails them several times as often."""
    draw = lambda rng: _overlapping(rng, n)  # noqa: E731
    independent = _false_positives(JudgeConfig(min_samples=2), lambda rng: rng.normal(100.0, 10.0, n))
    corrected = _false_positives(JudgeConfig(min_samples=2), draw)
    assumed = _false_positives(JudgeConfig(min_samples=2, serial_correlation=False), draw)
    assert assumed >= 0.06 and assumed >= 3 * corrected, (assumed, corrected)
    assert corrected <= max(0.03, 2 * independent), (corrected, independent)


def test_a_real_regression_on_overlapping_windows_still_fails() -> None:
    rng = np.random.default_rng(3)
    judge = Judge(JudgeConfig(min_samples=2))
    for n in (8, 30):
        verdict = judge.judge({"latency": _overlapping(rng, n)}, {"latency": _overlapping(rng, n, 1.5)})
        m = verdict.metrics["latency"]
        assert m.classification == "high", m.reason
        assert m.details["mann_whitney"]["variance_inflation"] > 1.5


def test_variance_inflation_estimates() -> None:
    rng = np.random.default_rng(0)
    iid = variance_inflation(rng.normal(size=(500, 60)), rng.normal(size=(500, 60)))
    assert 0.99 < float(np.median(iid)) < 1.1
    smooth = np.array([_overlapping(rng, 60) for _ in range(200)])
    f = variance_inflation(smooth[:100], smooth[100:])
    # A 3-point moving average has variance inflation 1 + 2 (2/3 + 1/3) = 3 for a mean.
    assert 2.2 < float(np.median(f)) < 3.8, np.median(f)
    trend = np.arange(30.0)[None, :]
    assert variance_inflation(trend, trend)[0] > 7.5
    # Ties share their average rank: a flat side is no trend (ordinal ranks would read 0, 1, 2... as one).
    flat = variance_inflation(rng.normal(size=(200, 30)), np.zeros((200, 30)))
    assert float(np.median(flat)) < 1.1, np.median(flat)
    quantized = np.round(rng.normal(size=(400, 30)))
    assert float(np.median(variance_inflation(quantized[:200], quantized[200:]))) < 1.1
    walks = np.cumsum(rng.normal(size=(400, 6)), axis=1)
    f = variance_inflation(walks[:200], walks[200:])
    assert f.min() >= 1.0 and f.max() <= 3.0  # at least two effective points per side
    assert variance_inflation(np.ones((1, 2)), np.ones((1, 2)))[0] == 1.0  # too short to estimate


def test_mann_whitney_inflation_widens_the_interval() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(1.0, 1.0, 20), rng.normal(0.0, 1.0, 20)
    plain, same, wide = mann_whitney_many([(x, y), (x, y), (x, y)], 0.98, [1.0, 1.0, 3.0])
    assert plain == same and wide.estimate == plain.estimate
    assert wide.lower < plain.lower and wide.upper > plain.upper and wide.p_value > plain.p_value
    with pytest.raises(ValueError, match="one factor per pair"):
        mann_whitney_many([(x, y)], 0.98, [1.0, 2.0])


def test_kayenta_mode_keeps_the_independence_assumption() -> None:
    rng = np.random.default_rng(2)
    base, can = {"latency": _overlapping(rng, 30)}, {"latency": _overlapping(rng, 30, 1.1)}
    kayenta = Judge(JudgeConfig(mode="kayenta")).judge(base, can).metrics["latency"]
    off = Judge(JudgeConfig(serial_correlation=False)).judge(base, can).metrics["latency"]
    assert "variance_inflation" not in kayenta.details["mann_whitney"]
    assert kayenta.details["mann_whitney"] == off.details["mann_whitney"]
