"""Alert storm and crash: exactly one decision per unique alert, no 5xx, nothing acknowledged is lost.

Storm: 10,000 alerts (30 % of them duplicates of earlier ones, as Alertmanager HA pairs and resends produce),
10 per Alertmanager payload, sent by 4 concurrent senders to `smart-rollback serve` (gunicorn, 2 workers),
on SQLite and on PostgreSQL. Then wait until every job is done and check the store.

Crash: the same storm, but the whole server (gunicorn master and workers) is killed with SIGKILL when 40 %
of the requests are answered, and started again on the same database a second later. Senders behave like
Alertmanager: a connection error or a 5xx is retried. Every alert of a request that got a 2xx must be in the
store and get exactly one decision; no alert may get two.

    python -m benchmarks.storm [--alerts 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

from benchmarks._common import (
    Server,
    create_pg_database,
    drop_pg_database,
    free_port,
    log,
    machine_notes,
    reactor_args,
    rss_kib,
    write_section,
)

TARGETS = 200


def build_requests(total: int, duplicate_share: float, seed: int) -> tuple[list[bytes], list[list[str]], int]:
    """Payloads of 10 alerts; returns (bodies, fingerprints per body, unique alert count)."""
    rng = random.Random(seed)
    unique = int(total * (1 - duplicate_share))
    fingerprints = [f"{seed:04x}{i:012x}" for i in range(unique)]
    # Each duplicate comes after its first copy, at a random later point (a resend or an HA peer).
    keyed = [(float(i), fp) for i, fp in enumerate(fingerprints)]
    for _ in range(total - unique):
        k = rng.randrange(unique)
        keyed.append((rng.uniform(k + 0.5, unique), fingerprints[k]))
    ordered = [fp for _, fp in sorted(keyed)]
    bodies, groups = [], []
    for start in range(0, len(ordered), 10):
        group = ordered[start : start + 10]
        alerts = [
            {
                "status": "firing",
                "labels": {"alertname": "DeploymentHealthLow", "target": f"svc{int(fp, 16) % TARGETS}",
                           "namespace": "shop", "cluster": "storm", "severity": "critical"},
                "annotations": {"summary": "storm"},
                "startsAt": "2026-11-26T14:15:58.348Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fp,
            }
            for fp in group
        ]  # fmt: skip
        body = {"receiver": "smart-rollback", "status": "firing", "alerts": alerts, "groupLabels": {},
                "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "version": "4",
                "groupKey": "{}:{}", "truncatedAlerts": 0}  # fmt: skip
        bodies.append(json.dumps(body).encode())
        groups.append(group)
    return bodies, groups, unique


class Senders:
    """4 senders sharing the request list; Alertmanager-like retries on connection errors and 5xx."""

    def __init__(self, url: str, bodies: list[bytes], concurrency: int = 4) -> None:
        self.url = url
        self.bodies = bodies
        self.concurrency = concurrency
        self.acked: set[int] = set()
        self.codes: dict[int, int] = {}
        self.retries = 0
        self._next = 0
        self._lock = threading.Lock()
        self.answered = 0

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.bodies):
                return None
            self._next += 1
            return self._next - 1

    def run(self) -> None:
        threads = [threading.Thread(target=self._send) for _ in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _send(self) -> None:
        session = requests.Session()
        headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
        while (index := self._take()) is not None:
            deadline = time.monotonic() + 120
            while True:
                try:
                    response = session.post(self.url + "/webhooks/alertmanager", data=self.bodies[index],
                                            headers=headers, timeout=15)  # fmt: skip
                    code = response.status_code
                except requests.RequestException:
                    code = 0
                with self._lock:
                    self.codes[code] = self.codes.get(code, 0) + 1
                    if 200 <= code < 300:
                        self.acked.add(index)
                        self.answered += 1
                if 200 <= code < 300 or 400 <= code < 500 or time.monotonic() > deadline:
                    break
                with self._lock:
                    self.retries += 1
                time.sleep(0.2)  # Alertmanager backs off (starting ~0.5 s); keep the storm dense


def verify(db_url: str, groups: list[list[str]], acked: set[int], unique: int, timeout: float) -> dict[str, Any]:
    """Wait for the job queue to drain, then check decisions against what was acknowledged."""
    engine = create_engine(db_url.replace("postgresql+psycopg", "postgresql+psycopg"))
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with engine.connect() as conn:
            open_jobs = conn.execute(text("SELECT count(*) FROM jobs WHERE status IN ('pending','running')")).scalar()
        if open_jobs == 0:
            break
        time.sleep(0.5)
    drained = time.monotonic() - started
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(text("SELECT fingerprint FROM alerts"))}
        per_alert = conn.execute(
            text("SELECT a.fingerprint, count(d.id) FROM alerts a LEFT JOIN decisions d ON d.alert_id = a.id "
                 "GROUP BY a.fingerprint")
        ).all()  # fmt: skip
        jobs = conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all()
    engine.dispose()
    acked_fps = {fp for i in acked for fp in groups[i]}
    decisions = dict(per_alert)
    return {
        "unique_sent": unique,
        "alerts_stored": len(stored),
        "acked_alerts": len(acked_fps),
        "acked_missing": len(acked_fps - stored),
        "without_decision": sum(1 for n in decisions.values() if n == 0),
        "with_two_or_more": sum(1 for n in decisions.values() if n > 1),
        "decisions": sum(decisions.values()),
        "jobs": dict(jobs),
        "drain_seconds": round(drained, 1),
    }


def run_case(label: str, db_url: str, bodies: list[bytes], groups: list[list[str]], unique: int, tmp: Path,
             crash: bool) -> dict[str, Any]:  # fmt: skip
    port = free_port()
    env = {"SMART_ROLLBACK_MODE": "observe"}
    log_path = tmp / f"{label}.log"
    server = Server(reactor_args(port, db_url), f"http://127.0.0.1:{port}", env=env, log_path=log_path)
    senders = Senders(server.url, bodies)
    sender_thread = threading.Thread(target=senders.run)
    started = time.monotonic()
    sender_thread.start()
    killed_at = None
    if crash:
        while senders.answered < 0.4 * len(bodies) and sender_thread.is_alive():
            time.sleep(0.01)
        killed_at = senders.answered
        log(f"{label}: kill -9 after {killed_at} acknowledged requests")
        server.kill9()
        time.sleep(1.0)
        server = Server(reactor_args(port, db_url), server.url, env=env, log_path=log_path)
        log(f"{label}: restarted")
    sender_thread.join()
    send_seconds = time.monotonic() - started
    rss = [rss_kib(pid) for pid in server.worker_pids()]
    result = verify(db_url, groups, senders.acked, unique, timeout=900)
    server.stop()
    result.update(
        label=label,
        send_seconds=round(send_seconds, 1),
        codes=dict(sorted(senders.codes.items())),
        retries=senders.retries,
        killed_after=killed_at,
        rss_mib=[round(k / 1024) for k in rss],
        alerts_per_second=round(len(bodies) * 10 / send_seconds),
    )
    log(f"{label}: {result}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--duplicates", type=float, default=0.3)
    args = parser.parse_args(argv)
    notes = machine_notes()
    tmp = Path(tempfile.mkdtemp(prefix="sr-bench-storm-"))
    results = []
    for db in ("sqlite", "postgresql"):
        for crash in (False, True):
            seed = len(results) + 1
            bodies, groups, unique = build_requests(args.alerts, args.duplicates, seed)
            label = f"{db}{', kill -9 at 40 %' if crash else ''}"
            pg_name = f"sr_bench_storm_{seed}"
            url = f"sqlite:///{tmp / f'storm-{seed}.db'}" if db == "sqlite" else create_pg_database(pg_name)
            try:
                results.append(run_case(label, url, bodies, groups, unique, tmp, crash))
            finally:
                if db == "postgresql":
                    drop_pg_database(pg_name)

    ok = all(r["acked_missing"] == 0 and r["with_two_or_more"] == 0 and r["without_decision"] == 0 for r in results)
    lines = [
        "## Alert storm and crash (issue 2)",
        "",
        f"{notes} `smart-rollback serve`, 2 gunicorn workers, mode observe (every unique alert gets",
        f"a decision). {args.alerts:,} alerts ({args.duplicates:.0%} duplicates), 10 per Alertmanager payload, "
        f"{TARGETS} targets, 4 concurrent",
        "senders that retry connection errors and 5xx like Alertmanager. Crash runs: SIGKILL to the whole",
        "server when 40 % of the requests were answered, restart after 1 s on the same database.",
        "",
        "| run | unique alerts | stored | acked and missing | alerts with 0 / ≥2 decisions | decisions "
        "| HTTP codes (0 = connection error) | send s | alerts/s | drain s | RSS per worker MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        codes = ", ".join(f"{k}: {v}" for k, v in r["codes"].items())
        lines.append(
            f"| {r['label']} | {r['unique_sent']} | {r['alerts_stored']} | {r['acked_missing']} | "
            f"{r['without_decision']} / {r['with_two_or_more']} | {r['decisions']} | {codes} | {r['send_seconds']} | "
            f"{r['alerts_per_second']} | {r['drain_seconds']} | {'/'.join(map(str, r['rss_mib']))} |"
        )
    lines += ["", f"Verdict: {'every acknowledged alert stored, exactly one decision each' if ok else 'FAILED'}."]
    write_section("storm", "\n".join(lines))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
