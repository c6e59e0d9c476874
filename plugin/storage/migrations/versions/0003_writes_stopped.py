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
    op.add_column("engagements", sa.Column("writes_stopped", sa.Text(), nullable=True))


def downgrade() -> None:
    # A plain ALTER (SQLite >= 3.35 drops a column in place): a batch operation would copy
    # the table and drop the old one, and with foreign keys on, its ON DELETE CASCADE would
    # empty findings and daily scores.
    op.drop_column("engagements", "writes_stopped")
