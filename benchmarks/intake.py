"""Intake throughput and latency under gunicorn, as a ratio to a bare Flask endpoint answering 202.

Every request carries a 10-alert Alertmanager payload with fresh fingerprints, so each one stores 10 alerts,
10 jobs and 10 audit rows before it is answered. Three servers run one after the other with the same
gunicorn settings (2 gthread workers × 8 threads): the bare endpoint, the reactor on SQLite and on
PostgreSQL. Saturation throughput comes from ``wrk`` (closed loop, 16 connections); latency at 200
requests/s from an open-loop generator that measures from each request's scheduled send time, so queueing
is counted (no coordinated omission).

    python -m benchmarks.intake [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks._common import (
    Server,
    cpu_seconds,
    create_pg_database,
    drop_pg_database,
    free_port,
    log,
    machine_notes,
    reactor_args,
    rss_kib,
    write_section,
)

WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
local n = 0
local alert = '{"status":"firing","labels":{"alertname":"DeploymentHealthLow","deployment":"svc%d",' ..
  '"namespace":"prod","severity":"critical"},"annotations":{"summary":"bench"},' ..
  '"startsAt":"2026-11-26T14:15:58.348Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"",' ..
  '"fingerprint":"%08x%08x"}'
function setup(thread)
  thread:set("tid", math.random(1, 2147483646))
end
request = function()
  n = n + 1
  local parts = {}
  for i = 1, 10 do
    parts[i] = string.format(alert, (n * 10 + i) % 50, tid, n * 10 + i)
  end
  local body = '{"receiver":"r","status":"firing","alerts":[' .. table.concat(parts, ",") ..
    '],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",' ..
    '"version":"4","groupKey":"{}:{}","truncatedAlerts":0}'
  return wrk.format(nil, nil, nil, body)
end
"""


def payload(prefix: str, n: int) -> bytes:
    """A 10-alert Alertmanager v4 body whose fingerprints no other request uses."""
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "DeploymentHealthLow", "deployment": f"svc{i % 50}", "namespace": "prod",
                       "severity": "critical"},
            "annotations": {"summary": "bench"},
            "startsAt": "2026-11-26T14:15:58.348Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{prefix}{n * 10 + i:08x}",
        }
        for i in range(10)
    ]  # fmt: skip
    body = {"receiver": "r", "status": "firing", "alerts": alerts, "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am", "version": "4", "groupKey": "{}:{}",
            "truncatedAlerts": 0}  # fmt: skip
    return json.dumps(body).encode()


