"""The durable store on SQLite and on the real PostgreSQL server: dedup, jobs, locks, append-only audit."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from reactor.store import Store, make_engine, migrate
from reactor.store.schema import metadata
from tests.conftest import load_fixture
from webhooks import parse_alertmanager, parse_datadog


@pytest.fixture
def store(db_url: str) -> Any:
    store = Store.connect(db_url)
    yield store
    store.close()


def firing(**changes: Any) -> Any:
    body = load_fixture("alertmanager-0.25-webhook-firing.json")
    body["alerts"][0].update(changes)
    return parse_alertmanager(body)


def resolved() -> Any:
    return parse_alertmanager(load_fixture("alertmanager-0.25-webhook-resolved.json"))


def jobs(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [(r.key, r.kind) for r in conn.execute(text("SELECT key, kind FROM jobs ORDER BY id"))]


def test_alert_and_job_stored_once(store: Store) -> None:
    [first] = store.ingest([firing()])
    assert first.as_dict() == {"accepted": 1, "duplicate": 0, "ignored": 0, "truncated": 0}
    # Alertmanager resends (repeat_interval, retries) and HA peers send the very same alert.
    counts = store.ingest([firing(), firing()])
    assert [c.duplicate for c in counts] == [1, 1]
    assert jobs(store) == [("alert:1:evaluate", "evaluate")]


def test_duplicates_inside_one_batch(store: Store) -> None:
    counts = store.ingest([firing(), firing(), firing()])
    assert [(c.accepted, c.duplicate) for c in counts] == [(1, 0), (0, 1), (0, 1)]
    assert len(jobs(store)) == 1


def test_resolved_queues_a_resolve_job_once(store: Store) -> None:
    store.ingest([firing()])
    assert store.ingest([resolved()])[0].accepted == 1
    assert store.ingest([resolved()])[0].duplicate == 1
    assert jobs(store) == [("alert:1:evaluate", "evaluate"), ("alert:1:resolve", "resolve")]
    assert store.get_alert(1)["status"] == "resolved"


def test_new_occurrence_after_resolution_is_a_new_alert(store: Store) -> None:
    store.ingest([firing()])
    store.ingest([resolved()])
    counts = store.ingest([firing(startsAt="2026-11-26T15:00:00Z")])
    assert counts[0].accepted == 1
    assert len(jobs(store)) == 3


def test_resolved_without_firing_is_stored_but_ignored(store: Store) -> None:
    [counts] = store.ingest([resolved()])
    assert (counts.accepted, counts.ignored) == (0, 1)
    assert jobs(store) == []


def test_datadog_renotify_of_an_open_cycle_is_a_duplicate(store: Store) -> None:
    body = load_fixture("datadog-webhook-template-triggered.json")
    store.ingest([parse_datadog(body)])
    again = {**body, "alert_transition": "Re-Triggered", "date": str(int(body["date"]) + 600_000)}
    assert store.ingest([parse_datadog(again)])[0].duplicate == 1
    recovered = {**body, "alert_transition": "Recovered", "date": str(int(body["date"]) + 900_000)}
    assert store.ingest([parse_datadog(recovered)])[0].accepted == 1
    assert [k for _, k in jobs(store)] == ["evaluate", "resolve"]


def test_truncated_alerts_are_reported(store: Store) -> None:
    note = parse_alertmanager(load_fixture("alertmanager-0.25-webhook-truncated-childroute.json"))
    [counts] = store.ingest([note])
    assert (counts.accepted, counts.truncated) == (2, 1)


def test_concurrent_ingest_of_the_same_alerts_creates_one_job(db_url: str) -> None:
    """Two processes' writers racing on the same payload (an HA pair) must queue one job."""
    stores = [Store.connect(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def send(store: Store) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                store.ingest([firing()])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert jobs(stores[0]) == [("alert:1:evaluate", "evaluate")]
    for store in stores:
        store.close()


def test_claims_are_exclusive_and_leases_expire(store: Store) -> None:
    now = [1000.0]
    store.clock = lambda: now[0]
    store.ingest([firing()])
    job = store.claim_job("a", lease_seconds=30)
    assert job is not None and job.attempts == 1
    assert store.claim_job("b", lease_seconds=30) is None
    now[0] += 31  # "a" died without a heartbeat
    again = store.claim_job("b", lease_seconds=30)
    assert again is not None and again.id == job.id and again.attempts == 2
    store.finish_job(again.id, "b")
    assert store.claim_job("c", lease_seconds=30) is None


def test_a_claim_costs_the_same_whatever_the_backlog(tmp_path: Any) -> None:
    """An alert storm queues thousands of jobs, and every claim runs inside the write transaction the intake
    waits for: a claim must walk the queue's index to the first runnable job, not collect and sort the
    backlog. Counted in SQLite virtual-machine steps, not time."""
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}", sqlite_synchronous="OFF")
    migrate(engine)
    engine.dispose()
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    @event.listens_for(engine, "connect")
    def _count(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_progress_handler(tick, 100)

    store = Store(engine)
    now = [1000.0]
    store.clock = lambda: now[0]

    def claim_cost() -> int:
        steps[0] = 0
        job = store.claim_job("w", 30)
        assert job is not None
        store.finish_job(job.id, "w")
        return steps[0]

    def queue(count: int) -> None:
        with store._tx() as conn:  # one transaction: the backlog, not its insertion, is under test
            for _ in range(count):
                now[0] += 0.001
                store.enqueue(f"job:{now[0]:.3f}", "evaluate", target=f"k/c/ns/t{int(now[0] * 1000)}", conn=conn)

    queue(10)
    small = claim_cost()
    queue(5000)
    large = claim_cost()
    assert large <= small + 5, f"a claim took {large} x 100 steps with 5,000 jobs queued, {small} x 100 with 10"
    store.close()


def test_the_intake_lookup_never_scans_a_table_without_statistics(postgres_url: str) -> None:
    """A new database has no statistics until autovacuum analyzes it; PostgreSQL then rates `= ANY` of a
    batch's fingerprints as a large share of the alerts and scans them all, so a storm on a new database got
    slower with every commit (200 requests/s: p99 63 ms, against 10 ms with index probes)."""
    store = Store.connect(postgres_url)
    try:
        with store._tx() as conn:
            conn.exec_driver_sql(
                "INSERT INTO alerts (source, fingerprint, starts_at, status, name, received_at, group_key, summary,"
                " raw) SELECT 'alertmanager', md5(n::text), 0, 'firing', 'x', 0, '', '{}', '{}'"
                " FROM generate_series(1, 5000) AS n"
            )
        scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'alerts'"  # this session's counts
        with store._tx() as conn:
            before = conn.exec_driver_sql(scans).scalar()
            found = list(store._sql.select_known(conn, [f"{n:032x}" for n in range(400)]))
            after = conn.exec_driver_sql(scans).scalar()
        assert found == [] and after == before
    finally:
        store.close()


def test_claim_skips_targets_locked_by_another_actor(store: Store) -> None:
    store.ingest([firing()])
    assert store.lock_target("kubernetes/e2e/prod/checkout", "a", 30)
    assert store.claim_job("b", 30) is None
    assert not store.lock_target("kubernetes/e2e/prod/checkout", "b", 30)
    store.unlock_target("kubernetes/e2e/prod/checkout", "a")
    assert store.lock_target("kubernetes/e2e/prod/checkout", "b", 30)
    assert store.claim_job("b", 30) is not None


def test_resolve_jobs_ignore_target_locks(store: Store) -> None:
    store.ingest([firing()])
    first = store.claim_job("a", 30)
    assert first is not None
    store.lock_target("kubernetes/e2e/prod/checkout", "a", 30)
    store.ingest([resolved()])
    job = store.claim_job("b", 30)
    assert job is not None and job.kind == "resolve"


def test_audit_is_append_only_in_the_database(store: Store) -> None:
    store.ingest([firing()])
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("UPDATE audit SET message = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit"))
    assert store.audit_trail()[0]["message"] == "firing alert 'DeploymentHealthLow' received"


def test_every_alert_is_audited_with_its_labels(store: Store) -> None:
    store.ingest([firing()])
    [entry] = store.audit_trail()
    assert entry["kind"] == "alert"
    assert entry["data"]["labels"]["deployment"] == "checkout"
    assert entry["target"] == "kubernetes/e2e/prod/checkout"


def test_approval_is_atomic_and_single(store: Store) -> None:
    decision = store.create_decision(
        {
            "target": "t",
            "action": "rollback",
            "mode": "recommend",
            "status": "pending_approval",
            "reasons": [],
            "inputs": {},
        },
        "decided",
    )
    assert store.approve_decision(decision["id"], actor="alice") == (True, "approved")
    assert store.approve_decision(decision["id"], actor="alice") == (False, "approved")
    assert store.reject_decision(decision["id"], actor="bob") == (False, "approved"), "too late: already approved"
    assert store.approve_decision("nope", actor="bob") is None
    assert [k for _, k in jobs(store)] == ["execute"]


def test_manual_requests_are_idempotent(store: Store) -> None:
    first = store.create_manual("k/c/n/x", actor="me", reason="r", payload={}, idempotency_key="abc")
    second = store.create_manual("k/c/n/x", actor="me", reason="r", payload={}, idempotency_key="abc")
    assert second["id"] == first["id"] and second["duplicate"]
    assert len(jobs(store)) == 1


def test_migrations_create_exactly_the_declared_schema(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(db_url)
    assert migrate(engine) == "0002"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], diff
    assert migrate(engine) == "0002", "upgrading twice is a no-op"
    engine.dispose()


def test_payloads_are_kept_raw(store: Store) -> None:
    body = load_fixture("alertmanager-0.25-webhook-firing.json")
    raw = copy.deepcopy(body["alerts"][0])
    store.ingest([parse_alertmanager(body)])
    assert store.get_alert(1)["raw"] == raw
