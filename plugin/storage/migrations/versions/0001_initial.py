"""The initial schema: events (the durable queue), engagements, findings, daily scores.

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
OPEN_FINDING = sa.text("resolved_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", ID, primary_key=True),
        sa.Column("connector", sa.String(32), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=False),
        sa.Column("engagement_key", sa.String(255), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=True),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("by_us", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("connector", "site", "delivery_id",
                            name="uq_events_connector_site_delivery_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'done', 'failed', 'ignored')",
            name="ck_events_status"),
    )
    op.create_index("ix_events_connector_site_engagement_key_status", "events",
                    ["connector", "site", "engagement_key", "status"])
    op.create_index("ix_events_status_received_at", "events", ["status", "received_at"])

    op.create_table(
        "engagements",
        sa.Column("id", ID, primary_key=True),
        sa.Column("connector", sa.String(32), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("display_key", sa.String(255), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("client_key", sa.String(255), nullable=True),
        sa.Column("account_manager", sa.String(255), nullable=True),
        sa.Column("sticky_comment_id", sa.String(255), nullable=True),
        sa.Column("sticky_hash", sa.String(128), nullable=True),
        sa.Column("last_score", sa.Integer(), nullable=True),
        sa.Column("last_band", sa.String(16), nullable=True),
        sa.Column("last_evaluated_at", TIMESTAMP, nullable=True),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engagements"),
        sa.UniqueConstraint("connector", "site", "key", name="uq_engagements_connector_site_key"),
    )

    op.create_table(
        "findings",
        sa.Column("id", ID, primary_key=True),
        sa.Column("engagement_id", ID, nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
        sa.ForeignKeyConstraint(["engagement_id"], ["engagements.id"], ondelete="CASCADE",
                                name="fk_findings_engagement_id_engagements"),
        sa.CheckConstraint("status IN ('warn', 'fail')", name="ck_findings_status"),
    )
    op.create_index("ix_findings_engagement_id", "findings", ["engagement_id"])
    op.create_index("ix_findings_first_seen", "findings", ["first_seen"])
    op.create_index("ix_findings_resolved_at", "findings", ["resolved_at"])
    op.create_index("uq_findings_open", "findings", ["engagement_id", "rule_id"], unique=True,
                    sqlite_where=OPEN_FINDING, postgresql_where=OPEN_FINDING)

    op.create_table(
        "daily_scores",
        sa.Column("engagement_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("band", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("engagement_id", "day", name="pk_daily_scores"),
        sa.ForeignKeyConstraint(["engagement_id"], ["engagements.id"], ondelete="CASCADE",
                                name="fk_daily_scores_engagement_id_engagements"),
    )


def downgrade() -> None:
    op.drop_table("daily_scores")
    op.drop_table("findings")
    op.drop_table("engagements")
    op.drop_table("events")
