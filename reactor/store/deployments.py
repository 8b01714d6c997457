"""Deployments in the store: registration, the soak job, verdicts and revision marks.

A mix-in of :class:`reactor.store.Store` (it uses the store's transactions and audit trail), kept apart so the
deployment lifecycle reads in one place:

* **Registration** inserts the deployment, supersedes the target's older deployments still waiting for a
  verdict, and queues two jobs in the same transaction: ``deployment:<id>:record`` (due now: let the platform
  record its revision) and ``deployment:<id>:soak`` (due when the soak ends). The job table is the scheduler:
  the verdict is reached without anyone polling, by whichever worker process is alive, after any restart.
* **A newer deploy wins over a rollback in flight**: registration asks the target's executing rollbacks to
  stop before their next step and supersedes approvals still pending, in the same transaction, so a fix
  shipped while the reactor is rolling back is not reverted by the old decision.
* **Idempotency**: a client-chosen key (``Idempotency-Key`` header or ``idempotency_key``) is stored hashed
  and unique, so a retried registration (a CI step re-run, Argo CD's webhook retries) returns the first one.
* **Verdicts** change a deployment only from ``in_progress`` (people's marks excepted), with the revision
  marks they imply, in one audited transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from reactor.store import schema as s
from reactor.store.db import newest_first_page


def idempotency_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class DeploymentStore:
    """Deployment rows and revision marks; mixed into :class:`~reactor.store.Store`."""

    if TYPE_CHECKING:
        engine: Engine
        clock: Any

        def _tx(self) -> AbstractContextManager[Connection]: ...

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
        ) -> None: ...

    # ------------------------------------------------------------------------------------ registration

    def register_deployment(
        self, row: Mapping[str, Any], *, soak_seconds: float = 600.0, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Register a deploy and schedule its verdict; returns the row (``duplicate`` set on a retry)."""
        from reactor.store.store import new_id

        key = idempotency_hash(idempotency_key) if idempotency_key else None
        if key is not None:
            found = self._by_idempotency_key(key)
            if found is not None:
                return found | {"duplicate": True}
        now = self.clock()
        values = {
            "id": new_id(),
            "started_at": now,
            "status": "in_progress",
            "soak_until": now + soak_seconds,
            "idempotency_key": key,
            **row,
        }
        target = values["target"]
        try:
            with self._tx() as conn:
                d = s.deployments
                older = conn.execute(
                    select(d.c.id, d.c.revision).where(d.c.target == target, d.c.status == "in_progress")
                ).all()
                for old in older:
                    reason = f"superseded by deployment {values['id']} of revision {values['revision']}"
                    conn.execute(
                        update(d)
                        .where(d.c.id == old.id, d.c.status == "in_progress")
                        .values(status="superseded", verdict_at=now, verdict_reason=reason, verdict_by="reactor")
                    )
                    self.audit(conn, "deployment", f"deployment {old.id} of revision {old.revision} {reason}",
                               target=target, data={"deployment": old.id, "status": "superseded"})  # fmt: skip
                conn.execute(insert(d).values(values))
                self._stop_rollbacks(conn, target, values["id"], values["revision"], now)
                key = f"deployment:{values['id']}"
                jobs = [_job(f"{key}:record", "record", target, run_after=now, now=now),
                        _job(f"{key}:soak", "soak", target, run_after=values["soak_until"], now=now)]  # fmt: skip
                conn.execute(insert(s.jobs), jobs)
                self.audit(
                    conn,
                    "deployment",
                    f"deployment {values['id']} of revision {values['revision']} registered; "
                    f"soak of {soak_seconds:.0f}s",
                    target=target,
                    data={k: v for k, v in values.items() if k != "idempotency_key" and _plain(v)},
                )
        except IntegrityError:
            # Two requests with one Idempotency-Key raced (PostgreSQL): the other one's row stands.
            found = self._by_idempotency_key(key) if key else None
            if found is None:
                raise
            return found | {"duplicate": True}
        return values | {"duplicate": False}

    def _stop_rollbacks(self, conn: Connection, target: str, deployment_id: str, revision: str, now: float) -> None:
        """Stop the target's rollbacks in flight and supersede its pending approvals: they were decided about
        the revision this deploy replaces. The strategies check the stop before each step."""
        dec = s.decisions
        why = f"deployment {deployment_id} of revision {revision} was registered"
        rows = conn.execute(
            select(dec.c.id, dec.c.status).where(
                dec.c.target == target, dec.c.status.in_(("approved", "executing", "pending_approval"))
            )
        ).all()
        for row in rows:
            if row.status == "pending_approval":
                changed = conn.execute(
                    update(dec)
                    .where(dec.c.id == row.id, dec.c.status == "pending_approval")
                    .values(status="superseded", updated_at=now)
                ).rowcount
                message = f"approval no longer needed: {why}"
            else:
                changed = conn.execute(
                    update(dec)
                    .where(dec.c.id == row.id, dec.c.stop_reason.is_(None))
                    .values(stop_reason=why, updated_at=now)
                ).rowcount
                message = f"stop requested: {why}"
            if changed:
                self.audit(conn, "stop", message, target=target, decision_id=row.id,
                           data={"reason": "newer deployment", "deployment": deployment_id})  # fmt: skip

    def _by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.deployments).where(s.deployments.c.idempotency_key == key)).mappings().first()
        return dict(row) if row else None

    # ------------------------------------------------------------------------------------------- reads

    def get_deployment(self, deployment_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.deployments).where(s.deployments.c.id == deployment_id)).mappings().first()
        return dict(row) if row else None

    def list_deployments(
        self,
        *,
        target: str | None = None,
        status: str | None = None,
        revision: str | None = None,
        limit: int = 50,
        before: float | None = None,
    ) -> list[dict[str, Any]]:
        """Deployments, newest first."""
        d = s.deployments
        query = select(d).order_by(d.c.started_at.desc(), d.c.id.desc())
        if target:
            query = query.where(d.c.target == target)
        if status:
            query = query.where(d.c.status == status)
        if revision:
            query = query.where(d.c.revision == revision)
        if before is not None:
            query = query.where(d.c.started_at < before)
        with self.engine.connect() as conn:
            return newest_first_page(conn, query, d.c.started_at, limit)

    def deployment_activity(self, target: str, since: float) -> dict[str, list[dict[str, Any]]]:
        """What happened to ``target``: decisions created since ``since`` (oldest first), alerts firing now,
        and the state of those alerts' evaluation jobs."""
        d, a, j = s.decisions, s.alerts, s.jobs
        with self.engine.connect() as conn:
            decisions = conn.execute(
                select(d.c.id, d.c.action, d.c.status, d.c.mode, d.c.strategy, d.c.from_revision, d.c.to_revision,
                       d.c.reasons, d.c.inputs, d.c.alert_id, d.c.created_at)
                .where(d.c.target == target, d.c.created_at >= since)
                .order_by(d.c.created_at, d.c.id)
            ).mappings().all()  # fmt: skip
            alerts = (
                conn.execute(
                    select(a.c.id, a.c.name, a.c.starts_at, a.c.summary).where(
                        a.c.target == target, a.c.status == "firing"
                    )
                )
                .mappings()
                .all()
            )
            ids = [r["id"] for r in alerts]
            evaluating = select(j.c.alert_id, j.c.status).where(j.c.alert_id.in_(ids), j.c.kind == "evaluate")
            jobs = conn.execute(evaluating).all() if ids else []
        return {
            "decisions": [dict(r) for r in decisions],
            "alerts": [dict(r) for r in alerts],
            "jobs": [{"alert_id": r.alert_id, "status": r.status} for r in jobs],
        }

    # ---------------------------------------------------------------------------------------- verdicts

    def settle_deployment(
        self,
        deployment_id: str,
        status: str,
        reason: str,
        *,
        by: str,
        marks: Sequence[tuple[str, str]] = (),
        expect: Sequence[str] | None = ("in_progress",),
        data: Mapping[str, Any] | None = None,
        decision_id: str | None = None,
    ) -> bool:
        """Give a deployment its verdict (only from ``expect`` statuses; None: from any) and record the revision
        marks it implies, in one transaction. ``decision_id``: the decision the verdict comes from, kept in the
        deployment's ``data``. Returns whether the deployment changed."""
        d = s.deployments
        now = self.clock()
        with self._tx() as conn:
            row = conn.execute(
                select(d.c.target, d.c.status, d.c.revision, d.c.data).where(d.c.id == deployment_id)
            ).first()
            if row is None or (expect is not None and row.status not in expect):
                return False
            kept = {**(row.data or {}), "decision_id": decision_id}
            conn.execute(
                update(d)
                .where(d.c.id == deployment_id)
                .values(status=status, verdict_at=now, verdict_reason=reason, verdict_by=by, data=kept)
            )
            self.audit(conn, "deployment", f"deployment {deployment_id} of revision {row.revision} is {status}: "
                       f"{reason}", target=row.target,
                       data={"deployment": deployment_id, "status": status, "previous_status": row.status, "by": by,
                             "reason": reason, **(data or {})})  # fmt: skip
            for revision, verdict in dict(marks).items():
                self.mark_revision(row.target, revision, verdict, actor=by, reason=reason, conn=conn)
        return True

    def set_platform_revision(self, deployment_id: str, number: int, message: str) -> None:
        d = s.deployments
        with self._tx() as conn:
            conn.execute(update(d).where(d.c.id == deployment_id).values(platform_revision=number))
            target = conn.execute(select(d.c.target).where(d.c.id == deployment_id)).scalar()
            self.audit(conn, "deployment", message, target=target,
                       data={"deployment": deployment_id, "platform_revision": number})  # fmt: skip

    def update_deployment(self, deployment_id: str, message: str, **values: Any) -> None:
        with self._tx() as conn:
            conn.execute(update(s.deployments).where(s.deployments.c.id == deployment_id).values(**values))
            target = conn.execute(select(s.deployments.c.target).where(s.deployments.c.id == deployment_id)).scalar()
            self.audit(conn, "deployment", message, target=target, data={k: v for k, v in values.items() if _plain(v)})

    # ------------------------------------------------------------------------------------------- marks

    def mark_revision(
        self,
        target: str,
        revision: str,
        verdict: str,
        *,
        actor: str | None,
        reason: str,
        conn: Connection | None = None,
    ) -> None:
        """Record that ``revision`` of ``target`` is ``good`` or ``bad``; the newest mark of a revision wins."""
        if conn is None:
            with self._tx() as own:
                self.mark_revision(target, revision, verdict, actor=actor, reason=reason, conn=own)
            return
        conn.execute(
            insert(s.revision_marks).values(
                target=target, revision=revision, verdict=verdict, at=self.clock(), actor=actor, reason=reason
            )
        )
        self.audit(conn, "mark", f"revision {revision} marked {verdict}" + (f" by {actor}" if actor else "")
                   + (f": {reason}" if reason else ""), target=target,
                   data={"revision": revision, "verdict": verdict, "actor": actor, "reason": reason})  # fmt: skip

    def revision_marks(self, target: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """Marks of ``target``, newest first."""
        m = s.revision_marks
        query = select(m).where(m.c.target == target).order_by(m.c.at.desc(), m.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


def last_known_good(marks: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The newest ``good`` mark of a revision whose newest mark is still ``good`` (``marks`` newest first)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for mark in marks:
        latest.setdefault(mark["revision"], mark)
    good = [m for m in latest.values() if m["verdict"] == "good"]
    return dict(max(good, key=lambda m: (m["at"], m["id"]))) if good else None


def _job(key: str, kind: str, target: str, *, run_after: float, now: float) -> dict[str, Any]:
    return {"key": key, "kind": kind, "target": target, "status": "pending", "attempts": 0, "run_after": run_after,
            "created_at": now, "updated_at": now}  # fmt: skip


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict | type(None))
