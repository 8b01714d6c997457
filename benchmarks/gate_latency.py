"""How fast a pipeline gate learns its verdict, and what waiting gates cost the webhooks.

One reactor under gunicorn (2 gthread workers × 8 threads, SQLite, auto mode on the record-only platform).
Part 1: eight deployments, each watched by three waiters at once: the real ``smart-rollback deploy gate``
(long polls) and two clients polling ``GET /api/v1/deployments/{id}`` every 1 s and every 5 s, as CI scripts
with a ``sleep`` loop do. Alerts then roll the targets back one after the other; each waiter's delay is the
time from the stored verdict (``verdict_at``) to the moment it knew. Part 2: Alertmanager webhook latency
(sequential requests) with no gate waiting, then with 24 gates long-polling (more than the 8 waiting slots
the two processes have), to check that waiting gates never starve intake.

    python -m benchmarks.gate_latency [--targets 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from benchmarks._common import ROOT, Server, free_port, log, machine_notes, write_section

TOKEN = "bench"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def alert(target: str, n: int) -> dict[str, Any]:
    _platform, cluster, namespace, name = target.split("/")
    starts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    labels = {"alertname": "DeploymentHealthLow", "cluster": cluster, "namespace": namespace, "deployment": name,
              "severity": "critical"}  # fmt: skip
    item = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"{n:016x}"}  # fmt: skip
    return {"receiver": "r", "status": "firing", "alerts": [item], "groupLabels": {}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://am", "version": "4", "groupKey": f"g{n}",
            "truncatedAlerts": 0}  # fmt: skip


def register(url: str, target: str) -> str:
    response = requests.post(f"{url}/api/v1/deployments", json={"target": target, "revision": "v2"}, headers=HEADERS,
                             timeout=10)  # fmt: skip
    response.raise_for_status()
    return str(response.json()["id"])


def verdict_at(url: str, deployment_id: str) -> float:
    view = requests.get(f"{url}/api/v1/deployments/{deployment_id}", headers=HEADERS, timeout=10).json()
    return datetime.fromisoformat(view["verdict_at"].replace("Z", "+00:00")).timestamp()


class Poller(threading.Thread):
    """A CI-style loop: GET, sleep ``interval``, until the deployment has a verdict."""

    def __init__(self, url: str, deployment_id: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.deployment_id, self.interval = url, deployment_id, interval
        self.seen_at: float | None = None
        self.requests = 0

    def run(self) -> None:
        session = requests.Session()
        while True:
            try:
                view = session.get(f"{self.url}/api/v1/deployments/{self.deployment_id}", headers=HEADERS, timeout=10)
            except requests.ConnectionError:  # an idle keep-alive connection closed by the server: ask again
                session = requests.Session()
                continue
            self.requests += 1
            if view.json()["status"] != "in_progress":
                self.seen_at = time.time()
                return
            time.sleep(self.interval)


class Gate(threading.Thread):
    """The real CLI gate as a subprocess; ``seen_at`` is when it exited with the verdict."""

    def __init__(self, url: str, deployment_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.deployment_id = url, deployment_id
        self.seen_at: float | None = None
        self.code: int | None = None
        self.proc: subprocess.Popen[str] | None = None

    def run(self) -> None:
        env = {"SMART_ROLLBACK_URL": self.url, "SMART_ROLLBACK_TOKEN": TOKEN, "PATH": "/usr/bin:/bin",
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", "deploy", "gate", "--deployment", self.deployment_id, "--timeout", "10m"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.proc.communicate()
        self.seen_at = time.time()
        self.code = self.proc.returncode


def stats(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, max(ordered)


def webhook_latency(url: str, count: int, start: int) -> list[float]:
    session = requests.Session()
    out = []
    for n in range(count):
        body = alert(f"kubernetes/bench/intake/svc{n % 20}", start + n)
        began = time.perf_counter()
        response = session.post(f"{url}/webhooks/alertmanager", json=body, headers=HEADERS, timeout=30)
        out.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 202, response.text
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--webhooks", type=int, default=200)
    args = parser.parse_args(argv)
    notes = machine_notes()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        port = free_port()
        config = {
            "policies": {"defaults": {"mode": "auto", "wait_timeout_seconds": 0}},
            "deployments": {"soak_seconds": 3600},
        }
        (Path(tmp) / "reactor.yaml").write_text(yaml.safe_dump(config))
        args_ = [sys.executable, "-m", "reactor", "serve", "--bind", f"127.0.0.1:{port}", "--db",
                 f"sqlite:///{tmp}/reactor.db", "--token", TOKEN, "--config", f"{tmp}/reactor.yaml"]  # fmt: skip
        log("starting the reactor (gunicorn, 2 workers, SQLite)")
        server = Server(args_, f"http://127.0.0.1:{port}", env={"TMPDIR": tmp}, log_path=Path(tmp) / "server.log")
        try:
            rows = part_one(server.url, args.targets)
            quiet, busy = part_two(server.url, args.webhooks)
        finally:
            server.stop()

    lines = [
        "## Gate latency and the cost of waiting gates (issue 7)",
        "",
        f"{notes} One reactor under gunicorn (2 gthread workers × 8 threads, SQLite, auto mode,",
        "record-only platform). Delay: from the stored verdict (`verdict_at`) to the moment the waiter knew it,",
        f"over {args.targets} deployments rolled back one after the other, the three waiters watching each at once.",
        "",
        "| waiter | median delay s | p95 s | max s | requests per deployment |",
        "|---|---|---|---|---|",
    ]
    for name, (delays, requests_per) in rows.items():
        median, p95, worst = stats(delays)
        lines.append(f"| {name} | {median:.2f} | {p95:.2f} | {worst:.2f} | {requests_per} |")
    gate_median = stats(rows["`deploy gate` (long poll)"][0])[0]
    five_median = stats(rows["polling every 5 s"][0])[0]
    lines += [
        "",
        f"Ratio of median delays, 5-s polling to the long-polling gate: {five_median / max(gate_median, 1e-3):.1f}.",
        "",
        f"Alertmanager webhook latency, {args.webhooks} sequential requests, each storing a new alert:",
        "",
        "| gates waiting | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|",
        "| none | {:.1f} | {:.1f} | {:.1f} |".format(*stats(quiet)),
        "| 24 (8 waiting slots in total) | {:.1f} | {:.1f} | {:.1f} |".format(*stats(busy)),
        "",
        f"Ratio of p95 with gates waiting to without: {stats(busy)[1] / max(stats(quiet)[1], 1e-3):.2f}.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("gate_latency", body)


def part_one(url: str, count: int) -> dict[str, tuple[list[float], str]]:
    targets = [f"kubernetes/bench/gate/svc{n}" for n in range(count)]
    ids = [register(url, t) for t in targets]
    log(f"registered {count} deployments; starting a gate and two pollers on each")
    gates = [Gate(url, d) for d in ids]
    fast = [Poller(url, d, 1.0) for d in ids]
    slow = [Poller(url, d, 5.0) for d in ids]
    for waiter in (*gates, *fast, *slow):
        waiter.start()
    time.sleep(3)
    for n, target in enumerate(targets):
        log(f"alert {n + 1}/{count}: {target}")
        requests.post(f"{url}/webhooks/alertmanager", json=alert(target, 10_000 + n), headers=HEADERS, timeout=10)
        time.sleep(1.7)
    for waiter in (*gates, *fast, *slow):
        waiter.join(60)
    stored = [verdict_at(url, d) for d in ids]
    assert all(w.seen_at is not None for w in (*gates, *fast, *slow)), "a waiter never saw its verdict"
    assert all(g.code == 10 for g in gates), [g.code for g in gates]
    rows: dict[str, tuple[list[float], str]] = {}
    for name, waiters in (("`deploy gate` (long poll)", gates), ("polling every 1 s", fast),
                          ("polling every 5 s", slow)):  # fmt: skip
        delays = [max(0.0, (w.seen_at or 0) - at) for w, at in zip(waiters, stored, strict=True)]
        per = (
            "≤ 1 per 25 s, plus 1 per change"
            if waiters is gates
            else (
                f"{statistics.mean(w.requests for w in waiters):.0f}"  # type: ignore[attr-defined]
            )
        )
        rows[name] = (delays, per)
        log(f"{name}: median delay {statistics.median(delays):.2f}s")
    return rows


def part_two(url: str, count: int) -> tuple[list[float], list[float]]:
    log(f"webhook latency with no gate waiting ({count} requests)")
    webhook_latency(url, 20, 50_000)  # warm up
    quiet = webhook_latency(url, count, 100_000)
    ids = [register(url, f"kubernetes/bench/waiting/svc{n}") for n in range(24)]
    gates = [Gate(url, d) for d in ids]
    for gate in gates:
        gate.start()
    time.sleep(3)
    log(f"webhook latency with 24 gates long-polling ({count} requests)")
    busy = webhook_latency(url, count, 200_000)
    for gate in gates:
        if gate.proc is not None:
            gate.proc.terminate()
    for gate in gates:
        gate.join(30)
    return quiet, busy


if __name__ == "__main__":
    main()
