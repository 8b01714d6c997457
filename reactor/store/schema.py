"""Table definitions used by queries. The DDL that creates them lives in the versioned migrations
(``reactor/store/migrations/versions``); a test checks the two agree.

Times are stored as UTC epoch seconds (double precision): portable across SQLite and PostgreSQL, exact for
the dedup key, and cheap to compare.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("starts_at", Float(53), nullable=False),
    Column("status", String(16), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("target", String(512)),
    Column("severity", String(32)),
    Column("received_at", Float(53), nullable=False),
    Column("resolved_at", Float(53)),
    Column("group_key", Text, nullable=False, default=""),
    Column("summary", JSON, nullable=False),
    Column("raw", JSON, nullable=False),
    UniqueConstraint("source", "fingerprint", "starts_at", name="uq_alerts_dedup"),
    Index("ix_alerts_fingerprint", "fingerprint"),
    Index("ix_alerts_target", "target"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: uniqueness of work: ``alert:<id>:evaluate``, ``alert:<id>:resolve``, ``decision:<id>:execute``...
    Column("key", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("alert_id", Integer, ForeignKey("alerts.id")),
    Column("decision_id", String(32)),
    Column("target", String(512)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_after", Float(53), nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_until", Float(53)),
    Column("created_at", Float(53), nullable=False),
    Column("updated_at", Float(53), nullable=False),
    Column("last_error", Text),
    Column("payload", JSON),
    Index("ix_jobs_status_run_after", "status", "run_after"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(32), primary_key=True),
    #: one decision per job: a job re-run after a crash finds its decision instead of deciding again.
    Column("job_id", Integer, ForeignKey("jobs.id"), unique=True),
    Column("alert_id", Integer, ForeignKey("alerts.id")),
    Column("target", String(512)),
    Column("action", String(16), nullable=False),
    Column("strategy", String(32)),
    Column("mode", String(16), nullable=False),
    Column("status", String(24), nullable=False),
    Column("from_revision", Integer),
    Column("to_revision", Integer),
    Column("reasons", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("plan", JSON),
    Column("outcome", JSON),
    Column("stop_reason", Text),
    Column("actor", String(255)),
    Column("created_at", Float(53), nullable=False),
    Column("updated_at", Float(53), nullable=False),
    Column("finished_at", Float(53)),
    Index("ix_decisions_target_created", "target", "created_at"),
)

steps = Table(
    "steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(32), ForeignKey("decisions.id"), nullable=False),
    Column("step_id", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float(53), nullable=False),
    Column("finished_at", Float(53)),
    Column("result", JSON),
    UniqueConstraint("decision_id", "step_id", name="uq_steps_decision_step"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float(53), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("target", String(512)),
    Column("decision_id", String(32)),
    Column("alert_id", Integer),
    Column("message", Text, nullable=False),
    Column("data", JSON),
    Index("ix_audit_decision", "decision_id"),
    Index("ix_audit_target_at", "target", "at"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("target", String(512), nullable=False),
    Column("revision", String(128), nullable=False),
    Column("previous_revision", String(128)),
    Column("pipeline_url", Text),
    Column("started_at", Float(53), nullable=False),
    Column("status", String(24), nullable=False),
    Column("verdict_at", Float(53)),
    Column("verdict_reason", Text),
    Column("actor", String(255)),
    Column("data", JSON),
    #: when the healthy soak ends (0002); the soak job runs then.
    Column("soak_until", Float(53)),
    #: who gave the verdict: ``reactor`` or the person who marked the deployment (0002).
    Column("verdict_by", String(255)),
    #: the platform's own revision number, recorded right after registration when it can say (0002).
    Column("platform_revision", Integer),
    #: sha256 of the client's Idempotency-Key: a retried registration returns the first deployment (0002).
    Column("idempotency_key", String(64)),
    Index("ix_deployments_target_started", "target", "started_at"),
    Index("ix_deployments_idempotency_key", "idempotency_key", unique=True),
    Index("ix_deployments_status", "status"),
)

revision_marks = Table(
    "revision_marks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(512), nullable=False),
    Column("revision", String(128), nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("at", Float(53), nullable=False),
    Column("actor", String(255)),
    Column("reason", Text),
    Index("ix_revision_marks_target", "target", "revision"),
)

target_locks = Table(
    "target_locks",
    metadata,
    Column("target", String(512), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("lease_until", Float(53), nullable=False),
)

flags = Table(
    "flags",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", Float(53), nullable=False),
    Column("actor", String(255)),
)
