"""Randomization when the platform cannot be reached: sites' sets of sealed emergency envelopes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("envelope_sets", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), nullable=False),
                    sa.Column("method", sa.String(40), nullable=False),
                    sa.Column("count", sa.Integer, nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False),
                    sa.Column("created_at", TZ, nullable=False),
                    sa.Column("prints", sa.Integer, nullable=False),
                    sa.Column("voided_by", sa.String(80), nullable=True),
                    sa.Column("voided_at", TZ, nullable=True),
                    sa.Column("void_reason", sa.Text, nullable=True))
    op.create_table("envelopes", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("set_id", sa.Integer, sa.ForeignKey("envelope_sets.id"), nullable=False, index=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), nullable=False),
                    sa.Column("number", sa.Integer, nullable=False),
                    sa.Column("stratum", sa.String(300), nullable=False),
                    sa.Column("block", sa.Integer, nullable=False),
                    sa.Column("block_size", sa.Integer, nullable=False),
                    sa.Column("slot", sa.String(80), nullable=False),
                    sa.Column("arm", sa.String(60), nullable=False),
                    sa.Column("kit", sa.String(20), nullable=True),
                    sa.Column("status", sa.String(12), nullable=False),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=True, unique=True),
                    sa.Column("opened_at", TZ, nullable=True),
                    sa.Column("reconciled_by", sa.String(80), nullable=True),
                    sa.Column("reconciled_at", TZ, nullable=True),
                    sa.UniqueConstraint("trial_id", "site_code", "number", name="uq_envelope_number"))


def downgrade() -> None:
    op.drop_table("envelopes")
    op.drop_table("envelope_sets")
