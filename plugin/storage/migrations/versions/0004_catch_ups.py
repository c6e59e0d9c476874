"""Catch-ups: when the review last listed each connector's recent changes without error.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catch_ups",
        sa.Column("connector", sa.String(32), nullable=False),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", name="pk_catch_ups"),
    )


def downgrade() -> None:
    op.drop_table("catch_ups")
