"""The default streaming detector: novelty of level and of volatility over several time scales.

Why this design (measured on NAB's realAWSCloudwatch series, see benchmarks/RESULTS.md):

* Operational metrics repeat their spikes (cron jobs, backups): a value inside the range the series has
  already shown is rarely an incident. So the core statistic is *novelty*: how far the mean of the last
  ``w`` points lies beyond the highest (or lowest) such mean seen in the preceding ``history`` points,
  in units of that history's range. A new level (a deploy doubling CPU) or a larger-than-ever spike scores
  high; the thousandth nightly spike scores zero.
* Several scales ``w`` catch sharp spikes (w = 1) and slow level drifts (w = 24 at 5-minute points =
  2 hours). A second family measures the novelty of *volatility* (mean absolute point-to-point change over
  ``volatility_scales``): a service that starts flapping without changing its average (a regime change).
  The ensemble takes the maximum over all channels.
* A one-off extreme must not define "normal" for weeks: after a 25 % CPU spike, a later spike to 19 % in a
  regime that never exceeded 17 % is still an anomaly. So the reference is not the plain maximum (minimum)
  of the history but its k-th largest (smallest) value, ``k = 1 + points of history // outlier_every``:
  one isolated outlier per ``outlier_every`` points (0.1 %) is ignored, while anything that recurs more
  often (a daily backup spike) still counts as normal. Short histories (below ``outlier_every`` points,
  e.g. the exporter's 400-point windows) keep the plain extremes.
* One incident should raise one alarm: after a score crosses ``level`` further scores are damped for
  ``suppress`` points unless the novelty grows by ``escalation`` times (a second, larger anomaly).

Tried on NAB and not adopted (standard profile; this design scores 75.3). Scale-free channels scored higher
for the wrong reason: a 12-point rolling median (78.4) and a KS test of the last 24 points against the
previous 288 (79.0) "found" ec2_cpu_utilization_24ae8d's second window only through the 0.002-point
quantisation of an idle CPU series (values 0.132 / 0.134 %): a median flipping to 0.1 on the window's first
row, a change in the mix of the two lattice values 63 points after the labelled blip (the KS test's other
extra window, in iio_us-east-1_i-a2eb1cd9_NetworkIn, came 26 points after the spike, worth 0.24 of a
detection). On a real idle instance such channels would page someone for nothing. A trimmed 6-point mean
(74.7), a Welch-t mean-shift channel (73.7-74.4), a same-time-yesterday residual (75.1), summing channels
(75.4) or weighting the maximum by how many channels agree (75.6) were no better, or not by enough to
justify a parameter; shorter histories (300 / 600 / 1,000 points) find no more windows and raise 80 / 33 /
15 false positives (64.2 / 69.5 / 72.1).

Everything is trailing-window arithmetic, so the score of row i depends on rows <= i only. Many series are
scored at once by :meth:`NoveltyEnsemble.score_many` (columns of one frame), which the exporter uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d, rank_filter


@dataclass
class NoveltyEnsemble:
    name: ClassVar[str] = "ensemble"
    #: Lengths (points) of the trailing means compared with history.
    scales: tuple[int, ...] = (1, 6, 24)
    #: Lengths of the trailing mean absolute changes (volatility) compared with history.
    volatility_scales: tuple[int, ...] = (12, 48)
    #: Points of history each statistic is compared with (excluding the points it covers): two weeks of
    #: 5-minute points, so weekly patterns are part of "normal".
    history: int = 4032
    #: One isolated outlier per this many points of history is ignored when taking the reference extremes
    #: (k-th largest / smallest with k = 1 + history points // outlier_every); 0 uses the plain extremes.
    outlier_every: int = 1000
    #: Points of history needed before scoring at all.
    min_history: int = 30
    #: Steepness of the novelty -> score map.
    gain: float = 3.0
    #: Score that counts as an alarm for suppression purposes.
    level: float = 0.6
    #: Points after an alarm during which scores are damped.
    suppress: int = 50
    #: Factor applied to damped scores.
    damping: float = 0.5
    #: A damped period is broken by a novelty this many times the alarm's.
    escalation: float = 3.0

    def __post_init__(self) -> None:
        if self.outlier_every == 1 or self.outlier_every < 0:
            raise ValueError(
                f"outlier_every={self.outlier_every} would ignore every point of history; "
                "use 0 (plain extremes) or a number of points >= 2 (default 1000)"
            )

    def _novelty(self, stat: np.ndarray, w: int, up_only: bool) -> np.ndarray:
        past = _shift(stat, w)
        every = self.outlier_every
        hi = _rolling_extreme(past, self.history, self.min_history, maximum=True, outlier_every=every)
        lo = _rolling_extreme(past, self.history, self.min_history, maximum=False, outlier_every=every)
        span = np.maximum(hi - lo, 1e-6 * np.maximum(np.abs(hi), 1.0))
        with np.errstate(invalid="ignore"):
            nov = (stat - hi) / span
            if not up_only:
                nov = np.fmax(nov, (lo - stat) / span)
        return np.nan_to_num(nov, nan=-np.inf)

    def novelty(self, block: np.ndarray) -> np.ndarray:
        """Raw novelty per row and column: > 0 beyond the historical range (in range units)."""
        block = np.asarray(block, dtype=float)
        best = np.full(block.shape, -np.inf)
        for w in self.scales:
            best = np.maximum(best, self._novelty(_rolling_mean(block, w), w, up_only=False))
        changes = np.abs(np.diff(block, axis=0, prepend=np.nan))
        for w in self.volatility_scales:
            best = np.maximum(best, self._novelty(_rolling_mean(changes, w), w, up_only=True))
        return best

    def score(self, values: np.ndarray) -> np.ndarray:
        return self.score_many([values])[0]

    def score_many(self, series: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Score several series at once (shorter ones are front-padded; padding never affects scores)."""
        if not series:
            return []
        n = max(len(s) for s in series)
        block = np.full((n, len(series)), np.nan)
        for j, s in enumerate(series):
            if len(s):
                block[n - len(s) :, j] = np.asarray(s, dtype=float)
        raw = self.novelty(block)
        finite = np.isfinite(raw)
        inside = 0.5 * np.exp(np.clip(np.where(finite, raw, -50.0), -50.0, 0.0) * 3.0)
        beyond = 0.5 + 0.5 * (1.0 - np.exp(-self.gain * np.maximum(raw, 0.0)))
        scores = np.where(finite, np.where(raw > 0, beyond, inside), 0.0)
        out = self._suppress(scores, np.where(finite, raw, -np.inf))
        return [out[n - len(s) :, j] for j, s in enumerate(series)]

    def _suppress(self, scores: np.ndarray, raw: np.ndarray) -> np.ndarray:
        out = scores.copy()
        cols = scores.shape[1]
        last = np.full(cols, -(10**12))
        last_raw = np.zeros(cols)
        for t in range(scores.shape[0]):
            s, r = scores[t], raw[t]
            within = t - last < self.suppress
            alarm = s >= self.level
            escalate = within & alarm & (r > self.escalation * last_raw)
            fresh = ~within & alarm
            trigger = escalate | fresh
            out[t] = np.where(within & ~escalate, s * self.damping, s)
            last = np.where(trigger, t, last)
            last_raw = np.where(trigger, r, last_raw)
        return np.clip(out, 0.0, 1.0)