def run_wrk(url: str, seconds: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), url + "/webhooks/alertmanager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "requests": float(done.group(1)) if done else rps * seconds,
        "p50_ms": _pct(out, "50%"),
        "p99_ms": _pct(out, "99%"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def wrk_workspace(parser: argparse.ArgumentParser, prefix: str) -> tuple[Path, Path]:
    """A scratch directory and the wrk script in it; a clear error when wrk is missing."""
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: run `bash scripts/system-deps.sh bench` (make bench does)")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    script = tmp / "alerts.lua"
    script.write_text(WRK_SCRIPT)
    return tmp, script


def wrk_with_cpu(server: Server, seconds: int, script: Path) -> dict[str, float]:
    """:func:`run_wrk` against ``server``, plus ``cpu_ms``: its workers' CPU per request served."""
    pids = server.worker_pids()
    before = sum(cpu_seconds(pid) for pid in pids)
    result = run_wrk(server.url, seconds, script)
    result["cpu_ms"] = 1000 * (sum(cpu_seconds(pid) for pid in pids) - before) / max(result["requests"], 1)
    return result


def _pct(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def open_loop(url: str, rate: float, seconds: float, prefix: str) -> dict[str, float]:
    """Send at a fixed ``rate``; latency counts from the scheduled send time."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    latencies: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def sender() -> None:
        session = requests.Session()
        session.headers.update({"Authorization": "Bearer bench", "Content-Type": "application/json"})
        for n in counter:
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            response = session.post(url + "/webhooks/alertmanager", data=payload(prefix, n), timeout=30)
            done = time.perf_counter()
            with lock:
                latencies.append((done - due) * 1000)
                codes[response.status_code] = codes.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=sender) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "rate": rate,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
        "non_202": sum(v for k, v in codes.items() if k != 202),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per server")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed rate for the latency run")
    args = parser.parse_args(argv)
    tmp, script = wrk_workspace(parser, "sr-bench-intake-")
    notes = machine_notes()
    pg_name = "sr_bench_intake"
    results: dict[str, Any] = {}

    def measure(label: str, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        server = Server(argv, f"http://127.0.0.1:{port}", env=env, log_path=tmp / f"{label}.log")
        try:
            server.wait_workers()
            # The fixed rate first, on an empty queue; then saturation.
            log(f"{label}: {args.rate:.0f} requests/s for 10s")
            prefix = f"{int(time.time() * 1000) % 2**32:08x}"
            fixed = open_loop(server.url, args.rate, 10, prefix)
            log(f"{label}: wrk for {args.seconds}s")
            results[label] = wrk_with_cpu(server, args.seconds, script)
            results[label]["fixed"] = fixed
            results[label]["rss_kib"] = [rss_kib(pid) for pid in server.worker_pids()]
            log(f"{label}: {results[label]}")
        finally:
            server.stop()

    port = free_port()
    measure("bare Flask 202", [sys.executable, "-m", "benchmarks.bare_app", "--bind", f"127.0.0.1:{port}"], port)
    # A fresh database per case: the "off" runs leave tens of thousands of unprocessed jobs behind, which
    # would turn the next "on" run into a backlog test.
    for name in ("sqlite", "postgresql"):
        for worker in ("off", "on"):
            db = f"sqlite:///{tmp / f'intake-{worker}.db'}" if name == "sqlite" else create_pg_database(pg_name)
            try:
                port = free_port()
                env = {"SMART_ROLLBACK_WORKER__ENABLED": "true" if worker == "on" else "false"}
                measure(f"reactor {name}, job worker {worker}", reactor_args(port, db), port, env)
            finally:
                if name == "postgresql":
                    drop_pg_database(pg_name)

    bare = results["bare Flask 202"]["rps"]
    bare_cpu = results["bare Flask 202"]["cpu_ms"]
    best_cpu = min(r["cpu_ms"] for label, r in results.items() if label != "bare Flask 202")
    lines = [
        "## Intake under gunicorn (issue 2)",
        "",
        f"{notes} A shared, noisy machine: compare the ratios, measured in the same run.",
        "Same gunicorn settings for all (2 gthread workers × 8 threads). Each request is a",
        "10-alert Alertmanager payload with new fingerprints (10 alerts + 10 jobs + 10 audit rows stored per request).",
        f"Saturation: `wrk -t2 -c16 -d{args.seconds}s`. Latency: open loop at {args.rate:.0f} requests/s for 10 s,",
        "measured from each request's scheduled send time. Target: ratio ≥ 0.5 and p99 ≤ 25 ms at 200 requests/s.",
        "",
        "| server | requests/s (wrk) | ratio to bare | wrk p50 / p99 ms | p50 / p99 ms at 200/s | non-202 "
        "| RSS per worker MiB | worker CPU ms per request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        fixed = r.get("fixed", {})
        rss = "/".join(f"{k / 1024:.0f}" for k in r.get("rss_kib", []))
        lines.append(
            f"| {label} | {r['rps']:.0f} | {r['rps'] / bare:.2f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | "
            f"{fixed.get('p50_ms', float('nan')):.1f} / {fixed.get('p99_ms', float('nan')):.1f} | "
            f"{r['errors'] + fixed.get('non_202', 0)} | {rss} | {r['cpu_ms']:.2f} |"
        )
    lines += [
        "",
        '"job worker off" isolates intake (what the target is about); "on" is production, where each process\'s',
        "job worker decides on the stored alerts at the same time (same CPU, GIL and database). At 200 requests/s",
        "of 10 new alerts each (2,000 alerts/s, an extreme storm) the job queue grows during the run, and so does",
        "the intake latency with the worker on. Each case starts on a fresh database; the fixed rate runs first.",
        "",
        "The last column is the gunicorn workers' own CPU (user + system, all threads) during the wrk run divided",
        "by the requests served (PostgreSQL's server processes are not in it). On a CPU-bound machine it bounds",
        "the ratio whatever the design of waiting and batching: at most "
        f"{bare_cpu:.2f} / {best_cpu:.2f} = {bare_cpu / best_cpu:.2f} for the cheapest reactor case here. The next",
        "section (`benchmarks.intake_cost`) takes one request apart; the one after (`benchmarks.intake_ceiling`)",
        "measures what ratio an intake storing the least possible reaches on this machine.",
    ]
    write_section("intake", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
