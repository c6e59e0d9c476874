"""Engagements remember why writes to them stopped: a sticky comment that turned out
client-visible (`LeakPrevented`) stops every further write to that ticket until a person
resumes it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("engagements") as table:
        table.add_column(sa.Column("writes_stopped", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engagements") as table:
        table.drop_column("writes_stopped")
