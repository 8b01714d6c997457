"""Golden tests: Kayenta's own ClassifierSuite / MannWhitneySuite vectors, judged in ``mode: kayenta``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import ndtri
from scipy.stats import rankdata

from exporters.judge import Judge, JudgeConfig
from exporters.mannwhitney import mann_whitney

VECTORS = json.loads((Path(__file__).parent / "data" / "kayenta_vectors.json").read_text())


def _config(case: dict) -> JudgeConfig:
    effect: dict = {"measure": case["measure"]}
    if "allowed" in case:
        effect["allowedIncrease"] = case["allowed"]["increase"]
        effect["allowedDecrease"] = case["allowed"]["decrease"]
    if "critical_bounds" in case:
        effect["criticalIncrease"] = case["critical_bounds"]["increase"]
        effect["criticalDecrease"] = case["critical_bounds"]["decrease"]
    return JudgeConfig.model_validate(
        {
            "mode": "kayenta",
            "confidence": case["confidence"],
            "tolerance": case["tolerance"],
            "defaults": {
                "direction": case["direction"],
                "kind": "continuous",
                "critical": case["critical"],
                "nanStrategy": case["nan_strategy"],
                "effectSize": effect,
            },
        }
    )


@pytest.mark.parametrize("case", VECTORS["classifier"], ids=[c["name"] for c in VECTORS["classifier"]])
def test_classifier_suite(case: dict) -> None:
    result = Judge(_config(case)).judge({"m": case["control"]}, {"m": case["experiment"]}).metrics["m"]
    assert result.classification == case["expect"], result.reason
    if "expect_critical" in case:
        assert result.critical is case["expect_critical"]
    if case.get("expect_deviation") == "nan":
        assert result.details["mean_ratio"] is None
    elif "expect_deviation" in case:
        assert result.details["mean_ratio"] == case["expect_deviation"]
    assert result.reason


@pytest.mark.parametrize("case", VECTORS["mann_whitney"], ids=[c["name"] for c in VECTORS["mann_whitney"]])
def test_mann_whitney_suite(case: dict) -> None:
    res = mann_whitney(np.array(case["experiment"]), np.array(case["control"]), case["confidence"])
    assert res.lower == pytest.approx(case["ci"][0], abs=1e-6)
    assert res.upper == pytest.approx(case["ci"][1], abs=1e-6)
    assert res.estimate == pytest.approx(case["estimate"], abs=1e-6)


def _w(x: np.ndarray, y: np.ndarray, mu: float) -> float:
    """R's wdiff(): the standardised, tie- and continuity-corrected rank sum of x - mu against y."""
    ranks = rankdata(np.concatenate([x - mu, y]))
    nx, ny = len(x), len(y)
    dz = ranks[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
    _, t = np.unique(ranks, return_counts=True)
    sigma = math.sqrt(nx * ny / 12 * ((nx + ny + 1) - (t**3 - t).sum() / ((nx + ny) * (nx + ny - 1))))
    return (dz - 0.5 * np.sign(dz)) / sigma


def _root_solver_ci(x: np.ndarray, y: np.ndarray, conf: float) -> tuple[float, float]:
    """The interval as Kayenta computes it: a bracketing root solver on W(mu) = +-z."""
    z = -ndtri((1 - conf) / 2)
    lo, hi = x.min() - y.max(), x.max() - y.min()

    def root(q: float) -> float:
        if _w(x, y, lo) - q <= 0:
            return lo
        if _w(x, y, hi) - q >= 0:
            return hi
        return brentq(lambda m: _w(x, y, m) - q, lo, hi, xtol=1e-12)

    return root(z), root(-z)


@pytest.mark.parametrize("seed", range(12))
def test_selection_matches_root_solver(seed: int) -> None:
    """The order-statistic shortcut gives the roots a solver finds, with and without ties."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.2 * seed, 1.0, int(rng.integers(4, 45)))
    y = rng.normal(0.0, 1.0, int(rng.integers(4, 45)))
    if seed % 2:
        x, y = np.round(x, 1), np.round(y, 1)
    lower, upper = _root_solver_ci(x, y, 0.98)
    res = mann_whitney(x, y, 0.98)
    assert res.lower == pytest.approx(lower, abs=1e-7)
    assert res.upper == pytest.approx(upper, abs=1e-7)
