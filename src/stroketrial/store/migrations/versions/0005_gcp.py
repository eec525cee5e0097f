"""The GCP workflow (issue 18): consent records, the adverse-event log, SAE reports and notifications, data
queries, source verification, record signatures and locks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _patient(nullable: bool = False) -> sa.Column:
    return sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=nullable, index=True)


def _trial() -> sa.Column:
    return sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), nullable=False, index=True)


def _text(name: str, length: int | None = None, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length) if length else sa.Text, nullable=nullable)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, TZ, nullable=nullable)


def upgrade() -> None:
    op.create_table("consents", _id(), _trial(), _patient(), _text("form_version", 40), _text("route", 30),
                    _time("consented_at"), _text("obtained_by", 80), _text("signer", 200, True),
                    _time("confirmation_due", True), _time("confirmed_at", True), _text("confirmed_route", 30, True),
                    _text("confirmed_by", 80, True), _time("withdrawn_at", True), _text("withdrawal", 30, True),
                    _text("withdrawal_reason", None, True), sa.Column("superseded_by", sa.Integer, nullable=True),
                    _time("created_at"), _text("created_by", 80))
    op.create_table("adverse_events", _id(), _patient(), _text("data_json"), _time("created_at"),
                    _text("created_by", 80), _time("updated_at", True), _text("updated_by", 80, True))
    op.create_table("sae_reports", _id(),
                    sa.Column("sae_id", sa.Integer, sa.ForeignKey("serious_adverse_events.id"), nullable=False,
                              index=True),
                    _text("kind", 20), _text("data_json"), _time("created_at"), _text("created_by", 80))
    op.create_table("notification_recipients", _id(), _trial(), _text("email", 254), _text("role", 40),
                    _time("created_at"), _text("created_by", 80),
                    sa.UniqueConstraint("trial_id", "email", name="uq_notification_recipient"))
    op.create_table("notifications", _id(), sa.Column("trial_id", sa.String(60), nullable=True, index=True),
                    _text("kind", 40), _text("subject", 300), _text("body"), _text("audience_json"),
                    _time("created_at"), _time("sent_at", True), _text("send_error", None, True))
    op.create_table("notification_reads",
                    sa.Column("notification_id", sa.Integer, sa.ForeignKey("notifications.id"), primary_key=True),
                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
                    _time("read_at"))
    op.create_table("data_queries", _id(), _trial(), _patient(), _text("form", 60), _text("field", 60),
                    _text("text"), _text("status", 20), _text("origin", 20), _text("check_id", 60, True),
                    _text("raised_by", 80), _time("raised_at"), _text("answer", None, True),
                    _text("answered_by", 80, True), _time("answered_at", True), _text("closed_by", 80, True),
                    _time("closed_at", True), sa.Column("reopened", sa.Integer, nullable=False, server_default="0"))
    op.create_table("source_verifications", _id(), _patient(), _text("form", 60), _text("field", 60, True),
                    _text("value_sha256", 64), _text("verified_by", 80), _time("verified_at"),
                    _time("cleared_at", True), _text("cleared_why", None, True))
    op.create_table("record_signatures", _id(), _patient(), _text("form", 60, True), _text("meaning", 300),
                    _text("content_sha256", 64), _text("signed_by", 80), _time("signed_at"),
                    _time("invalidated_at", True), _text("invalidated_why", None, True))
    op.create_table("data_locks", _id(), _trial(), _patient(True), _text("form", 60, True), _text("level", 10),
                    _text("reason"), _text("locked_by", 80), _time("locked_at"), _text("released_by", 80, True),
                    _time("released_at", True), _text("release_reason", None, True))


def downgrade() -> None:
    for table in ("data_locks", "record_signatures", "source_verifications", "data_queries", "notification_reads",
                  "notifications", "notification_recipients", "sae_reports", "adverse_events", "consents"):
        op.drop_table(table)
