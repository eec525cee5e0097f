"""Dose escalation on the platform (cohort and level per patient, DLT assessments, the safety review
committee's signed decisions) and the registry of thrombectomy patients used as matched controls.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("escalation_assignments", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, unique=True),
                    sa.Column("cohort", sa.Integer, nullable=False), sa.Column("level", sa.Integer, nullable=False),
                    sa.Column("phase", sa.String(20), nullable=False), sa.Column("enrolled_at", TZ, nullable=False),
                    sa.Column("idempotency_key", sa.String(200), nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False),
                    sa.UniqueConstraint("trial_id", "idempotency_key", name="uq_escalation_key"))
    op.create_table("dlt_assessments", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, unique=True),
                    sa.Column("dlt", sa.Boolean, nullable=False), sa.Column("criterion", sa.Integer, nullable=True),
                    sa.Column("event", sa.Text, nullable=True), sa.Column("onset", sa.String(10), nullable=True),
                    sa.Column("recorded_at", TZ, nullable=False),
                    sa.Column("recorded_by", sa.String(80), nullable=False))
    op.create_table("escalation_decisions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("after_cohort", sa.Integer, nullable=False),
                    sa.Column("computed_json", sa.Text, nullable=False),
                    sa.Column("action", sa.String(20), nullable=False), sa.Column("level", sa.Integer, nullable=True),
                    sa.Column("mtd", sa.Integer, nullable=True), sa.Column("deviation", sa.Boolean, nullable=False),
                    sa.Column("reason", sa.Text, nullable=False), sa.Column("signed_by", sa.String(80), nullable=False),
                    sa.Column("signed_at", TZ, nullable=False),
                    sa.UniqueConstraint("trial_id", "after_cohort", name="uq_escalation_decision"))
    op.create_table("registry_patients", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("code", sa.String(60), nullable=False, unique=True),
                    sa.Column("data_json", sa.Text, nullable=False),
                    sa.Column("source_sha256", sa.String(64), nullable=False),
                    sa.Column("imported_at", TZ, nullable=False),
                    sa.Column("imported_by", sa.String(80), nullable=False))


def downgrade() -> None:
    for table in ("registry_patients", "escalation_decisions", "dlt_assessments", "escalation_assignments"):
        op.drop_table(table)