# Trailing-window statistics on 2-D arrays (rows = time, columns = series), NaN-aware like pandas'
# ``rolling(window, min_periods)``: each row uses itself and earlier rows only. Implemented with cumulative
# sums and scipy's running extrema so thousands of series cost one pass (pandas loops over columns).


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(a, np.nan)
    if k < len(a):
        out[k:] = a[: len(a) - k]
    return out


def _rolling_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Mean of the last ``w`` rows; NaN unless all ``w`` are present (pandas ``min_periods=w``)."""
    finite = np.isfinite(a)
    sums = np.cumsum(np.where(finite, a, 0.0), axis=0)
    counts = np.cumsum(finite, axis=0)
    sums = np.vstack([np.zeros((1, a.shape[1])), sums])
    counts = np.vstack([np.zeros((1, a.shape[1]), dtype=counts.dtype), counts])
    n = len(a)
    start = np.maximum(np.arange(1, n + 1) - w, 0)
    total = sums[1:] - sums[start]
    count = counts[1:] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= w, total / w, np.nan)


def _rolling_extreme(
    a: np.ndarray, window: int, min_count: int, *, maximum: bool, outlier_every: int = 0
) -> np.ndarray:
    """Max (or min) of the last ``window`` rows, ignoring NaN; NaN with fewer than ``min_count`` values.

    With ``outlier_every`` > 0 a row whose window holds ``n`` values gets the k-th largest (smallest) value,
    ``k = 1 + n // outlier_every``, instead: the ``k - 1`` most extreme values count as one-off outliers.
    """
    fill = -np.inf if maximum else np.inf
    finite = np.isfinite(a)
    # A window longer than the data covers every earlier row: the same as a window of the data's length.
    window = max(1, min(window, len(a)))
    padded = np.vstack([np.full((window - 1, a.shape[1]), fill), np.where(finite, a, fill)])
    run = maximum_filter1d if maximum else minimum_filter1d
    origin = (window - 1) // 2
    ext = run(padded, size=window, axis=0, origin=origin, mode="nearest")[window - 1 :]
    counts = np.cumsum(finite, axis=0)
    counts = np.vstack([np.zeros((1, a.shape[1]), dtype=counts.dtype), counts])
    start = np.maximum(np.arange(1, len(a) + 1) - window, 0)
    have = counts[1:] - counts[start]
    if outlier_every > 0:
        ranks = 1 + have // outlier_every
        # Higher ranks only exist once a window holds outlier_every values, so the exporter's short
        # windows never get here. Column by column because scipy's 1-D rank filter is fast (about 1 ms
        # for 4,000 points and a 2,500-point window here) and its N-D form is a hundred times slower.
        for k in range(2, int(ranks.max(initial=1)) + 1):
            for j in np.flatnonzero((ranks == k).any(axis=0)):
                col = rank_filter(
                    np.ascontiguousarray(padded[:, j]),
                    rank=-k if maximum else k - 1,
                    size=window,
                    origin=origin,
                    mode="nearest",
                )[window - 1 :]
                ext[:, j] = np.where(ranks[:, j] == k, col, ext[:, j])
    return np.where(have >= min_count, ext, np.nan)
