"""Initial schema: alerts, jobs, decisions, steps, the append-only audit trail, deployments, marks, locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

T = sa.Float(53)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("starts_at", T, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("target", sa.String(512)),
        sa.Column("severity", sa.String(32)),
        sa.Column("received_at", T, nullable=False),
        sa.Column("resolved_at", T),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.UniqueConstraint("source", "fingerprint", "starts_at", name="uq_alerts_dedup"),
    )
    op.create_index("ix_alerts_fingerprint", "alerts", ["fingerprint"])
    op.create_index("ix_alerts_target", "alerts", ["target"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id")),
        sa.Column("decision_id", sa.String(32)),
        sa.Column("target", sa.String(512)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("run_after", T, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", T),
        sa.Column("created_at", T, nullable=False),
        sa.Column("updated_at", T, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("payload", sa.JSON),
    )
    op.create_index("ix_jobs_status_run_after", "jobs", ["status", "run_after"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), unique=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id")),
        sa.Column("target", sa.String(512)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(32)),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("from_revision", sa.Integer),
        sa.Column("to_revision", sa.Integer),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("plan", sa.JSON),
        sa.Column("outcome", sa.JSON),
        sa.Column("stop_reason", sa.Text),
        sa.Column("actor", sa.String(255)),
        sa.Column("created_at", T, nullable=False),
        sa.Column("updated_at", T, nullable=False),
        sa.Column("finished_at", T),
    )
    op.create_index("ix_decisions_target_created", "decisions", ["target", "created_at"])
    op.create_table(
        "steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(32), sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("step_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", T, nullable=False),
        sa.Column("finished_at", T),
        sa.Column("result", sa.JSON),
        sa.UniqueConstraint("decision_id", "step_id", name="uq_steps_decision_step"),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", T, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(512)),
        sa.Column("decision_id", sa.String(32)),
        sa.Column("alert_id", sa.Integer),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.JSON),
    )
    op.create_index("ix_audit_decision", "audit", ["decision_id"])
    op.create_index("ix_audit_target_at", "audit", ["target", "at"])
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        sa.Column("previous_revision", sa.String(128)),
        sa.Column("pipeline_url", sa.Text),
        sa.Column("started_at", T, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("verdict_at", T),
        sa.Column("verdict_reason", sa.Text),
        sa.Column("actor", sa.String(255)),
        sa.Column("data", sa.JSON),
    )
    op.create_index("ix_deployments_target_started", "deployments", ["target", "started_at"])
    op.create_table(
        "revision_marks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("at", T, nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_revision_marks_target", "revision_marks", ["target", "revision"])
    op.create_table(
        "target_locks",
        sa.Column("target", sa.String(512), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("lease_until", T, nullable=False),
    )
    op.create_table(
        "flags",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("updated_at", T, nullable=False),
        sa.Column("actor", sa.String(255)),
    )
    _append_only("audit")


def downgrade() -> None:
    for table in ("flags", "target_locks", "revision_marks", "deployments", "audit", "steps", "decisions", "jobs"):
        op.drop_table(table)
    op.drop_table("alerts")


def _append_only(table: str) -> None:
    """Refuse UPDATE and DELETE on ``table`` in the database itself, not only in our code."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION smart_rollback_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'the % table is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION smart_rollback_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the {table} table is append-only'); END"
            )
