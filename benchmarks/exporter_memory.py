# ruff: noqa: E501  (markdown table rows read best on one line)
"""Exporter resident memory at 1,000 targets: RSS of a process running full cycles (judge, detectors,
Isolation Forest, exposition) over an in-memory source, against the same process before any target.

Each target has 5 metrics, two revisions, a one-hour lookback at 15 s steps (240 points per series).
Runs in a child process so the figure is the exporter's own, not this script's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks._results import machine_notes, write_section

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, time, numpy as np
from prometheus_client import generate_latest
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
from exporters.config import ExporterConfig
from exporters.service import Exporter
from exporters.sinks import HealthCollector
from exporters.sources import Series
TARGETS, NOW = int(__import__('sys').argv[1]), 1_800_000_000.0
class Synthetic:
    name = "synthetic"
    def query_range(self, query, start, end, step):
        rng = np.random.default_rng(abs(hash(query)) % 2**32)
        ts = np.arange(start, end, step)
        out = [Series({"revision": "v1"}, ts, 1 + rng.normal(0, 0.1, len(ts)))]
        new = ts[ts > end - 900]
        out.append(Series({"revision": "v2"}, new, 1.1 + rng.normal(0, 0.1, len(new))))
        return out
metrics = [{"name": f"m{j}", "query": "q{i}_" + str(j)} for j in range(5)]
targets = [{"cluster": "c", "namespace": "ns", "name": f"app{i}", "source": "s", "step": 15, "lookback": 3600, "window": 600,
            "metrics": [{"name": m["name"], "query": m["query"].replace("{i}", str(i))} for m in metrics]} for i in range(TARGETS)]
before = rss()
cfg = ExporterConfig.model_validate({"sources": {"s": {"type": "prometheus", "url": "http://127.0.0.1:1"}}, "targets": targets})
exp = Exporter(cfg, sources={"s": Synthetic()}, clock=lambda: NOW)
exp.registry.register(HealthCollector(exp.snapshot))
t0 = time.perf_counter(); exp.run_cycle(); first = time.perf_counter() - t0
t0 = time.perf_counter(); exp.run_cycle(); second = time.perf_counter() - t0
size = len(generate_latest(exp.registry))
print(json.dumps({"before": before, "after": rss(), "first_cycle": first, "second_cycle": second, "exposition_bytes": size}))
"""


def measure(targets: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(targets)], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for n in (10, 1000):
        print(f"  measuring {n} targets...", flush=True)
        m = measure(n)
        rows.append(
            f"| {n} | {m['before'] / 2**20:.0f} MiB | {m['after'] / 2**20:.0f} MiB | {m['first_cycle']:.1f} s | {m['second_cycle']:.1f} s | {m['exposition_bytes'] / 1024:.0f} KiB |"
        )
        print("  " + rows[-1], flush=True)
    body = "\n".join(
        [
            "## Exporter resident memory",
            "",
            machine_notes(),
            "",
            "5 metrics per target, 2 revisions, 240 points per series, default detectors (`ensemble`); RSS",
            "after imports and config (before) and after two full cycles and one exposition (after).",
            "",
            "| targets | RSS before targets | RSS after 2 cycles | first cycle | second cycle | /metrics size |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section("exporter_memory", body)


if __name__ == "__main__":
    main()
