# ruff: noqa: E501  (markdown table rows read best on one line)
"""NAB score of ``smart-rollback detect`` on the 17 realAWSCloudwatch series (../shared/data/nab).

Runs the command line exactly as a user would (``python -m reactor detect --input F --output O``) on each
file, then scores all files with one threshold per profile, swept over every distinct score
(benchmarks/nab_scoring.py follows NAB's rules). Also scores the rolling z-score baseline for reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._results import machine_notes, write_section
from benchmarks.nab_scoring import label_file, load_profiles, sweep

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "nab"
PUBLISHED = "Numenta HTM 73.4 · CAD OSE 71.5 · NumentaTM 69.6 · ARTime 69.5 · HTM Java 66.1 · KNN CAD 60.7"


def run_detector(files: list[Path], out_dir: Path, detector: str | None) -> dict[str, np.ndarray]:
    scores = {}
    for i, f in enumerate(files, 1):
        out = out_dir / f"{detector or 'default'}-{f.name}"
        cmd = [sys.executable, "-m", "reactor", "detect", "--input", str(f), "--output", str(out)]
        if detector:
            cmd += ["--detector", detector]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        scores[f.name] = np.loadtxt(out, delimiter=",", skiprows=1, usecols=2, ndmin=1)
        print(f"  [{i:2d}/{len(files)}] {detector or 'default'} {f.name}", flush=True)
    return scores


def main() -> None:
    windows = json.loads((DATA / "windows.json").read_text())
    profiles = load_profiles(DATA / "profiles.json")
    files = sorted((DATA / "realAWSCloudwatch").glob("*.csv"))
    labels = {}
    for f in files:
        stamps = [line.split(",", 1)[0] for line in f.read_text().splitlines()[1:]]
        labels[f.name] = label_file(stamps, windows[f"realAWSCloudwatch/{f.name}"])
    rows = []
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for detector in (None, "zscore"):
            started = time.perf_counter()
            scores = run_detector(files, Path(tmp), detector)
            elapsed = time.perf_counter() - started
            per_profile = {p: sweep({n: (labels[n], scores[n]) for n in labels}, w) for p, w in profiles.items()}
            results[detector or "ensemble (default)"] = (per_profile, elapsed)
    for name, (per_profile, elapsed) in results.items():
        std = per_profile["standard"]
        rows.append(
            f"| {name} | {std.normalised:.1f} | {per_profile['reward_low_FP_rate'].normalised:.1f} "
            f"| {per_profile['reward_low_FN_rate'].normalised:.1f} | {std.threshold:.4f} "
            f"| {std.tp}/{std.tp + std.fn} | {std.fp} | {elapsed:.0f} s |"
        )
        print(f"{name}: " + ", ".join(f"{p} {r.normalised:.2f} (t={r.threshold:.4f})" for p, r in per_profile.items()))
    body = "\n".join(
        [
            "## NAB realAWSCloudwatch (17 files): `smart-rollback detect`",
            "",
            machine_notes(),
            "",
            "One configuration for all files; the threshold is swept once for the whole set per profile (the",
            "threshold column is the standard profile's). Scoring: benchmarks/nab_scoring.py (NAB rules).",
            "",
            "| detector | standard | reward_low_FP | reward_low_FN | threshold | windows detected | FP | time (17 files) |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Published on this category (standard profile): {PUBLISHED}.",
        ]
    )
    write_section("nab", body)


if __name__ == "__main__":
    main()
