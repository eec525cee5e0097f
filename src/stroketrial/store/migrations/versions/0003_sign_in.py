"""Sign-in: failed attempts (for lockouts per user name and per address) and server-side sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("login_failures", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("user_name", sa.String(80), nullable=False),
                    sa.Column("address", sa.String(64), nullable=False),
                    sa.Column("at", TZ, nullable=False))
    op.create_index("ix_login_failures_name_at", "login_failures", ["user_name", "at"])
    op.create_index("ix_login_failures_address_at", "login_failures", ["address", "at"])
    op.create_table("user_sessions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
                    sa.Column("created_at", TZ, nullable=False), sa.Column("last_seen_at", TZ, nullable=False),
                    sa.Column("ended_at", TZ, nullable=True), sa.Column("ended_why", sa.String(40), nullable=True))


def downgrade() -> None:
    op.drop_table("user_sessions")
    op.drop_index("ix_login_failures_address_at", table_name="login_failures")
    op.drop_index("ix_login_failures_name_at", table_name="login_failures")
    op.drop_table("login_failures")
