"""Periodic runs: the latest period each periodic job ran in, so that with several
processes enqueueing it, it runs once a period.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "periodic_runs",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("period", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_periodic_runs"),
    )


def downgrade() -> None:
    op.drop_table("periodic_runs")
