"""The durable store: alerts with their dedup keys, jobs, decisions, steps, the audit trail, deployments.

Guarantees the rest of the reactor relies on:

* **Nothing acknowledged unless stored.** :meth:`Store.ingest` writes the alerts, their jobs and audit rows
  in one transaction; the HTTP layer answers 2xx only after it commits.
* **One job per alert occurrence.** ``(source, fingerprint, starts_at)`` is unique, and a firing repeat of
  an alert that is still open (Datadog re-notifications, Alertmanager HA peers, resends) is a duplicate.
  Job keys are unique, so even racing processes cannot queue the same work twice.
* **One decision per job**, so a job re-run after a crash resumes its decision instead of deciding again.
* **One actor per target** through leased rows in ``target_locks`` (atomic upsert on both databases);
  jobs are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, under SQLite's single writer otherwise.
* **Append-only audit**: rows are only inserted; the database refuses UPDATE and DELETE (triggers).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from reactor.store import schema as s
from reactor.store.db import StoreUnavailable, _dumps, make_engine, migrate, newest_first_page
from reactor.store.deployments import DeploymentStore
from webhooks import Alert, Notification

#: Rows per multi-row INSERT: keeps SQLite under its bound-parameter limit.
_CHUNK = 400


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class IntakeCounts:
    """What one webhook request's alerts became."""

    accepted: int = 0
    duplicate: int = 0
    ignored: int = 0
    truncated: int = 0
    alert_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "ignored": self.ignored,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    kind: str
    alert_id: int | None
    decision_id: str | None
    target: str | None
    attempts: int
    payload: Mapping[str, Any] | None


@dataclass(frozen=True)
class History:
    """What the decision engine may know about a target's past (all times epoch seconds)."""

    #: The target's decisions within the lookback, newest first (the worker asks only for rollbacks in
    #: flight or carried out: what the engine's cooldown, window and in-flight rules count).
    decisions: tuple[Mapping[str, Any], ...] = ()
    deployment: Mapping[str, Any] | None = None
    marks: Mapping[str, str] = field(default_factory=dict)
    kill_switch: bool = False


@dataclass
class _Pending:
    request: int
    alert: Alert
    starts_at: float


