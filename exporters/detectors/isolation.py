"""Isolation Forest over a target's multivariate metric vector, with per-metric contributions.

Trained on the baseline (or history) rows, it scores the newest canary vector. The score is the original
paper's ``s(x) = 2^(-E[h(x)] / c(n))`` in (0, 1] (scikit-learn's ``-score_samples``): about 0.5 for
ordinary points, towards 1 for points that isolate quickly. Contributions are measured by occlusion:
how much the score drops when one metric is replaced by its training median, so the explanation names
the metrics that made the vector unusual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IsolationResult:
    score: float
    contributions: dict[str, float]
    trained_on: int


class IsolationScorer:
    name = "isolation_forest"

    def __init__(self, *, n_estimators: int = 100, seed: int = 0, min_rows: int = 16) -> None:
        self.n_estimators = n_estimators
        self.seed = seed
        self.min_rows = min_rows

    def score(self, names: Sequence[str], train: np.ndarray, current: np.ndarray) -> IsolationResult | None:
        """Score ``current`` (one row, or several: the newest counts) against ``train`` (rows x metrics)."""
        from sklearn.ensemble import IsolationForest

        train = np.asarray(train, dtype=float)
        current = np.atleast_2d(np.asarray(current, dtype=float))
        keep = ~np.isnan(train).any(axis=1)
        train = train[keep]
        if len(train) < self.min_rows or current.size == 0:
            return None
        medians = np.median(train, axis=0)
        current = np.where(np.isnan(current), medians, current)
        # Scale by the training spread so no metric dominates by its unit.
        spread = np.percentile(train, 75, axis=0) - np.percentile(train, 25, axis=0)
        spread = np.where(spread > 0, spread, np.maximum(np.abs(medians), 1.0))
        z_train = (train - medians) / spread
        z_now = (current[-1] - medians) / spread
        forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(z_train)
        occluded = np.repeat(z_now[None, :], len(names) + 1, axis=0)
        for j in range(len(names)):
            occluded[j + 1, j] = 0.0
        scores = -forest.score_samples(occluded)
        base = float(scores[0])
        drops = np.maximum(base - scores[1:], 0.0)
        total = float(drops.sum())
        contributions = {
            n: (float(d) / total if total > 0 else 0.0) for n, d in zip(names, drops, strict=True)
        }
        return IsolationResult(
            score=min(max(base, 0.0), 1.0), contributions=contributions, trained_on=len(train)
        )
