"""The default streaming detector: novelty of short-term means over several time scales, with suppression.

Why this design (measured on NAB's realAWSCloudwatch series, see benchmarks/RESULTS.md):

* Operational metrics repeat their spikes (cron jobs, backups): a value inside the range the series has
  already shown is rarely an incident. So the core statistic is *novelty*: how far the mean of the last
  ``w`` points lies beyond the highest (or lowest) such mean seen in the preceding ``history`` points,
  in units of that history's range. A new level (a deploy doubling CPU) or a larger-than-ever spike scores
  high; the thousandth nightly spike scores zero.
* Several scales ``w`` catch both sharp spikes (w = 1) and slow level drifts (w = 24 at 5-minute points =
  2 hours), the ensemble takes the maximum.
* One incident should raise one alarm: after a score crosses ``level`` further scores are damped for
  ``suppress`` points unless the novelty grows by ``escalation`` times (a second, larger anomaly).

Everything is trailing-window arithmetic, so the score of row i depends on rows <= i only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd


@dataclass
class NoveltyEnsemble:
    name: ClassVar[str] = "ensemble"
    #: Lengths (points) of the trailing means compared with history.
    scales: tuple[int, ...] = (1, 6, 24)
    #: Points of history each mean is compared with (excluding the points being averaged).
    history: int = 1000
    #: Points of history needed before scoring at all.
    min_history: int = 30
    #: Steepness of the novelty -> score map.
    gain: float = 3.0
    #: Score that counts as an alarm for suppression purposes.
    level: float = 0.6
    #: Points after an alarm during which scores are damped.
    suppress: int = 100
    #: Factor applied to damped scores.
    damping: float = 0.5
    #: A damped period is broken by a novelty this many times the alarm's.
    escalation: float = 3.0
    _eps: float = field(default=1e-6, repr=False)

    def novelty(self, values: np.ndarray) -> np.ndarray:
        """Raw novelty per row: > 0 beyond the historical range (in range units), <= 0 inside it."""
        s = pd.Series(np.asarray(values, dtype=float))
        best = np.full(len(s), -np.inf)
        for w in self.scales:
            m = s.rolling(w, min_periods=w).mean()
            past = m.shift(w).rolling(self.history, min_periods=self.min_history)
            hi, lo = past.max(), past.min()
            span = np.maximum((hi - lo).to_numpy(), self._eps * np.maximum(np.abs(hi.to_numpy()), 1.0))
            up = (m.to_numpy() - hi.to_numpy()) / span
            down = (lo.to_numpy() - m.to_numpy()) / span
            nov = np.nan_to_num(np.maximum(up, down), nan=-np.inf)
            best = np.maximum(best, nov)
        return best

    def score(self, values: np.ndarray) -> np.ndarray:
        raw = self.novelty(values)
        inside = np.exp(np.clip(np.where(np.isfinite(raw), raw, -50.0), -50.0, 0.0) * 3.0)
        beyond = 1.0 - np.exp(-self.gain * np.maximum(raw, 0.0))
        scores = np.where(raw > 0, 0.5 + 0.5 * beyond, 0.5 * inside)
        scores = np.where(np.isfinite(raw), scores, 0.0)
        return self._suppress(scores, raw)

    def _suppress(self, scores: np.ndarray, raw: np.ndarray) -> np.ndarray:
        out = scores.copy()
        last, last_raw = -(10**12), 0.0
        for t in range(len(scores)):
            if t - last < self.suppress:
                if raw[t] > self.escalation * last_raw and scores[t] >= self.level:
                    last, last_raw = t, float(raw[t])
                else:
                    out[t] *= self.damping
            elif scores[t] >= self.level:
                last, last_raw = t, float(raw[t])
        return np.clip(out, 0.0, 1.0)