class Store(DeploymentStore):
    """All database access of the reactor. Thread-safe; one instance per process.

    Deployments and revision marks live in :class:`~reactor.store.deployments.DeploymentStore`."""

    def __init__(self, engine: Engine, *, clock: Any = time.time) -> None:
        self.engine = engine
        #: the same pool; on SQLite its transactions start with BEGIN IMMEDIATE (see db.py).
        self._writer = engine.execution_options(sqlite_immediate=True)
        self.clock = clock
        self.dialect = engine.dialect.name
        self._sql = _HotSQL(self.dialect)
        database = engine.url.database if self.dialect == "sqlite" else None
        self._write_lock = _WriteLock(database if database and database != ":memory:" else None)

    @classmethod
    def connect(cls, url: str, *, sqlite_synchronous: str = "FULL", upgrade: bool = True) -> Store:
        engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        if upgrade:
            migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------------ basics

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction; database unavailability becomes :class:`StoreUnavailable`."""
        try:
            with self._write_lock.hold(), self._writer.begin() as conn:
                yield conn
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not exc.connection_invalidated and not _transient(exc):
                raise
            raise StoreUnavailable(f"the database cannot take the write: {exc.orig}") from exc

    def exclusive(self) -> Any:
        """Hold the SQLite write lock across several transactions (a no-op on PostgreSQL).

        The intake writer takes it *before* collecting its batch: while it waited for another process's
        commit, more requests queued up, and they all go into one transaction.
        """
        return self._write_lock.hold()

    def _insert(self, table: Any) -> Any:
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except (OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(f"the database does not answer: {exc.orig}") from exc

    def audit(
        self,
        conn: Connection | None,
        kind: str,
        message: str,
        *,
        target: str | None = None,
        decision_id: str | None = None,
        alert_id: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one audit row, inside ``conn``'s transaction if given."""
        row = {
            "at": self.clock(),
            "kind": kind,
            "target": target,
            "decision_id": decision_id,
            "alert_id": alert_id,
            "message": message,
            "data": dict(data) if data is not None else None,
        }
        if conn is None:
            with self._tx() as own:
                own.execute(insert(s.audit), [row])
        else:
            conn.execute(insert(s.audit), [row])

    # ------------------------------------------------------------------------------------------ intake

    def ingest(self, batch: Sequence[Notification]) -> list[IntakeCounts]:
        """Store the alerts of several notifications in one transaction (group commit).

        Returns one :class:`IntakeCounts` per notification, in order. Raises :class:`StoreUnavailable`
        when the transaction cannot commit; then nothing of the batch is stored.
        """
        now = self.clock()
        counts = [IntakeCounts(truncated=n.truncated_alerts) for n in batch]
        with self._tx() as conn:
            fingerprints = {a.fingerprint for n in batch for a in n.alerts}
            known: dict[tuple[str, str, float], list[Any]] = {}
            open_by_fp: dict[tuple[str, str], list[Any]] = {}
            for chunk in _chunks(sorted(fingerprints), _CHUNK):
                for row_id, source, fingerprint, starts_at, status in self._sql.select_known(conn, chunk):
                    found = [row_id, status]
                    known[(source, fingerprint, starts_at)] = found
                    if status == "firing":
                        open_by_fp[(source, fingerprint)] = found

            inserts: list[_Pending] = []
            resolves: list[tuple[int, Any, Alert]] = []  # (request, entry, alert)
            for index, note in enumerate(batch):
                for alert in note.alerts:
                    starts = alert.starts_at.timestamp()
                    key = (alert.source, alert.fingerprint, starts)
                    open_entry = open_by_fp.get((alert.source, alert.fingerprint))
                    entry = known.get(key)
                    if alert.status == "resolved":
                        target_entry = entry if entry and entry[1] == "firing" else open_entry
                        if target_entry is not None:
                            resolves.append((index, target_entry, alert))
                            target_entry[1] = "resolved"
                            open_by_fp.pop((alert.source, alert.fingerprint), None)
                        elif entry is not None:
                            counts[index].duplicate += 1
                        else:
                            pending = _Pending(index, alert, starts)
                            inserts.append(pending)
                            known[key] = [pending, "resolved"]
                    elif entry is not None or open_entry is not None:
                        counts[index].duplicate += 1
                    else:
                        pending = _Pending(index, alert, starts)
                        inserts.append(pending)
                        fresh = [pending, "firing"]
                        known[key] = fresh
                        open_by_fp[(alert.source, alert.fingerprint)] = fresh

            inserted = self._insert_alerts(conn, batch, inserts, known, now)
            jobs: list[tuple[Any, ...]] = []
            audits: list[tuple[Any, ...]] = []
            for pending in inserts:
                alert_id = inserted.get(id(pending))
                if alert_id is None:
                    counts[pending.request].duplicate += 1
                    continue
                alert = pending.alert
                status = known[(alert.source, alert.fingerprint, pending.starts_at)][1]
                counts[pending.request].alert_ids.append(alert_id)
                target = alert.target.key
                if status == "firing":
                    counts[pending.request].accepted += 1
                    jobs.append(_job_values(f"alert:{alert_id}:evaluate", "evaluate", alert_id, target, now))
                else:
                    counts[pending.request].ignored += 1
                audits.append(_alert_audit(now, f"{status} alert {alert.name!r} received", alert, alert_id))

            resolved_ids = [e[0] for _, e, _ in resolves if isinstance(e[0], int)]
            if resolved_ids:
                conn.execute(
                    update(s.alerts)
                    .where(s.alerts.c.id.in_(resolved_ids), s.alerts.c.status == "firing")
                    .values(status="resolved", resolved_at=now)
                )
            for index, entry, alert in resolves:
                alert_id = entry[0] if isinstance(entry[0], int) else inserted.get(id(entry[0]))
                if alert_id is None:
                    counts[index].duplicate += 1
                    continue
                counts[index].accepted += 1
                counts[index].alert_ids.append(alert_id)
                jobs.append(_job_values(f"alert:{alert_id}:resolve", "resolve", alert_id, alert.target.key, now))
                audits.append(_alert_audit(now, f"alert {alert.name!r} resolved", alert, alert_id))

            # The hot path bypasses SQLAlchemy's per-row processing (see _HotSQL).
            self._sql.insert_jobs(conn, jobs)
            self._sql.insert_audit(conn, audits)
        return counts

    def _insert_alerts(
        self,
        conn: Connection,
        batch: Sequence[Notification],
        inserts: list[_Pending],
        known: Mapping[tuple[str, str, float], list[Any]],
        now: float,
    ) -> dict[int, int]:
        """Insert new alert rows; returns ``id(pending) -> alert id`` for rows actually inserted."""
        by_key: dict[tuple[str, str, float], _Pending] = {}
        rows: list[tuple[Any, ...]] = []
        for pending in inserts:
            alert = pending.alert
            key = (alert.source, alert.fingerprint, pending.starts_at)
            by_key[key] = pending
            status = known[key][1]
            rows.append(
                (
                    alert.source,
                    alert.fingerprint,
                    pending.starts_at,
                    status,
                    alert.name[:255],
                    alert.target.key,
                    alert.severity,
                    now,
                    now if status == "resolved" else None,
                    batch[pending.request].group_key,
                    _dumps(alert.summary()),
                    _dumps(alert.raw),
                )
            )
        result: dict[int, int] = {}
        # One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per chunk: rows that hit the unique key
        # (a racing process stored them first) return nothing and count as duplicates.
        for chunk in _chunks(rows, _CHUNK):
            for row_id, source, fingerprint, starts_at in self._sql.insert_alerts(conn, chunk):
                result[id(by_key[(source, fingerprint, starts_at)])] = row_id
        return result

    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.alerts).where(s.alerts.c.id == alert_id)).mappings().first()
        return dict(row) if row else None

    # ------------------------------------------------------------------------------------------- jobs

    def enqueue(
        self,
        key: str,
        kind: str,
        *,
        target: str | None,
        alert_id: int | None = None,
        decision_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> bool:
        """Queue a job unless one with ``key`` exists; returns whether it was queued."""
        row = _job_row(key, kind, alert_id, target, self.clock())
        row.update(decision_id=decision_id, payload=dict(payload) if payload else None)
        stmt = self._insert(s.jobs).values(row).on_conflict_do_nothing(index_elements=["key"])
        if conn is not None:
            return bool(conn.execute(stmt).rowcount)
        with self._tx() as own:
            return bool(own.execute(stmt).rowcount)

    def claim_job(self, owner: str, lease_seconds: float) -> Job | None:
        """Claim the oldest runnable job whose target no other actor holds, or return None.

        Runnable: pending and due, or running with an expired lease (its worker died). The claim takes the
        job's target lock in the same transaction (one actor per target); ``resolve`` jobs ignore target
        locks: they must reach a rollback that is in progress to stop it.
        """
        now = self.clock()
        j = s.jobs
        with self._tx() as conn:
            picked = None
            for pick in self._claim_picks(owner, now):
                picked = conn.execute(pick).first()
                if picked is not None:
                    break
            if picked is None:
                return None
            job_id, kind, target = picked
            if (
                kind != "resolve"
                and target
                and conn.execute(self._lock_stmt(target, owner, lease_seconds)).scalar() != owner
            ):
                return None  # another actor took the target between the pick and the lock (PostgreSQL)
            row = (
                conn.execute(
                    update(j)
                    .where(j.c.id == job_id)
                    .values(
                        status="running",
                        lease_owner=owner,
                        lease_until=now + lease_seconds,
                        attempts=j.c.attempts + 1,
                        updated_at=now,
                    )
                    .returning(j)
                )
                .mappings()
                .one()
            )
        return Job(
            id=row["id"],
            key=row["key"],
            kind=row["kind"],
            alert_id=row["alert_id"],
            decision_id=row["decision_id"],
            target=row["target"],
            attempts=row["attempts"],
            payload=row["payload"],
        )

    def _claim_picks(self, owner: str, now: float) -> tuple[Any, Any]:
        """The two queries a claim tries in turn: a running job whose lease expired (its worker died), then
        the pending job that has been due longest.

        Each walks the (status, run_after) index in the order it returns (then by id) and stops at
        the first job whose target no other actor holds, so a claim costs the same with ten thousand jobs
        queued as with one. A single query with an OR of both made SQLite collect and sort the whole backlog
        in every claim, inside the write transaction the intake also waits for.
        """
        j, locks = s.jobs, s.target_locks
        locked_elsewhere = exists().where(
            and_(locks.c.target == j.c.target, locks.c.lease_until >= now, locks.c.owner != owner)
        )
        free = or_(j.c.kind == "resolve", ~locked_elsewhere)

        def first(*where: Any) -> Any:
            pick = select(j.c.id, j.c.kind, j.c.target).where(*where, free).order_by(j.c.run_after, j.c.id).limit(1)
            return pick.with_for_update(skip_locked=True) if self.dialect == "postgresql" else pick

        expired = first(j.c.status == "running", j.c.lease_until < now)
        due = first(j.c.status == "pending", j.c.run_after <= now)
        return expired, due

    def heartbeat(self, job_id: int, owner: str, lease_seconds: float, target: str | None) -> bool:
        """Extend the lease of a job (and its target lock); False if we no longer own it."""
        now = self.clock()
        with self._tx() as conn:
            owned = conn.execute(
                update(s.jobs)
                .where(s.jobs.c.id == job_id, s.jobs.c.lease_owner == owner, s.jobs.c.status == "running")
                .values(lease_until=now + lease_seconds, updated_at=now)
            ).rowcount
            if target:
                conn.execute(
                    update(s.target_locks)
                    .where(s.target_locks.c.target == target, s.target_locks.c.owner == owner)
                    .values(lease_until=now + lease_seconds)
                )
        return bool(owned)

    def finish_job(
        self,
        job_id: int,
        owner: str,
        *,
        status: str = "done",
        error: str | None = None,
        target: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Mark a job finished and release its target lock (``target``), atomically."""
        if conn is None:
            with self._tx() as own:
                self.finish_job(job_id, owner, status=status, error=error, target=target, conn=own)
            return
        conn.execute(
            update(s.jobs)
            .where(s.jobs.c.id == job_id, s.jobs.c.lease_owner == owner)
            .values(status=status, lease_until=None, updated_at=self.clock(), last_error=error)
        )
        if target:
            self._unlock(conn, target, owner)

    def retry_job(self, job_id: int, owner: str, delay: float, error: str, *, target: str | None = None) -> None:
        """Put a job back to run after ``delay`` seconds and release its target lock."""
        now = self.clock()
        with self._tx() as conn:
            conn.execute(
                update(s.jobs)
                .where(s.jobs.c.id == job_id, s.jobs.c.lease_owner == owner)
                .values(status="pending", run_after=now + delay, lease_until=None, updated_at=now, last_error=error)
            )
            if target:
                self._unlock(conn, target, owner)

    def queue_depth(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.jobs.c.status, func.count()).where(s.jobs.c.status.in_(("pending", "running")))
                .group_by(s.jobs.c.status)
            ).all()  # fmt: skip
        return {"pending": 0, "running": 0} | dict(rows)

    # ----------------------------------------------------------------------------------- target locks

    def _lock_stmt(self, target: str, owner: str, lease_seconds: float) -> Any:
        """Upsert the lock row unless another owner's lease is live; returns the owner now holding it."""
        now = self.clock()
        t = s.target_locks
        stmt = self._insert(t).values(target=target, owner=owner, lease_until=now + lease_seconds)
        return stmt.on_conflict_do_update(
            index_elements=["target"],
            set_={"owner": stmt.excluded.owner, "lease_until": stmt.excluded.lease_until},
            where=or_(t.c.lease_until < now, t.c.owner == owner),
        ).returning(t.c.owner)

    def lock_target(self, target: str, owner: str, lease_seconds: float) -> bool:
        """Take (or renew) the actor lock of ``target``; False while another live owner holds it."""
        with self._tx() as conn:
            return bool(conn.execute(self._lock_stmt(target, owner, lease_seconds)).scalar() == owner)

    def unlock_target(self, target: str, owner: str) -> None:
        with self._tx() as conn:
            self._unlock(conn, target, owner)

    @staticmethod
    def _unlock(conn: Connection, target: str, owner: str) -> None:
        conn.execute(
            update(s.target_locks)
            .where(s.target_locks.c.target == target, s.target_locks.c.owner == owner)
            .values(lease_until=0.0)
        )

    # ------------------------------------------------------------------------------------ decisions

    def history(self, target: str, *, lookback_seconds: float, statuses: Iterable[str] | None = None) -> History:
        """``target``'s past as the engine sees it. ``statuses``: only decisions in those (the engine asks for
        the rollbacks in flight or carried out): an alert storm leaves thousands of ignored decisions per
        target, and every later decision would otherwise load them and copy them into its inputs."""
        now = self.clock()
        d = s.decisions
        query = (
            select(d.c.id, d.c.action, d.c.strategy, d.c.mode, d.c.status, d.c.created_at, d.c.finished_at,
                   d.c.alert_id, d.c.from_revision, d.c.to_revision)
            .where(d.c.target == target, d.c.created_at >= now - lookback_seconds)
            .order_by(d.c.created_at.desc())
        )  # fmt: skip
        if statuses is not None:
            query = query.where(d.c.status.in_(sorted(statuses)))
        with self.engine.connect() as conn:
            decisions = conn.execute(query).mappings().all()
            deployment = conn.execute(
                select(s.deployments)
                .where(s.deployments.c.target == target, s.deployments.c.started_at <= now)
                .order_by(s.deployments.c.started_at.desc())
                .limit(1)
            ).mappings().first()  # fmt: skip
            marks = conn.execute(
                select(s.revision_marks.c.revision, s.revision_marks.c.verdict)
                .where(s.revision_marks.c.target == target)
                .order_by(s.revision_marks.c.at)
            ).all()  # fmt: skip
            kill = conn.execute(select(s.flags.c.enabled).where(s.flags.c.name == "kill_switch")).scalar()
        return History(
            decisions=tuple(dict(r) for r in decisions),
            deployment=dict(deployment) if deployment else None,
            marks=dict(marks),
            kill_switch=bool(kill),
        )

    def decision_for_job(self, job_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.decisions).where(s.decisions.c.job_id == job_id)).mappings().first()
        return dict(row) if row else None

    def create_decision(
        self, row: Mapping[str, Any], message: str, *, finish: tuple[int, str, str | None] | None = None
    ) -> dict[str, Any]:
        """Insert a decision and its audit record in one transaction (before anything is acted on).

        ``finish=(job_id, owner, target)`` also finishes the job and releases its target in the same
        transaction: for decisions that need no execution, deciding is the whole job.
        """
        now = self.clock()
        values = {"id": new_id(), "created_at": now, "updated_at": now, **row}
        with self._tx() as conn:
            conn.execute(insert(s.decisions).values(values))
            self.audit(conn, "decision", message, target=values.get("target"), decision_id=values["id"],
                       alert_id=values.get("alert_id"), data=_decision_audit(values))  # fmt: skip
            if finish is not None:
                job_id, owner, target = finish
                self.finish_job(job_id, owner, target=target, conn=conn)
        return values

    def update_decision(
        self,
        decision_id: str,
        message: str | None = None,
        *,
        audit_kind: str = "decision",
        audit_data: Mapping[str, Any] | None = None,
        expect_status: Iterable[str] | None = None,
        **values: Any,
    ) -> bool:
        """Update a decision (optionally only from ``expect_status``) and audit it; False if not updated."""
        now = self.clock()
        d = s.decisions
        stmt = update(d).where(d.c.id == decision_id)
        if expect_status is not None:
            stmt = stmt.where(d.c.status.in_(tuple(expect_status)))
        with self._tx() as conn:
            changed = conn.execute(stmt.values(updated_at=now, **values)).rowcount
            if changed and message:
                target = conn.execute(select(d.c.target).where(d.c.id == decision_id)).scalar()
                self.audit(conn, audit_kind, message, target=target, decision_id=decision_id,
                           data=audit_data if audit_data is not None else _jsonable(values))  # fmt: skip
        return bool(changed)

    def approve_decision(self, decision_id: str, *, actor: str, reason: str = "") -> tuple[bool, str] | None:
        """``pending_approval`` → ``approved`` and an execute job, atomically.

        Returns (changed, status now), or None when there is no such decision."""
        now = self.clock()
        d = s.decisions
        with self._tx() as conn:
            row = conn.execute(select(d.c.status, d.c.target).where(d.c.id == decision_id)).first()
            if row is None:
                return None
            if row.status != "pending_approval":
                return False, str(row.status)
            conn.execute(update(d).where(d.c.id == decision_id).values(status="approved", actor=actor, updated_at=now))
            self.enqueue(f"decision:{decision_id}:execute", "execute", target=row.target, decision_id=decision_id,
                         conn=conn)  # fmt: skip
            self.audit(conn, "approval", f"approved by {actor}" + (f": {reason}" if reason else ""),
                       target=row.target, decision_id=decision_id, data={"actor": actor, "reason": reason})  # fmt: skip
        return True, "approved"

    def reject_decision(self, decision_id: str, *, actor: str, reason: str = "") -> tuple[bool, str] | None:
        """``pending_approval`` → ``rejected``, with who and why. Returns (changed, status now) or None."""
        now = self.clock()
        d = s.decisions
        with self._tx() as conn:
            row = conn.execute(select(d.c.status, d.c.target).where(d.c.id == decision_id)).first()
            if row is None:
                return None
            if row.status != "pending_approval":
                return False, str(row.status)
            conn.execute(
                update(d).where(d.c.id == decision_id)
                .values(status="rejected", actor=actor, updated_at=now, finished_at=now)
            )  # fmt: skip
            self.audit(conn, "approval", f"rejected by {actor}" + (f": {reason}" if reason else ""),
                       target=row.target, decision_id=decision_id, data={"actor": actor, "reason": reason})  # fmt: skip
        return True, "rejected"

    def create_manual(
        self, target: str, *, actor: str, reason: str, payload: Mapping[str, Any], idempotency_key: str | None
    ) -> dict[str, Any]:
        """Record a manual rollback request as a queued decision plus its job, in one transaction.

        With an ``idempotency_key``, repeating the request returns the first decision instead of a new one.
        """
        now = self.clock()
        key = f"manual:{idempotency_key}" if idempotency_key else f"manual:{new_id()}"
        with self._tx() as conn:
            existing = conn.execute(select(s.jobs.c.decision_id).where(s.jobs.c.key == key)).scalar()
            if existing:
                row = conn.execute(select(s.decisions).where(s.decisions.c.id == existing)).mappings().one()
                return dict(row) | {"duplicate": True}
            values = {
                "id": new_id(),
                "target": target,
                "action": "rollback",
                "strategy": payload.get("strategy"),
                "mode": "manual",
                "status": "queued",
                # A name or tag is resolved against the platform's history when the worker takes the request.
                "to_revision": payload.get("to_revision") if isinstance(payload.get("to_revision"), int) else None,
                "reasons": [f"manual rollback requested by {actor}" + (f": {reason}" if reason else "")],
                "inputs": {"request": dict(payload), "actor": actor},
                "actor": actor,
                "created_at": now,
                "updated_at": now,
            }
            conn.execute(insert(s.decisions).values(values))
            self.enqueue(key, "execute", target=target, decision_id=values["id"], payload=payload, conn=conn)
            self.audit(conn, "decision", values["reasons"][0], target=target, decision_id=values["id"],
                       data=_decision_audit(values))  # fmt: skip
        return values

    def get_decision(self, decision_id: str, *, with_trail: bool = False) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.decisions).where(s.decisions.c.id == decision_id)).mappings().first()
            if row is None:
                return None
            decision = dict(row)
            if with_trail:
                decision["steps"] = [
                    dict(r)
                    for r in conn.execute(
                        select(s.steps).where(s.steps.c.decision_id == decision_id).order_by(s.steps.c.id)
                    ).mappings()
                ]
                decision["audit"] = [
                    dict(r)
                    for r in conn.execute(
                        select(s.audit).where(s.audit.c.decision_id == decision_id).order_by(s.audit.c.id)
                    ).mappings()
                ]
                if decision.get("alert_id"):
                    decision["alert"] = conn.execute(
                        select(s.alerts.c.summary).where(s.alerts.c.id == decision["alert_id"])
                    ).scalar()
        return decision

    def list_decisions(
        self,
        *,
        target: str | None = None,
        status: str | None = None,
        action: str | None = None,
        limit: int = 50,
        before: float | None = None,
        since: float | None = None,
    ) -> list[dict[str, Any]]:
        d = s.decisions
        query = select(d).order_by(d.c.created_at.desc(), d.c.id.desc())
        if target:
            query = query.where(d.c.target == target)
        if status:
            query = query.where(d.c.status == status)
        if action:
            query = query.where(d.c.action == action)
        if before is not None:
            query = query.where(d.c.created_at < before)
        if since is not None:
            query = query.where(d.c.created_at >= since)
        with self.engine.connect() as conn:
            return newest_first_page(conn, query, d.c.created_at, limit)

    def in_flight(self, target: str) -> list[dict[str, Any]]:
        """Decisions of ``target`` that are executing or queued for execution."""
        d = s.decisions
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.c.id, d.c.strategy, d.c.alert_id, d.c.status)
                .where(d.c.target == target, d.c.status.in_(("approved", "executing")))
            ).mappings().all()  # fmt: skip
        return [dict(r) for r in rows]

    def decisions_for_alert(self, alert_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.decisions).where(s.decisions.c.alert_id == alert_id)).mappings().all()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------------------------------ steps

    def step_result(self, decision_id: str, step_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.steps.c.status, s.steps.c.result)
                .where(s.steps.c.decision_id == decision_id, s.steps.c.step_id == step_id)
            ).first()  # fmt: skip
        if row is None or row.status != "done":
            return None
        return dict(row.result or {})

    def step_started(self, decision_id: str, step_id: str, action: str, target: str | None, detail: Any) -> None:
        now = self.clock()
        stmt = self._insert(s.steps).values(
            decision_id=decision_id, step_id=step_id, action=action, status="running", started_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["decision_id", "step_id"], set_={"status": "running", "started_at": now}
        )
        with self._tx() as conn:
            conn.execute(stmt)
            self.audit(conn, "step", f"step {step_id} started", target=target, decision_id=decision_id,
                       data={"step": step_id, "phase": "start", "detail": detail})  # fmt: skip

    def step_finished(
        self, decision_id: str, step_id: str, target: str | None, result: Mapping[str, Any], *, ok: bool = True
    ) -> None:
        now = self.clock()
        with self._tx() as conn:
            conn.execute(
                update(s.steps)
                .where(s.steps.c.decision_id == decision_id, s.steps.c.step_id == step_id)
                .values(status="done" if ok else "failed", finished_at=now, result=dict(result))
            )
            self.audit(conn, "step", f"step {step_id} {'done' if ok else 'failed'}", target=target,
                       decision_id=decision_id, data={"step": step_id, "phase": "end", "ok": ok,
                                                      "result": dict(result)})  # fmt: skip

    # ------------------------------------------------------------------------------------------ flags

    def set_flag(self, name: str, enabled: bool, *, actor: str | None) -> None:
        stmt = self._insert(s.flags).values(name=name, enabled=enabled, updated_at=self.clock(), actor=actor)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"enabled": enabled, "updated_at": stmt.excluded.updated_at, "actor": actor},
        )
        with self._tx() as conn:
            conn.execute(stmt)
            self.audit(conn, "flag", f"{name} {'on' if enabled else 'off'}", data={"actor": actor})

    def flag(self, name: str) -> bool:
        record = self.flag_record(name)
        return bool(record and record["enabled"])

    def flag_record(self, name: str) -> dict[str, Any] | None:
        """The flag with who set it and when (``enabled``, ``updated_at``, ``actor``); None if never set."""
        f = s.flags
        with self.engine.connect() as conn:
            row = conn.execute(select(f.c.enabled, f.c.updated_at, f.c.actor).where(f.c.name == name)).first()
        return None if row is None else {"enabled": bool(row.enabled), "updated_at": row.updated_at, "actor": row.actor}

    # ------------------------------------------------------------------------------------------ audit

    def audit_trail(
        self, *, target: str | None = None, decision_id: str | None = None, limit: int = 100, since: float = 0.0
    ) -> list[dict[str, Any]]:
        a = s.audit
        query = select(a).where(a.c.at >= since).order_by(a.c.id.desc()).limit(limit)
        if target:
            query = query.where(a.c.target == target)
        if decision_id:
            query = query.where(a.c.decision_id == decision_id)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return rows[::-1]


