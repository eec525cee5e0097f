"""Protocol amendments: a trial's protocol versions, and the version each patient was screened under.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("protocol_versions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("protocol_json", sa.Text, nullable=False),
                    sa.Column("effective_from", TZ, nullable=False),
                    sa.Column("changes_json", sa.Text, nullable=False),
                    sa.Column("created_at", TZ, nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False),
                    sa.UniqueConstraint("trial_id", "version", name="uq_protocol_version"))
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("protocol_version", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("protocol_version")
    op.drop_table("protocol_versions")
