"""Shared helpers: machine notes and rewriting one delimited section of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine_notes() -> str:
    """Date, cores, CPU model, memory, load average and Python, as one sentence: figures from a shared, noisy
    machine can then be read in context."""
    cpu, mem = "unknown CPU", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except (OSError, ValueError, IndexError):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Machine: {now}; {os.cpu_count()} cores ({cpu}){mem}; load average {load} at the start; "
        f"Python {platform.python_version()}."
    )


def write_section(name: str, body: str, *, path: Path = RESULTS) -> None:
    """Replace the ``<!-- BEGIN name -->`` … ``<!-- END name -->`` section (append it when missing)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n\nEach section is rewritten by its script.\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
    print(f"wrote the {name!r} section of {path.name}", flush=True)
