"""Investigational product supply: physical kits, shipments, per-site supply levels, resupply requests.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("supply_shipments", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), nullable=False, index=True),
                    sa.Column("status", sa.String(20), nullable=False),
                    sa.Column("shipped_on", sa.Date, nullable=False),
                    sa.Column("expected_on", sa.Date, nullable=True),
                    sa.Column("created_at", TZ, nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False),
                    sa.Column("received_at", TZ, nullable=True),
                    sa.Column("received_by", sa.String(80), nullable=True))
    op.create_table("supply_kits", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("kit_number", sa.String(20), nullable=False),
                    sa.Column("arm", sa.String(60), nullable=False),
                    sa.Column("lot", sa.String(40), nullable=False),
                    sa.Column("expiry", sa.Date, nullable=False),
                    sa.Column("status", sa.String(20), nullable=False),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), nullable=True, index=True),
                    sa.Column("shipment_id", sa.Integer, sa.ForeignKey("supply_shipments.id"), nullable=True,
                              index=True),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=True, index=True),
                    sa.Column("replaces", sa.String(20), nullable=True),
                    sa.Column("note", sa.Text, nullable=True),
                    sa.Column("created_at", TZ, nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False),
                    sa.Column("dispensed_at", TZ, nullable=True),
                    sa.Column("dispensed_by", sa.String(80), nullable=True),
                    sa.Column("updated_at", TZ, nullable=False),
                    sa.Column("updated_by", sa.String(80), nullable=False),
                    sa.UniqueConstraint("trial_id", "kit_number", name="uq_supply_kit_number"))
    op.create_table("supply_site_levels",
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), primary_key=True),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), primary_key=True),
                    sa.Column("trigger_per_arm", sa.Integer, nullable=False),
                    sa.Column("target_per_arm", sa.Integer, nullable=False),
                    sa.Column("set_at", TZ, nullable=False),
                    sa.Column("set_by", sa.String(80), nullable=False))
    op.create_table("supply_resupply_requests", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), nullable=False, index=True),
                    sa.Column("arm", sa.String(60), nullable=False),
                    sa.Column("kits", sa.Integer, nullable=False),
                    sa.Column("urgent", sa.Boolean, nullable=False),
                    sa.Column("status", sa.String(20), nullable=False),
                    sa.Column("reason", sa.Text, nullable=False),
                    sa.Column("raised_at", TZ, nullable=False),
                    sa.Column("raised_by", sa.String(80), nullable=False),
                    sa.Column("shipment_id", sa.Integer, sa.ForeignKey("supply_shipments.id"), nullable=True),
                    sa.Column("closed_at", TZ, nullable=True))


def downgrade() -> None:
    op.drop_table("supply_resupply_requests")
    op.drop_table("supply_site_levels")
    op.drop_table("supply_kits")
    op.drop_table("supply_shipments")
