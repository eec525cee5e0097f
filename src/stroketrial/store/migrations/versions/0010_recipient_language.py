"""The language of a notification recipient's emails (English, Simplified Chinese, or none: both).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification_recipients") as batch:
        batch.add_column(sa.Column("language", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_recipients") as batch:
        batch.drop_column("language")
