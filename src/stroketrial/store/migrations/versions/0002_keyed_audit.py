"""The audit trail keyed with a secret outside the database: each event records its chain version and site;
each site has a time zone, in which its staff's clock times (last known well, puncture) are read.

Events from before this revision keep chain version 1 (plain SHA-256); every event written
afterwards is HMAC-SHA256 under the keystore's audit key (`store/keystore.py`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN rewrites no row, so the append-only triggers stay in force throughout.
    with op.batch_alter_table("audit_events", recreate="never") as batch:
        batch.add_column(sa.Column("site_code", sa.String(40), nullable=True))
        batch.add_column(sa.Column("chain", sa.Integer, nullable=False, server_default="1"))
    with op.batch_alter_table("sites", recreate="never") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))


def downgrade() -> None:
    with op.batch_alter_table("sites", recreate="never") as batch:
        batch.drop_column("timezone")
    with op.batch_alter_table("audit_events", recreate="never") as batch:
        batch.drop_column("chain")
        batch.drop_column("site_code")
