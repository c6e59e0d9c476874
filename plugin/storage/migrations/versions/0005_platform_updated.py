"""Engagements remember when the platform last changed them, as the last evaluated snapshot
showed it (the platform's clock), so the review's catch-up skips changes an evaluation
already saw.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("engagements", sa.Column("platform_updated_at", sa.DateTime(timezone=True),
                                           nullable=True))


def downgrade() -> None:
    op.drop_column("engagements", "platform_updated_at")  # in place, as 0003 explains
