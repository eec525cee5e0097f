"""The platform's first schema: sites, users, trials, patients, allocations, follow-up, audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# A migration is frozen history: it keeps its own copy of the genesis hash rather than importing
# store.audit, so a later change there can never change what this revision did.
GENESIS = "0" * 64
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("sites", sa.Column("code", sa.String(40), primary_key=True),
                    sa.Column("name", sa.String(200), nullable=False), sa.Column("created_at", TZ, nullable=False))
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(80), nullable=False, unique=True),
                    sa.Column("role", sa.String(40), nullable=False),
                    sa.Column("password_hash", sa.String(200), nullable=True),
                    sa.Column("active", sa.Boolean, nullable=False), sa.Column("created_at", TZ, nullable=False))
    op.create_table("user_sites", sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), primary_key=True))
    op.create_table("api_tokens", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
                    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
                    sa.Column("created_at", TZ, nullable=False), sa.Column("revoked", sa.Boolean, nullable=False))
    op.create_table("trials", sa.Column("id", sa.String(60), primary_key=True),
                    sa.Column("protocol_json", sa.Text, nullable=False), sa.Column("created_at", TZ, nullable=False))
    op.create_table("trial_sites", sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), primary_key=True),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), primary_key=True))
    op.create_table("patients", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("code", sa.String(60), nullable=False),
                    sa.Column("site_code", sa.String(40), sa.ForeignKey("sites.code"), nullable=False),
                    sa.Column("data_json", sa.Text, nullable=False), sa.Column("status", sa.String(20), nullable=False),
                    sa.Column("screening_json", sa.Text, nullable=False), sa.Column("created_at", TZ, nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False),
                    sa.UniqueConstraint("trial_id", "code", name="uq_patient_code"))
    op.create_table("allocations", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, unique=True),
                    sa.Column("sequence", sa.Integer, nullable=False), sa.Column("arm", sa.String(60), nullable=False),
                    sa.Column("kit", sa.String(20), nullable=True), sa.Column("record_json", sa.Text, nullable=False),
                    sa.Column("idempotency_key", sa.String(200), nullable=False),
                    sa.Column("created_at", TZ, nullable=False), sa.Column("created_by", sa.String(80), nullable=False),
                    sa.UniqueConstraint("trial_id", "sequence", name="uq_allocation_sequence"),
                    sa.UniqueConstraint("trial_id", "idempotency_key", name="uq_allocation_key"))
    op.create_table("randomization_state",
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), primary_key=True),
                    sa.Column("state_json", sa.Text, nullable=False),
                    sa.Column("block_list_json", sa.Text, nullable=False),
                    sa.Column("kit_list_json", sa.Text, nullable=False))
    op.create_table("visit_records", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, index=True),
                    sa.Column("visit_id", sa.String(40), nullable=False),
                    sa.Column("visit_date", sa.String(10), nullable=False),
                    sa.Column("values_json", sa.Text, nullable=False), sa.Column("updated_at", TZ, nullable=False),
                    sa.Column("updated_by", sa.String(80), nullable=False),
                    sa.UniqueConstraint("patient_id", "visit_id", name="uq_visit"))
    op.create_table("serious_adverse_events", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, index=True),
                    sa.Column("data_json", sa.Text, nullable=False), sa.Column("created_at", TZ, nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False))
    op.create_table("unblindings", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, index=True),
                    sa.Column("reason", sa.Text, nullable=False), sa.Column("created_at", TZ, nullable=False),
                    sa.Column("created_by", sa.String(80), nullable=False))
    op.create_table("audit_events", sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("at", sa.String(40), nullable=False), sa.Column("actor", sa.String(80), nullable=False),
                    sa.Column("action", sa.String(60), nullable=False),
                    sa.Column("entity", sa.String(60), nullable=False),
                    sa.Column("entity_id", sa.String(120), nullable=False),
                    sa.Column("trial_id", sa.String(60), nullable=True, index=True),
                    sa.Column("before_json", sa.Text, nullable=True), sa.Column("after_json", sa.Text, nullable=True),
                    sa.Column("reason", sa.Text, nullable=True), sa.Column("prev_hash", sa.String(64), nullable=False),
                    sa.Column("hash", sa.String(64), nullable=False))
    op.create_table("audit_head", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("seq", sa.Integer, nullable=False), sa.Column("hash", sa.String(64), nullable=False))
    op.execute(sa.text(f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')"))
    # The trail is append-only in the database too: an UPDATE or DELETE is refused. Someone who
    # drops these triggers can still edit rows, and `stroketrial audit verify` then finds the break.
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(sa.text(f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                               "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"))
    else:
        op.execute(sa.text("CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
                           "RAISE EXCEPTION 'the audit trail is append-only'; END $$ LANGUAGE plpgsql"))
        op.execute(sa.text("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
                           "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute(sa.text("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events"))
        op.execute(sa.text("DROP FUNCTION IF EXISTS audit_events_append_only()"))
    for table in ("audit_head", "audit_events", "unblindings", "serious_adverse_events", "visit_records",
                  "randomization_state", "allocations", "patients", "trial_sites", "trials", "api_tokens",
                  "user_sites", "users", "sites"):
        op.drop_table(table)
