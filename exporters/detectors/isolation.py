"""Isolation Forest over a target's multivariate metric vector, with per-metric contributions.

Trained on the baseline (or history) rows, it scores the newest canary vector. The score is the original
paper's ``s(x) = 2^(-E[h(x)] / c(n))`` in (0, 1] (scikit-learn's ``-score_samples``): about 0.5 for
ordinary points, towards 1 for points that isolate quickly. Contributions are measured by occlusion:
how much the score drops when one metric is replaced by its training median, so the explanation names
the metrics that made the vector unusual.

Fitting costs about a millisecond per tree, so the exporter keeps each target's model and refits it only
when the canary revision changes or the model is older than ``isolation_refit`` seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IsolationResult:
    score: float
    contributions: dict[str, float]
    trained_on: int


class IsolationScorer:
    name = "isolation_forest"

    def __init__(self, *, n_estimators: int = 50, seed: int = 0, min_rows: int = 16) -> None:
        self.n_estimators = n_estimators
        self.seed = seed
        self.min_rows = min_rows

    def fit(self, train: np.ndarray) -> _Model | None:
        """A forest on the complete rows of ``train`` (rows x metrics), scaled by their spread."""
        from sklearn.ensemble import IsolationForest

        train = np.asarray(train, dtype=float)
        train = train[~np.isnan(train).any(axis=1)]
        if len(train) < self.min_rows:
            return None
        medians = np.median(train, axis=0)
        # Scale by the training spread so no metric dominates by its unit.
        spread = np.percentile(train, 75, axis=0) - np.percentile(train, 25, axis=0)
        spread = np.where(spread > 0, spread, np.maximum(np.abs(medians), 1.0))
        forest = IsolationForest(
            n_estimators=self.n_estimators, max_samples=min(256, len(train)), random_state=self.seed
        ).fit((train - medians) / spread)
        return _Model(forest, medians, spread, len(train))

    def explain(self, model: _Model, names: Sequence[str], current: np.ndarray) -> IsolationResult:
        """Score the newest row of ``current`` and attribute the score to metrics by occlusion."""
        current = np.atleast_2d(np.asarray(current, dtype=float))
        row = np.where(np.isnan(current[-1]), model.medians, current[-1])
        z_now = (row - model.medians) / model.spread
        occluded = np.repeat(z_now[None, :], len(names) + 1, axis=0)
        for j in range(len(names)):
            occluded[j + 1, j] = 0.0
        scores = -model.forest.score_samples(occluded)
        base = float(scores[0])
        drops = np.maximum(base - scores[1:], 0.0)
        total = float(drops.sum())
        contributions = {n: (float(d) / total if total > 0 else 0.0) for n, d in zip(names, drops, strict=True)}
        return IsolationResult(score=min(max(base, 0.0), 1.0), contributions=contributions, trained_on=model.rows)

    def score(self, names: Sequence[str], train: np.ndarray, current: np.ndarray) -> IsolationResult | None:
        """Fit on ``train`` and explain the newest row of ``current`` (one call; see fit/explain to reuse)."""
        if np.asarray(current).size == 0:
            return None
        model = self.fit(train)
        return None if model is None else self.explain(model, names, current)


@dataclass(frozen=True)
class _Model:
    forest: Any
    medians: np.ndarray
    spread: np.ndarray
    rows: int