def _transient(exc: DBAPIError) -> bool:
    """Whether a driver error means "try again later" rather than a bug in our SQL."""
    text = str(exc.orig).lower()
    return any(
        word in text
        for word in (
            "locked",
            "busy",
            "disk",
            "connection",
            "server closed",
            "terminating",
            "timeout",
            "could not",
            "too many",
            "readonly",
            "read-only",
            "unable to open",
        )
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _FairRLock:
    """A reentrant lock granted in arrival order (``threading.RLock`` favours the thread that just released)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._owner: int | None = None
        self._count = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._count += 1
                return
            ticket = self._next_ticket
            self._next_ticket += 1
            while self._serving != ticket or self._owner is not None:
                self._cond.wait()
            self._owner, self._count = me, 1

    def __exit__(self, *_exc: object) -> None:
        with self._cond:
            self._count -= 1
            if self._count == 0:
                self._owner = None
                self._serving += 1
                self._cond.notify_all()


class _WriteLock:
    """One SQLite writer at a time across this host's threads and processes.

    SQLite serializes writers itself, but a waiting writer polls with sleeps of up to 100 ms, which under
    contention between gunicorn processes costs far more than the writes. An exclusive ``flock`` on a file
    next to the database queues writers in the kernel instead and wakes the next one at once. The lock dies
    with its process, so a crashed worker never leaves it held. PostgreSQL needs none of this.
    """

    def __init__(self, database: str | None) -> None:
        self._path = f"{database}.write-lock" if database else None
        # Reentrant (a caller may hold it around several transactions, see Store.exclusive) and fair: the
        # job worker writes in a tight loop, and an unfair lock would let it starve the intake writer.
        self._thread_lock = _FairRLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        with self._thread_lock:
            self._depth += 1
            try:
                if self._depth == 1:
                    if self._pid != os.getpid():  # a forked child must not share its parent's file description
                        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                        self._pid = os.getpid()
                    assert self._fd is not None
                    fcntl.flock(self._fd, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    if self._depth == 1:
                        assert self._fd is not None
                        fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                self._depth -= 1


class _HotSQL:
    """Raw SQL of the intake hot path: four statements per batch, whatever its size.

    SQLite gets multi-row VALUES (and the driver's C executemany); PostgreSQL gets one ``unnest`` of column
    arrays per statement, so a batch costs four round trips instead of one per row. Only our own column
    names and placeholders are interpolated (hence the S608 waivers); values are always bound.
    """

    ALERTS = ("source", "fingerprint", "starts_at", "status", "name", "target", "severity", "received_at",
              "resolved_at", "group_key", "summary", "raw")  # fmt: skip
    ALERT_TYPES = ("text", "text", "float8", "text", "text", "text", "text", "float8", "float8", "text", "json", "json")
    JOBS = ("key", "kind", "alert_id", "target", "status", "attempts", "run_after", "created_at", "updated_at")
    JOB_TYPES = ("text", "text", "int8", "text", "text", "int4", "float8", "float8", "float8")
    AUDIT = ("at", "kind", "target", "alert_id", "message", "data")
    AUDIT_TYPES = ("float8", "text", "text", "int8", "text", "json")
    RETURNING = "RETURNING id, source, fingerprint, starts_at"

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"
        self._cache: dict[tuple[str, int], str] = {}
        if self.postgres:
            self._jobs = self._unnest("jobs", self.JOBS, self.JOB_TYPES) + " ON CONFLICT (key) DO NOTHING"
            self._audit = self._unnest("audit", self.AUDIT, self.AUDIT_TYPES)
            self._alerts = (
                self._unnest("alerts", self.ALERTS, self.ALERT_TYPES)
                + f" ON CONFLICT (source, fingerprint, starts_at) DO NOTHING {self.RETURNING}"
            )
        else:
            self._jobs = f"INSERT INTO jobs ({', '.join(self.JOBS)}) VALUES ({_marks(len(self.JOBS))}) "  # noqa: S608
            self._jobs += "ON CONFLICT (key) DO NOTHING"
            self._audit = f"INSERT INTO audit ({', '.join(self.AUDIT)}) VALUES ({_marks(len(self.AUDIT))})"  # noqa: S608

    @staticmethod
    def _unnest(table: str, columns: tuple[str, ...], types: tuple[str, ...]) -> str:
        names = ", ".join(columns)
        arrays = ", ".join(f"%b::{'text' if t == 'json' else t}[]" for t in types)
        casts = ", ".join(f"c{i}::json" if t == "json" else f"c{i}" for i, t in enumerate(types))
        aliases = ", ".join(f"c{i}" for i in range(len(types)))
        return f"INSERT INTO {table} ({names}) SELECT {casts} FROM unnest({arrays}) AS x({aliases})"  # noqa: S608

    @staticmethod
    def _pg(conn: Connection, sql: str, params: tuple[Any, ...], *, fetch: bool = False) -> list[Any]:
        """Run on psycopg directly, in binary format: text arrays then need no escaping (the text format
        escapes every element with a regular expression, which dominated the cost)."""
        driver = conn.connection.driver_connection
        with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, params)
            return cursor.fetchall() if fetch else []

    def select_known(self, conn: Connection, fingerprints: Sequence[str]) -> Iterable[Any]:
        if self.postgres:
            # Without statistics (a new database, or a table that grew faster than autovacuum analyzes it) the
            # planner rates `= ANY` of a few dozen values as a large share of the table and scans all of it:
            # every commit then costs more than the last. This lookup is always a handful of index probes.
            self._pg(conn, "SET LOCAL enable_seqscan = off", ())
            sql = "SELECT id, source, fingerprint, starts_at, status FROM alerts WHERE fingerprint = ANY(%b::text[])"
            return self._pg(conn, sql, (list(fingerprints),), fetch=True)
        key = ("select", len(fingerprints))
        if key not in self._cache:
            self._cache[key] = (
                "SELECT id, source, fingerprint, starts_at, status FROM alerts "  # noqa: S608
                f"WHERE fingerprint IN ({_marks(len(fingerprints))})"
            )
        return conn.exec_driver_sql(self._cache[key], tuple(fingerprints))

    def insert_alerts(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> Iterable[Any]:
        if self.postgres:
            return self._pg(conn, self._alerts, tuple(list(col) for col in zip(*rows)), fetch=True)
        key = ("alerts", len(rows))
        if key not in self._cache:
            values = ", ".join([f"({_marks(len(self.ALERTS))})"] * len(rows))
            self._cache[key] = (
                f"INSERT INTO alerts ({', '.join(self.ALERTS)}) VALUES {values} "  # noqa: S608
                f"ON CONFLICT (source, fingerprint, starts_at) DO NOTHING {self.RETURNING}"
            )
        return conn.exec_driver_sql(self._cache[key], tuple(v for row in rows for v in row))

    def insert_jobs(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        self._many(conn, self._jobs, rows)

    def insert_audit(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        self._many(conn, self._audit, rows)

    def _many(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            self._pg(conn, sql, tuple(list(col) for col in zip(*rows)))
        else:
            conn.exec_driver_sql(sql, list(rows))


def _marks(n: int) -> str:
    return ", ".join(["?"] * n)


def _job_values(key: str, kind: str, alert_id: int, target: str | None, now: float) -> tuple[Any, ...]:
    return (key, kind, alert_id, target, "pending", 0, now, now, now)


def _alert_audit(now: float, message: str, alert: Alert, alert_id: int) -> tuple[Any, ...]:
    """The audit row of a received alert: what it was; the full alert is in the alerts table (alert_id)."""
    data = {"fingerprint": alert.fingerprint, "status": alert.status, "severity": alert.severity,
            "starts_at": alert.starts_at.isoformat(), "labels": dict(alert.labels)}  # fmt: skip
    return (now, "alert", alert.target.key, alert_id, message, _dumps(data))


def _job_row(key: str, kind: str, alert_id: int | None, target: str | None, now: float) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "alert_id": alert_id,
        "decision_id": None,
        "target": target,
        "status": "pending",
        "attempts": 0,
        "run_after": now,
        "created_at": now,
        "updated_at": now,
        "payload": None,
    }


def _audit_row(
    now: float, kind: str, message: str, target: str | None, alert_id: int | None, data: Any
) -> dict[str, Any]:
    return {
        "at": now,
        "kind": kind,
        "target": target,
        "decision_id": None,
        "alert_id": alert_id,
        "message": message,
        "data": data,
    }


def _decision_audit(values: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("action", "strategy", "mode", "status", "from_revision", "to_revision", "reasons", "inputs", "actor")
    return {k: values.get(k) for k in keys}


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, str | int | float | bool | list | dict | type(None))}
