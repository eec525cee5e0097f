"""The platform's tables (SQLAlchemy 2). Alembic migrations in `migrations/` create them.

JSON documents (screening data, allocation records, randomization state, concealed
lists, visit data) are stored as text holding canonical JSON, the same on SQLite and
PostgreSQL, so the audit trail hashes exactly what is stored.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Site(Base):
    __tablename__ = "sites"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")  # IANA name


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(40))
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserSite(Base):
    __tablename__ = "user_sites"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Trial(Base):
    __tablename__ = "trials"
    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    protocol_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrialSite(Base):
    __tablename__ = "trial_sites"
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), primary_key=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"), primary_key=True)


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("trial_id", "code", name="uq_patient_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    code: Mapped[str] = mapped_column(String(60))
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    data_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    screening_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class Allocation(Base):
    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("trial_id", "sequence", name="uq_allocation_sequence"),
                      UniqueConstraint("trial_id", "idempotency_key", name="uq_allocation_key"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    sequence: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(60))
    kit: Mapped[str | None] = mapped_column(String(20), nullable=True)
    record_json: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class RandomizationStateRow(Base):
    __tablename__ = "randomization_state"
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), primary_key=True)
    state_json: Mapped[str] = mapped_column(Text)
    block_list_json: Mapped[str] = mapped_column(Text)
    kit_list_json: Mapped[str] = mapped_column(Text)


class VisitRecord(Base):
    __tablename__ = "visit_records"
    __table_args__ = (UniqueConstraint("patient_id", "visit_id", name="uq_visit"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    visit_id: Mapped[str] = mapped_column(String(40))
    visit_date: Mapped[str] = mapped_column(String(10))
    values_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))


class SeriousAdverseEvent(Base):
    __tablename__ = "serious_adverse_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    data_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class Unblinding(Base):
    __tablename__ = "unblindings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class AuditEvent(Base):
    """Append-only; each event's hash (keyed, chain 2) covers its content and the previous event's hash."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(120))
    trial_id: Mapped[str | None] = mapped_column(String(60), nullable=True, index=True)
    site_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    before_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    after_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    chain: Mapped[int] = mapped_column(Integer, default=2, server_default="1")


class AuditHead(Base):
    """One row: the last event's number and hash. Every write locks it first, which orders
    all writes (and the chain) and detects a truncated trail."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class LoginFailure(Base):
    """One failed sign-in: the user name as typed (known or not) and the client's address. Recent rows decide
    the lockouts (service/throttle.py); they live in the database so a lockout holds across server processes
    and restarts."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_name_at", "user_name", "at"),
                      Index("ix_login_failures_address_at", "address", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserSession(Base):
    """A signed-in browser (service/sessions.py). The cookie carries a random id; only its SHA-256 is stored,
    so a copied database yields no usable session. Ended sessions keep their row, with why they ended."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_why: Mapped[str | None] = mapped_column(String(40), nullable=True)


class EscalationAssignment(Base):
    """A dose-escalation trial's enrolment: the patient's cohort and dose level (service/escalation.py). The
    patient's Allocation row (the trial's one arm) is written in the same transaction."""

    __tablename__ = "escalation_assignments"
    __table_args__ = (UniqueConstraint("trial_id", "idempotency_key", name="uq_escalation_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    cohort: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in order of treatment; the expansion cohort last
    level: Mapped[int] = mapped_column(Integer)  # 1-based dose level
    phase: Mapped[str] = mapped_column(String(20))  # "escalation" or "expansion"
    enrolled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(80))


class DltAssessment(Base):
    """The investigator's dose-limiting-toxicity assessment of one patient: yes (with the protocol's DLT it
    meets and the event) or no. Corrections overwrite it, with before, after and reason in the audit trail."""

    __tablename__ = "dlt_assessments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    dlt: Mapped[bool] = mapped_column(Boolean)
    criterion: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1-based, in dlt_definition
    event: Mapped[str | None] = mapped_column(Text, nullable=True)
    onset: Mapped[str | None] = mapped_column(String(10), nullable=True)  # ISO date
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(80))


class EscalationDecision(Base):
    """The safety review committee's signed confirmation of the decision after a cohort: the decision the rule
    computed, the one that takes effect (different only as a deviation, with its reason), who signed, when."""

    __tablename__ = "escalation_decisions"
    __table_args__ = (UniqueConstraint("trial_id", "after_cohort", name="uq_escalation_decision"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    after_cohort: Mapped[int] = mapped_column(Integer)
    computed_json: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(20))  # treat | stop
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mtd: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deviation: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    signed_by: Mapped[str] = mapped_column(String(80))
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class RegistryPatient(Base):
    """A thrombectomy patient of the prospective registry (screening variables and outcomes, in the data
    dictionary's columns): the pool of matched controls. Imported a file at a time, all rows or none."""

    __tablename__ = "registry_patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    data_json: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(80))
