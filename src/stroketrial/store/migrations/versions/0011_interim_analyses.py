"""The DSMB's interim analyses: each look run on frozen or locked data, and the DSMB's signed decision after it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("interim_looks", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("number", sa.Integer, nullable=False),
                    sa.Column("patients_observed", sa.Integer, nullable=False),
                    sa.Column("information", sa.Float, nullable=False),
                    sa.Column("z", sa.Float, nullable=False),
                    sa.Column("recommendation", sa.String(60), nullable=False),
                    sa.Column("result_json", sa.Text, nullable=False),
                    sa.Column("data_sha256", sa.String(64), nullable=False),
                    sa.Column("lock_id", sa.Integer, sa.ForeignKey("data_locks.id"), nullable=True),
                    sa.Column("run_by", sa.String(80), nullable=False),
                    sa.Column("run_at", TZ, nullable=False),
                    sa.UniqueConstraint("trial_id", "number", name="uq_interim_look_number"))
    op.create_table("dsmb_decisions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("look_id", sa.Integer, sa.ForeignKey("interim_looks.id"), nullable=False, unique=True),
                    sa.Column("decision", sa.String(40), nullable=False),
                    sa.Column("reason", sa.Text, nullable=False),
                    sa.Column("decided_by", sa.String(80), nullable=False),
                    sa.Column("decided_at", TZ, nullable=False))


def downgrade() -> None:
    op.drop_table("dsmb_decisions")
    op.drop_table("interim_looks")
