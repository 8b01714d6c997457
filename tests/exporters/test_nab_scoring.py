"""The NAB scorer of benchmarks/ against values worked out by hand from NAB's rules (nab/sweeper.py)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from benchmarks.nab_scoring import (
    MAX_TP,
    PROFILES,
    held_out_threshold_score,
    label_file,
    raw_at,
    score_at,
    sweep,
)

STANDARD = PROFILES["standard"]


def _stamps(n: int) -> list[str]:
    start = datetime(2020, 1, 1)
    return [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]


def _file(n: int, windows: list[tuple[int, int]]):
    ts = _stamps(n)
    return label_file(ts, [(ts[a], ts[b]) for a, b in windows])


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_geometry_probation_and_weights() -> None:
    # 200 rows: probation = floor(0.15 * 200) = 30; one window of 11 rows at 100..110.
    lab = _file(200, [(100, 110)])
    assert lab.probation == 30 and lab.windows == 1
    max_tp = MAX_TP
    assert max_tp == pytest.approx(2 * _sig(5) - 1) and max_tp == pytest.approx(0.98661, abs=1e-5)
    # Inside: position -(right - i + 1) / width; the left edge earns exactly tp.
    assert lab.unweighted[100] == pytest.approx(1.0)
    assert lab.unweighted[105] == pytest.approx((2 * _sig(5 * 6 / 11) - 1) / MAX_TP)
    # Before any window: the flat -1. After: sigmoid of the distance over (width - 1), -1 from 3 widths on.
    assert lab.unweighted[50] == -1.0
    assert lab.unweighted[115] == pytest.approx(2 * _sig(-5 * 5 / 10) - 1)
    assert lab.unweighted[140] == -1.0
    assert min(math.floor(0.15 * 6000), 750) == _file(6000, []).probation == 750


def test_perfect_null_and_single_detections() -> None:
    lab = _file(200, [(100, 110)])
    scores = np.zeros(200)
    files = {"f": (lab, scores)}
    assert sweep(files, STANDARD).normalised == 0.0  # the null detector
    perfect = scores.copy()
    perfect[100] = 1.0
    for profile in PROFILES.values():
        assert sweep({"f": (lab, perfect)}, profile).normalised == pytest.approx(100.0)
    # A detection at row 105 and a later one at 108: only the earliest counts.
    late = scores.copy()
    late[[105, 108]] = 0.9
    expected = (2 * _sig(5 * 6 / 11) - 1) / MAX_TP
    assert raw_at({"f": (lab, late)}, STANDARD, 0.9) == pytest.approx(expected)
    res = sweep({"f": (lab, late)}, STANDARD)
    assert res.threshold == 0.9 and res.normalised == pytest.approx(100 * (expected + 1) / 2)
    # Probationary rows never count, whatever their score; an FP before any window costs -fp.
    noisy = perfect.copy()
    noisy[5] = 1.0
    noisy[60] = 1.0
    assert raw_at({"f": (lab, noisy)}, STANDARD, 0.5) == pytest.approx(1.0 - 0.11)


def test_threshold_is_inclusive_and_swept_once_for_all_files() -> None:
    a, b = _file(200, [(100, 110)]), _file(200, [(150, 160)])
    sa, sb = np.zeros(200), np.zeros(200)
    sa[100], sb[150] = 0.7, 0.6  # one threshold must serve both files
    sb[60] = 0.65  # an FP in b, before its window, above b's hit
    res = sweep({"a": (a, sa), "b": (b, sb)}, STANDARD)
    assert res.threshold == 0.6 and res.tp == 2 and res.fp == 1
    assert res.raw == pytest.approx(2 - 0.11)
    assert score_at({"a": (a, sa), "b": (b, sb)}, STANDARD, 0.6) == pytest.approx(res.normalised)
    # Held out: each file gets the other file's best threshold (0.7 from a misses b; 0.6 from b still hits a).
    held = held_out_threshold_score({"a": (a, sa), "b": (b, sb)}, STANDARD)
    assert held == pytest.approx(100 * ((1.0 - 1.0) + 2) / 4)
