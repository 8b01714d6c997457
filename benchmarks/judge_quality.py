"""Judge quality on a synthetic regression suite with known truth: ours vs a Kayenta-only configuration.

Each scenario draws baseline and canary samples (60 points per side unless it is about low traffic) many
times with different seeds. "Detected" = the metric classified high/low (bad) or the verdict fail; for
healthy scenarios that is a false positive. Insufficient is reported separately: it neither passes nor
fails a deploy. Both configurations judge the same draws in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from benchmarks._results import machine_notes, write_section
from exporters.judge import Judge, JudgeConfig

RUNS = 200
N = 60

Draw = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _latency(shift: float, noise: float = 0.1, n: int = N, scale: float = 1.0) -> Draw:
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        base = 100 * (1 + rng.normal(0, noise, n))
        can = 100 * (1 + shift) * (1 + rng.normal(0, noise * scale, n))
        return base, can

    return draw


def _overlapping(shift: float, width: int, n: int = N, noise: float = 0.1) -> Draw:
    """``rate(x[5m])`` sampled every minute: each point averages ``width`` intervals, its neighbours share most."""

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        kernel = np.ones(width) / width
        base = np.convolve(100 * (1 + rng.normal(0, noise, n + width - 1)), kernel, mode="valid")
        can = np.convolve(100 * (1 + shift) * (1 + rng.normal(0, noise, n + width - 1)), kernel, mode="valid")
        return base, can

    return draw


def _errors(base_rate: float, can_rate: float, n: int = N) -> Draw:
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return rng.poisson(base_rate, n).astype(float), rng.poisson(can_rate, n).astype(float)

    return draw


#: (name, truth: True = bad deploy, draw)
SCENARIOS: list[tuple[str, bool, Draw]] = [
    ("mean shift +5% (noise 10%)", True, _latency(0.05)),
    ("mean shift +10%", True, _latency(0.10)),
    ("mean shift +20%", True, _latency(0.20)),
    ("mean shift +50%", True, _latency(0.50)),
    ("variance x3, same mean (kayenta#780)", True, _latency(0.0, scale=3.0)),
    ("sparse errors 0.02 -> 0.3 per interval (kayenta#426)", True, _errors(0.02, 0.3)),
    ("sparse errors 0 -> 0.1 per interval", True, _errors(0.0, 0.1)),
    ("errors x3 (1 -> 3 per interval)", True, _errors(1.0, 3.0)),
    ("low traffic: +50% with 6 points per side", True, _latency(0.5, n=6)),
    ("mean shift +10%, rate() windows span 5 points", True, _overlapping(0.10, 5)),
    ("healthy: same distribution", False, _latency(0.0)),
    ("healthy: +2% (inside tolerance)", False, _latency(0.02)),
    ("healthy: sparse errors 0.05 both", False, _errors(0.05, 0.05)),
    ("healthy: errors 1 per interval both", False, _errors(1.0, 1.0)),
    ("healthy: low traffic, 6 points per side", False, _latency(0.0, n=6)),
    ("healthy: rate() windows span 5 points", False, _overlapping(0.0, 5)),
    ("healthy: rate() windows span 3 points, 10 per side", False, _overlapping(0.0, 3, n=10)),
]


def evaluate(judge: Judge, draw: Draw, seed0: int) -> tuple[float, float]:
    bad = insufficient = 0
    pairs = []
    for i in range(RUNS):
        base, can = draw(np.random.default_rng(seed0 + i))
        pairs.append(({"m": base}, {"m": can}))
    for res in judge.judge_many(pairs):
        c = res.metrics["m"].classification
        bad += c in ("high", "low")
        insufficient += c in ("insufficient", "nodata")
    return bad / RUNS, insufficient / RUNS


def main() -> None:
    ours = Judge(JudgeConfig())
    kayenta = Judge(JudgeConfig(mode="kayenta"))
    rows = []
    totals = {"ours": [0.0, 0.0, 0, 0], "kayenta": [0.0, 0.0, 0, 0]}  # det sum, fp sum, n bad, n healthy
    started = time.perf_counter()
    for k, (name, truth, draw) in enumerate(SCENARIOS):
        o_bad, o_ins = evaluate(ours, draw, 1000 * k)
        k_bad, k_ins = evaluate(kayenta, draw, 1000 * k)
        for key, rate in (("ours", o_bad), ("kayenta", k_bad)):
            totals[key][0 if truth else 1] += rate
            totals[key][2 if truth else 3] += 1
        what = "detection" if truth else "false positive"
        rows.append(f"| {name} | {what} | {o_bad:.0%} | {o_ins:.0%} | {k_bad:.0%} | {k_ins:.0%} |")
        print(f"  {name}: ours {o_bad:.0%} (insufficient {o_ins:.0%}), kayenta {k_bad:.0%}", flush=True)
    elapsed = time.perf_counter() - started
    summary = []
    for key, label in (("ours", "smart (default)"), ("kayenta", "Kayenta-only")):
        det, fp, nb, nh = totals[key]
        summary.append(f"| {label} | {det / nb:.1%} | {fp / nh:.1%} |")
    body = "\n".join(
        [
            "## Judge quality: synthetic regressions with known truth",
            "",
            machine_notes(),
            "",
            f"{RUNS} draws per scenario, {N} points per side unless stated; both configurations judge the same",
            f"draws in the same run ({elapsed:.0f} s). Rate = share of draws classified high/low; 'insufficient'",
            "is the share our judge declined to decide (Kayenta has no such outcome).",
            "",
            "| configuration | mean detection rate (bad deploys) | mean false-positive rate (healthy) |",
            "|---|---|---|",
            *summary,
            "",
            "| scenario | counts as | ours | ours insufficient | Kayenta-only | Kayenta nodata |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section("judge_quality", body)


if __name__ == "__main__":
    main()
