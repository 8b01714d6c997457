"""NAB scoring, written from the public rules (NAB's ``nab/sweeper.py``; ../shared/data/README.md).

- The first ``min(floor(0.15 n), 750)`` rows of a file are probationary: never scored.
- A detection at relative position ``p`` inside a window (-1 = left edge, 0 = right edge) earns
  ``tp * (2 sigmoid(-5 p) - 1) / (2 sigmoid(5) - 1)`` (the divisor is 0.98661...); only the best (earliest)
  detection of a window counts; a window without detection costs ``-fn``.
- A detection outside every window costs ``fp * (2 sigmoid(-5 p) - 1)`` where ``p`` is its distance past the
  end of the previous window over that window's width - 1; ``-fp`` when no window came before or ``p >= 3``.
- Raw score = sum over files; normalised = ``100 (raw - null) / (perfect - null)`` with ``null = -fn windows``
  and ``perfect = tp windows``. One threshold for the whole set, swept over every distinct score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}


def load_profiles(path: Path) -> dict[str, dict[str, float]]:
    """Read NAB's ``profiles.json`` into ``{name: {tp, fp, fn}}``."""
    raw = json.loads(path.read_text())
    return {
        name: {
            "tp": spec["CostMatrix"]["tpWeight"],
            "fp": spec["CostMatrix"]["fpWeight"],
            "fn": spec["CostMatrix"]["fnWeight"],
        }
        for name, spec in raw.items()
    }


def _scaled_sigmoid(p: np.ndarray) -> np.ndarray:
    out = 2.0 / (1.0 + np.exp(5.0 * p)) - 1.0
    return np.where(p >= 3.0, -1.0, out)


#: The value of the earliest possible detection (NAB's ``maxTP = scaledSigmoid(-1)``), computed exactly.
MAX_TP = float(_scaled_sigmoid(np.array([-1.0]))[0])


@dataclass(frozen=True)
class FileLabels:
    """Per-row scoring geometry of one file, independent of the cost profile."""

    n: int
    probation: int
    #: window index of each row, -1 outside windows
    window_of: np.ndarray
    #: unweighted tp value (inside windows) or fp factor (outside), before profile weights
    unweighted: np.ndarray
    #: number of labelled windows in the file
    windows: int


def label_file(timestamps: Sequence[str], windows: Sequence[Sequence[str]]) -> FileLabels:
    """Compute each row's window membership and its unweighted sigmoid value."""
    ts = np.array([str(t)[:19] for t in timestamps])
    n = len(ts)
    window_of = np.full(n, -1, dtype=int)
    unweighted = np.zeros(n)
    bounds: list[tuple[int, int]] = []
    for w, (start, end) in enumerate(windows):
        s, e = str(start)[:19], str(end)[:19]
        idx = np.nonzero((ts >= s) & (ts <= e))[0]
        if len(idx) == 0:
            continue
        left, right = int(idx[0]), int(idx[-1])
        bounds.append((left, right))
        width = right - left + 1
        window_of[left : right + 1] = w
        pos = -(right - np.arange(left, right + 1) + 1) / width
        unweighted[left : right + 1] = _scaled_sigmoid(pos) / MAX_TP
    prev_right: int | None = None
    prev_width = 0
    bi = 0
    for i in range(n):
        while bi < len(bounds) and bounds[bi][1] < i:
            prev_right = bounds[bi][1]
            prev_width = bounds[bi][1] - bounds[bi][0] + 1
            bi += 1
        if window_of[i] >= 0:
            continue
        if prev_right is None:
            unweighted[i] = -1.0
        else:
            p = abs(i - prev_right) / float(max(prev_width - 1, 1))
            unweighted[i] = float(_scaled_sigmoid(np.array([p]))[0])
    probation = min(math.floor(0.15 * n), 750)
    return FileLabels(n=n, probation=probation, window_of=window_of, unweighted=unweighted, windows=len(windows))


#: Scored files: name -> (labels, anomaly scores).
Files = Mapping[str, tuple[FileLabels, np.ndarray]]


@dataclass(frozen=True)
class SweepResult:
    threshold: float
    raw: float
    normalised: float
    tp: int
    fp: int
    fn: int


