"""The DSMB's reports as generated: each closed or open report kept as HTML and PDF with the data snapshot's hash.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("dsmb_reports", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("number", sa.Integer, nullable=False),
                    sa.Column("kind", sa.String(10), nullable=False),
                    sa.Column("look", sa.Integer, nullable=True),
                    sa.Column("patients", sa.Integer, nullable=False),
                    sa.Column("data_sha256", sa.String(64), nullable=False),
                    sa.Column("html", sa.Text, nullable=False),
                    sa.Column("html_sha256", sa.String(64), nullable=False),
                    sa.Column("pdf", sa.LargeBinary, nullable=False),
                    sa.Column("pdf_sha256", sa.String(64), nullable=False),
                    sa.Column("lock_id", sa.Integer, sa.ForeignKey("data_locks.id"), nullable=True),
                    sa.Column("generated_by", sa.String(80), nullable=False),
                    sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
                    sa.UniqueConstraint("trial_id", "number", name="uq_dsmb_report_number"))


def downgrade() -> None:
    op.drop_table("dsmb_reports")
