"""The ceiling behind the intake target: how close to a bare Flask endpoint can any durable intake get here?

``benchmarks.intake`` compares the reactor with a bare endpoint answering 202. This benchmark runs, in one
run and under the same gunicorn settings (``reactor.server.gunicorn_options``), servers that each keep one
more piece of the work, so the ratio each piece leaves is measured rather than argued:

* ``bare``: 202 at once (the intake benchmark's baseline);
* ``parse``: bearer-token check, body decode and the reactor's Alertmanager parser, then 202. Nothing stored;
* ``inbox-full``: ``parse``, then the reactor's own group-commit writer (:class:`reactor.intake.IntakeWriter`)
  stores each request as a single row (its raw JSON) in SQLite with ``synchronous=FULL``, as the reactor
  runs it. This is the least any design that commits before answering 202 can store: no alert rows, no
  dedup, no jobs, no audit;
* ``inbox-normal``: the same with ``synchronous=NORMAL`` (no fsync per commit; a power loss may lose
  acknowledged requests, so the reactor does not run this way);
* ``reactor``: the real reactor, job worker off (10 alerts, 10 jobs and 10 audit rows per request).

Each server gets the same wrk load as ``benchmarks.intake`` (10-alert Alertmanager payloads, new
fingerprints, ``wrk -t2 -c16``). The machine's speed drifts by a factor of two within minutes, so every run of
a server follows a run of the bare one, its ratio is taken to that neighbour, and the table shows medians
over the rounds.

    python -m benchmarks.intake_ceiling [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from flask import Flask, Response, request

from benchmarks._common import Server, free_port, log, machine_notes, reactor_args, write_section
from benchmarks.bare_app import BareServer, create_bare_app
from benchmarks.intake import wrk_with_cpu, wrk_workspace
from reactor.intake import IntakeWriter
from reactor.store import IntakeCounts
from reactor.store.store import _WriteLock
from webhooks import PARSERS, IdentityRules, Notification

VARIANTS = ("bare", "parse", "inbox-full", "inbox-normal")
TOKEN = "Bearer bench"


class InboxStore:
    """The least a durable intake can store: one row per request, committed in group by IntakeWriter.

    It offers the two methods IntakeWriter uses (``exclusive`` and ``ingest``) and takes the same
    cross-process write lock as the reactor's store, so the commit path differs only in what is written.
    """

    def __init__(self, path: str, synchronous: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._lock = _WriteLock(path)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock.hold():
            yield

    def ingest(self, batch: Sequence[Notification]) -> list[IntakeCounts]:
        now = time.time()
        with self._lock.hold():
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT INTO inbox (received_at, body) VALUES (?, ?)", [(now, orjson.dumps(n.raw)) for n in batch]
            )
            self._conn.execute("COMMIT")
        return [IntakeCounts(accepted=len(n.alerts)) for n in batch]


def create_variant_app(variant: str, db_path: str) -> Flask:
    """The Flask app of one variant; ``bare`` is the intake benchmark's own baseline app."""
    if variant == "bare":
        return create_bare_app()
    parse = PARSERS["alertmanager"]
    rules = IdentityRules()
    writer: IntakeWriter | None = None
    if variant.startswith("inbox-"):
        writer = IntakeWriter(InboxStore(db_path, variant.removeprefix("inbox-").upper()))  # type: ignore[arg-type]
    app = Flask(f"ceiling-{variant}")

    @app.post("/webhooks/alertmanager")
    def accept() -> Any:
        if request.headers.get("Authorization") != TOKEN:
            return {"error": "missing or wrong credentials"}, 401
        note = parse(orjson.loads(request.get_data(cache=False)), rules=rules)
        counts = writer.submit(note) if writer is not None else IntakeCounts(accepted=len(note.alerts))
        body = orjson.dumps({"status": "accepted", "alerts": len(note.alerts), **counts.as_dict()})
        return Response(body, status=202, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app


def serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.intake_ceiling serve")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--db", default="")
    args = parser.parse_args(argv)
    if args.variant.startswith("inbox-"):
        conn = sqlite3.connect(args.db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, received_at REAL, body BLOB)")
        conn.close()
    BareServer(args.bind, 2, app=lambda: create_variant_app(args.variant, args.db)).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all servers")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per server and round")
    args = parser.parse_args(argv)
    tmp, script = wrk_workspace(parser, "sr-bench-ceiling-")
    notes = machine_notes()
    pairs: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {v: [] for v in (*VARIANTS[1:], "reactor")}

    def measure(label: str, n: int) -> dict[str, float]:
        port = free_port()
        db = tmp / f"{label}-{n}.db"
        if label == "reactor":
            server_args, env = reactor_args(port, f"sqlite:///{db}"), {"SMART_ROLLBACK_WORKER__ENABLED": "false"}
        else:
            server_args = [sys.executable, "-m", "benchmarks.intake_ceiling", "serve", label,
                           "--bind", f"127.0.0.1:{port}", "--db", str(db)]  # fmt: skip
            env = None
        server = Server(server_args, f"http://127.0.0.1:{port}", env=env, log_path=tmp / f"{label}.log")
        try:
            server.wait_workers()
            result = wrk_with_cpu(server, args.seconds, script)
            log(f"{label}: {result['rps']:.0f} requests/s, {result['cpu_ms']:.2f} ms CPU per request")
            return result
        finally:
            server.stop()

    for n in range(args.rounds):
        log(f"round {n + 1}/{args.rounds}: each server right after a bare one, {args.seconds}s each")
        for label, runs in pairs.items():
            runs.append((measure("bare", n), measure(label, n)))
    shutil.rmtree(tmp, ignore_errors=True)

    bares = [bare for runs in pairs.values() for bare, _ in runs]

    def median(label: str, key: str) -> float:
        if label == "bare":
            return statistics.median(b[key] for b in bares)
        return statistics.median(r[key] for _, r in pairs[label])

    ratio = {label: statistics.median(r["rps"] / b["rps"] for b, r in runs) for label, runs in pairs.items()}
    ratio["bare"] = 1.0

    what = {
        "bare": "202 at once (the baseline)",
        "parse": "auth + decode + Alertmanager parser, nothing stored",
        "inbox-full": "parse + IntakeWriter group commit of 1 row per request, synchronous=FULL",
        "inbox-normal": "the same, synchronous=NORMAL (not power-loss durable)",
        "reactor": "the reactor, job worker off (30 rows per request)",
    }
    lines = [
        "## Intake ceiling: what any durable intake can reach on this machine (issue 2)",
        "",
        f"{notes} `python -m benchmarks.intake_ceiling`: every server under the reactor's gunicorn",
        f"settings, the intake benchmark's load (`wrk -t2 -c16 -d{args.seconds}s`, 10-alert payloads). Medians of",
        f"{args.rounds} rounds; every run of a server follows a run of the bare one, and its ratio is to that run.",
        "",
        "| server | what it does per request | requests/s | ratio to bare | worker CPU ms per request | non-202 |",
        "|---|---|---|---|---|---|",
    ]
    for label, text in what.items():
        errors = (
            sum(int(r["errors"]) for r in bares) if label == "bare" else sum(int(r["errors"]) for _, r in pairs[label])
        )
        lines.append(
            f"| {label} | {text} | {median(label, 'rps'):.0f} | {ratio[label]:.2f} | "
            f"{median(label, 'cpu_ms'):.2f} | {errors} |"
        )
    lines += [
        "",
        f"Reading it: parsing alone leaves {ratio['parse']:.2f} of bare. Committing one row per request with an",
        f"fsync, the least a 202-after-commit intake can store, leaves {ratio['inbox-full']:.2f}; without the fsync",
        f"{ratio['inbox-normal']:.2f}. The reactor, which stores 10 alerts, 10 jobs and 10 audit rows per request,",
        f"reaches {ratio['reactor']:.2f}. When `inbox-full` is below 0.5, the intake target (ratio ≥ 0.5) is out of",
        "reach on this machine for an intake that answers 202 only after an fsync'd group commit, whatever it",
        "stores: two cores serve wrk and gunicorn alike, so every microsecond a request costs counts against it.",
    ]
    write_section("intake_ceiling", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        sys.exit(main())