def sweep(files: Mapping[str, tuple[FileLabels, np.ndarray]], profile: Mapping[str, float]) -> SweepResult:
    """Best normalised score over every threshold (detection: score >= threshold), one for all files."""
    tp_w, fp_w, fn_w = profile["tp"], profile["fp"], profile["fn"]
    scores_l, gain_l, win_l = [], [], []
    total_windows = 0
    offset = 0
    for labels, scores in files.values():
        total_windows += labels.windows
        rows = np.arange(labels.probation, labels.n)
        scores_l.append(np.asarray(scores, dtype=float)[rows])
        w = labels.window_of[rows]
        win_l.append(np.where(w >= 0, w + offset, -1))
        gain_l.append(np.where(w >= 0, tp_w * labels.unweighted[rows], fp_w * labels.unweighted[rows]))
        offset += max(labels.windows, 1)
    scores_all = np.concatenate(scores_l)
    gain = np.concatenate(gain_l)
    win = np.concatenate(win_l)
    order = np.argsort(-scores_all, kind="stable")
    s_sorted = scores_all[order]
    null = -fn_w * total_windows
    perfect = tp_w * total_windows
    best_in_window: dict[int, float] = {}
    raw = null
    fp_count = 0
    best = SweepResult(threshold=float("inf"), raw=raw, normalised=0.0, tp=0, fp=0, fn=total_windows)
    i = 0
    n = len(order)
    while i < n:
        j = i
        t = s_sorted[i]
        while j < n and s_sorted[j] == t:
            k = order[j]
            if win[k] >= 0:
                prev = best_in_window.get(int(win[k]))
                if prev is None:
                    raw += fn_w + gain[k]
                    best_in_window[int(win[k])] = float(gain[k])
                elif gain[k] > prev:
                    raw += gain[k] - prev
                    best_in_window[int(win[k])] = float(gain[k])
            else:
                raw += gain[k]
                fp_count += 1
            j += 1
        norm = 100.0 * (raw - null) / (perfect - null)
        if norm > best.normalised:
            tp = len(best_in_window)
            best = SweepResult(float(t), raw, norm, tp, fp_count, total_windows - tp)
        i = j
    return best


def raw_at(files: Files, profile: Mapping[str, float], threshold: float) -> float:
    """Raw score (sum over files) with a fixed threshold: detection where score >= threshold."""
    tp_w, fp_w, fn_w = profile["tp"], profile["fp"], profile["fn"]
    raw = 0.0
    for labels, scores in files.values():
        rows = np.arange(labels.probation, labels.n)
        hit = rows[np.asarray(scores, dtype=float)[rows] >= threshold]
        win = labels.window_of[hit]
        raw += fp_w * float(labels.unweighted[hit[win < 0]].sum())
        detected = {int(w): float(labels.unweighted[hit[win == w]].max()) for w in np.unique(win[win >= 0])}
        raw += tp_w * sum(detected.values()) - fn_w * (labels.windows - len(detected))
    return raw


def normalise(raw: float, windows: int, profile: Mapping[str, float]) -> float:
    """NAB's normalisation: 0 for the null detector (-fn per window), 100 for the perfect one (tp per window)."""
    null, perfect = -profile["fn"] * windows, profile["tp"] * windows
    return 100.0 * (raw - null) / (perfect - null)


def score_at(files: Files, profile: Mapping[str, float], threshold: float) -> float:
    """Normalised score with a fixed threshold, for the score curve around the swept one."""
    return normalise(raw_at(files, profile, threshold), sum(lab.windows for lab, _ in files.values()), profile)


def held_out_threshold_score(files: Files, profile: Mapping[str, float]) -> float:
    """Leave-one-file-out: each file is scored with the threshold swept on the other files; normalised total.

    A check that a score is not one lucky threshold: it is what a user who chose the threshold on other
    series would see on a new one.
    """
    raw = 0.0
    for name, (labels, scores) in files.items():
        t = sweep({k: v for k, v in files.items() if k != name}, profile).threshold
        raw += raw_at({name: (labels, scores)}, profile, t)
    return normalise(raw, sum(lab.windows for lab, _ in files.values()), profile)
