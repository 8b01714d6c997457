"""Deployment verdicts: the soak deadline, who gave the verdict, the platform's revision, idempotent registration.

Deployments registered before this revision get a soak job that is due at once: it reschedules itself to the
end of the soak configured now, so no deployment stays ``in_progress`` forever after the upgrade.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deployments", sa.Column("soak_until", sa.Float(53)))
    op.add_column("deployments", sa.Column("verdict_by", sa.String(255)))
    op.add_column("deployments", sa.Column("platform_revision", sa.Integer))
    op.add_column("deployments", sa.Column("idempotency_key", sa.String(64)))
    op.create_index("ix_deployments_idempotency_key", "deployments", ["idempotency_key"], unique=True)
    op.create_index("ix_deployments_status", "deployments", ["status"])
    # (':' and 'soak' apart: SQLAlchemy would read ':soak' as a bind parameter.)
    op.execute(
        "INSERT INTO jobs (key, kind, target, status, attempts, run_after, created_at, updated_at) "
        "SELECT 'deployment:' || id || ':' || 'soak', 'soak', target, 'pending', 0, started_at, started_at, started_at "
        "FROM deployments WHERE status = 'in_progress'"
    )


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind IN ('soak', 'record')")
    op.drop_index("ix_deployments_status", "deployments")
    op.drop_index("ix_deployments_idempotency_key", "deployments")
    with op.batch_alter_table("deployments") as batch:
        for column in ("idempotency_key", "platform_revision", "verdict_by", "soak_until"):
            batch.drop_column(column)
