"""The platform's tables (SQLAlchemy 2). Alembic migrations in `migrations/` create them.

JSON documents (screening data, allocation records, randomization state, concealed
lists, visit data) are stored as text holding canonical JSON, the same on SQLite and
PostgreSQL, so the audit trail hashes exactly what is stored.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (Boolean, Date, DateTime, Float, ForeignKey, Identity, Index, Integer, LargeBinary, String,
                        Text, UniqueConstraint)
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
    # The language of the user's pages and emails (i18n.LANGUAGES); None: the browser's.
    language: Mapped[str | None] = mapped_column(String(20), nullable=True)


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
    # the protocol version the patient was screened under (None: version 1, before amendments were recorded)
    protocol_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


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


class ConcealedBlockEntry(Base):
    """One entry of a stratum's concealed permuted-block list. A row each, so an allocation reads the one
    entry it uses, whatever the length the list has grown to."""
    __tablename__ = "concealed_block_entries"
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), primary_key=True)
    stratum: Mapped[str] = mapped_column(String(300), primary_key=True)  # as Envelope.stratum
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based within the stratum
    block: Mapped[int] = mapped_column(Integer)
    block_size: Mapped[int] = mapped_column(Integer)
    slot: Mapped[str] = mapped_column(String(60))
    arm: Mapped[str] = mapped_column(String(60))


class ConcealedKit(Base):
    """One kit of a blinded trial's concealed kit list, in list order (`position`); a site's kits of an arm
    are dispensed in that order."""
    __tablename__ = "concealed_kits"
    __table_args__ = (UniqueConstraint("trial_id", "kit_number", name="uq_concealed_kit_number"),
                      Index("ix_concealed_kits_next", "trial_id", "site", "arm", "position"))
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based within the trial
    kit_number: Mapped[str] = mapped_column(String(20))
    site: Mapped[str] = mapped_column(String(40))
    arm: Mapped[str] = mapped_column(String(60))
    block: Mapped[int] = mapped_column(Integer)


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
    """Append-only; each event's hash (keyed) covers its content and the previous event's hash in its chain.

    A chain is one trial's events (`chain_id` = the trial), or the platform's (`chain_id` = ""): users, sites,
    and every event from before there were trial chains. `chain_seq` numbers a chain's events 1, 2, 3, ...
    with no gaps; `seq` numbers every event of the platform in the order written (gaps allowed: a transaction
    rolled back leaves its numbers unused)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ux_audit_events_chain", "chain_id", "chain_seq", unique=True),)
    seq: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
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
    chain: Mapped[int] = mapped_column(Integer, default=3, server_default="1")
    chain_id: Mapped[str] = mapped_column(String(60), server_default="")
    chain_seq: Mapped[int] = mapped_column(Integer)


class AuditHead(Base):
    """One row per chain: its last event's number and hash. A write locks the head of each chain it appends to,
    which orders that chain's events and detects a chain cut short."""

    __tablename__ = "audit_heads"
    chain_id: Mapped[str] = mapped_column(String(60), primary_key=True)
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


# ---- GCP workflow (issue 18): consent, adverse events and expedited reporting, data management ------------------
class Consent(Base):
    """One consent of a patient: who consented (route), on which form version, when, taken by whom; a deferred
    consent's confirmation and its deadline; a withdrawal and what it withdraws. A re-consent on a new form
    version is a new row; the one it replaces points to it."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    form_version: Mapped[str] = mapped_column(String(40))
    route: Mapped[str] = mapped_column(String(30))  # patient | representative | deferred
    consented_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    obtained_by: Mapped[str] = mapped_column(String(80))
    signer: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the representative, in words
    confirmation_due: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    confirmed_route: Mapped[str | None] = mapped_column(String(30), nullable=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    withdrawal: Mapped[str | None] = mapped_column(String(30), nullable=True)  # treatment | follow_up | data_use
    withdrawal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    superseded_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class AdverseEvent(Base):
    """A non-serious adverse event in the patient's AE log (the fields checked by service/adverse_events.py)."""

    __tablename__ = "adverse_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    data_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class SaeReport(Base):
    """An SAE's initial or follow-up report, with the facts known then (expedited reporting keeps every one)."""

    __tablename__ = "sae_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sae_id: Mapped[int] = mapped_column(ForeignKey("serious_adverse_events.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # initial | follow_up | sponsor_assessment
    data_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class NotificationRecipient(Base):
    """An address a trial sends its safety notifications to, and whether its holder may see arms."""

    __tablename__ = "notification_recipients"
    __table_args__ = (UniqueConstraint("trial_id", "email", name="uq_notification_recipient"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(40))  # the recipient's role: decides what the message may carry
    # The language of its emails (i18n.LANGUAGES); None: English followed by the Chinese text.
    language: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


class Notification(Base):
    """A notification (new or upgraded SAE, emergency unblinding, overdue report): in the in-app inbox of the
    users it is for, and sent by email; `sent_at` or `send_error` records the SMTP outcome."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str | None] = mapped_column(String(60), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    audience_json: Mapped[str] = mapped_column(Text)  # roles and addresses it is for
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    send_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # {language: [subject, body]}: the same message in the other languages, from the catalogs when it was stored
    translations_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class NotificationRead(Base):
    __tablename__ = "notification_reads"
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    read_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DataQuery(Base):
    """A data query on one field of one form: raised (by a monitor or data manager, or by an edit check the
    protocol declares), answered by the site, closed or re-opened by whoever raised it."""

    __tablename__ = "data_queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    form: Mapped[str] = mapped_column(String(60))  # a visit id, or "screening"
    field: Mapped[str] = mapped_column(String(60))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # open | answered | closed
    origin: Mapped[str] = mapped_column(String(20))  # manual | edit_check
    check_id: Mapped[str | None] = mapped_column(String(60), nullable=True)
    raised_by: Mapped[str] = mapped_column(String(80))
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reopened: Mapped[int] = mapped_column(Integer, default=0)


class SourceVerification(Base):
    """The monitor's mark that a form (field None) or one field matches the source, over the value's SHA-256 then;
    a later change clears it (cleared_at, with why), and the monitor's list shows it again."""

    __tablename__ = "source_verifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    form: Mapped[str] = mapped_column(String(60))
    field: Mapped[str | None] = mapped_column(String(60), nullable=True)
    value_sha256: Mapped[str] = mapped_column(String(64))
    verified_by: Mapped[str] = mapped_column(String(80))
    verified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cleared_why: Mapped[str | None] = mapped_column(Text, nullable=True)


class RecordSignature(Base):
    """The investigator's electronic signature of a form (or, form None, of the patient's whole casebook), with
    its meaning and the SHA-256 of what was signed; a later change to signed data invalidates it visibly."""

    __tablename__ = "record_signatures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    form: Mapped[str | None] = mapped_column(String(60), nullable=True)
    meaning: Mapped[str] = mapped_column(String(300))
    content_sha256: Mapped[str] = mapped_column(String(64))
    signed_by: Mapped[str] = mapped_column(String(80))
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    invalidated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    invalidated_why: Mapped[str | None] = mapped_column(Text, nullable=True)


class DataLock(Base):
    """A freeze or lock of one form of a patient, a whole patient (form None) or the whole trial (patient None);
    released with a reason by a role allowed to."""

    __tablename__ = "data_locks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True, index=True)
    form: Mapped[str | None] = mapped_column(String(60), nullable=True)
    level: Mapped[str] = mapped_column(String(10))  # freeze | lock
    reason: Mapped[str] = mapped_column(Text)
    locked_by: Mapped[str] = mapped_column(String(80))
    locked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    release_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ProtocolVersion(Base):
    """An amendment of a trial's protocol (version 2 onwards; version 1 is trials.protocol_json): the validated
    protocol, when it comes into force, and what changed from the version before."""

    __tablename__ = "protocol_versions"
    __table_args__ = (UniqueConstraint("trial_id", "version", name="uq_protocol_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    protocol_json: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    changes_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))


# ---- investigational product supply (service/supply.py; migration 0007) ----------------------------------------
class SupplyShipment(Base):
    """Kits sent from the depot to a site; the site confirms receipt kit by kit."""

    __tablename__ = "supply_shipments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # in_transit | received
    shipped_on: Mapped[dt.date] = mapped_column(Date)
    expected_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    received_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class SupplyKit(Base):
    """One physical kit of a trial's kit list: its arm (never shown to the blinded), lot and expiry, and where it
    is: in_depot, in_transit, available (at its site), reserved, dispensed, damaged, missing, quarantined,
    returned or destroyed."""

    __tablename__ = "supply_kits"
    __table_args__ = (UniqueConstraint("trial_id", "kit_number", name="uq_supply_kit_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    kit_number: Mapped[str] = mapped_column(String(20))
    arm: Mapped[str] = mapped_column(String(60))
    lot: Mapped[str] = mapped_column(String(40))
    expiry: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    site_code: Mapped[str | None] = mapped_column(ForeignKey("sites.code"), nullable=True, index=True)
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("supply_shipments.id"), nullable=True, index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True, index=True)
    replaces: Mapped[str | None] = mapped_column(String(20), nullable=True)  # the damaged kit this one replaced
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    dispensed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    dispensed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))


class SupplySiteLevels(Base):
    """A site's own resupply levels, set by the supply manager in place of the protocol's."""

    __tablename__ = "supply_site_levels"
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), primary_key=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"), primary_key=True)
    trigger_per_arm: Mapped[int] = mapped_column(Integer)
    target_per_arm: Mapped[int] = mapped_column(Integer)
    set_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    set_by: Mapped[str] = mapped_column(String(80))


class ResupplyRequest(Base):
    """Kits of one arm a site needs, raised when its stock falls to the trigger (or urgently, when a patient was
    allocated without a kit); closed by the shipment that fills it."""

    __tablename__ = "supply_resupply_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    arm: Mapped[str] = mapped_column(String(60))
    kits: Mapped[int] = mapped_column(Integer)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20))  # open | shipped
    reason: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    raised_by: Mapped[str] = mapped_column(String(80))
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("supply_shipments.id"), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EnvelopeSet(Base):
    """A site's set of sealed emergency envelopes (randomization while the platform cannot be reached), made by the
    unblinded pharmacist or the trial admin; voided with a reason when replaced before it is used up."""

    __tablename__ = "envelope_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    method: Mapped[str] = mapped_column(String(40))  # permuted_blocks | fallback_blocks
    count: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    prints: Mapped[int] = mapped_column(Integer, default=0)  # how many times the PDF was made (printed on it)
    voided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    voided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Envelope(Base):
    """One sealed envelope: its number at the site (with a check code derived from the audit key, never stored),
    the stratum it is for, the allocation inside (an arm, or a kit number in a blinded-kit trial), and what became
    of it: sealed, opened (recorded with its patient and the time it was opened), or void."""

    __tablename__ = "envelopes"
    __table_args__ = (UniqueConstraint("trial_id", "site_code", "number", name="uq_envelope_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("envelope_sets.id"), index=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("sites.code"))
    number: Mapped[int] = mapped_column(Integer)
    stratum: Mapped[str] = mapped_column(String(300))
    block: Mapped[int] = mapped_column(Integer)
    block_size: Mapped[int] = mapped_column(Integer)
    slot: Mapped[str] = mapped_column(String(80))
    arm: Mapped[str] = mapped_column(String(60))
    kit: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[str] = mapped_column(String(12))  # sealed | reconciled | void
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True, unique=True)
    opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reconciled_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reconciled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InterimLook(Base):
    """An interim analysis the DSMB's statistician ran at a look (service/interim_analyses.py): the information
    observed, the primary analysis's z, the boundary and what the rule recommends, on the data frozen or locked at
    the time (the lock's id, and the SHA-256 of the analysis dataset it read). Closed: for those who see arms."""

    __tablename__ = "interim_looks"
    __table_args__ = (UniqueConstraint("trial_id", "number", name="uq_interim_look_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ...: the look's place in the plan
    patients_observed: Mapped[int] = mapped_column(Integer)
    information: Mapped[float] = mapped_column(Float)
    z: Mapped[float] = mapped_column(Float)
    recommendation: Mapped[str] = mapped_column(String(60))
    result_json: Mapped[str] = mapped_column(Text)  # the look (design/interim.py) and the primary analysis
    data_sha256: Mapped[str] = mapped_column(String(64))
    lock_id: Mapped[int | None] = mapped_column(ForeignKey("data_locks.id"), nullable=True)
    run_by: Mapped[str] = mapped_column(String(80))
    run_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DsmbReportFile(Base):
    """A DSMB report as it was generated (service/dsmb_reports.py): closed (by arm) or open (pooled), its HTML and
    PDF, the SHA-256 of the data snapshot it was computed from and of each file, the freeze or lock in force, who
    generated it and when. Kept, never changed: the DSMB's archive."""

    __tablename__ = "dsmb_reports"
    __table_args__ = (UniqueConstraint("trial_id", "number", name="uq_dsmb_report_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in the trial, closed and open together
    kind: Mapped[str] = mapped_column(String(10))  # closed, open
    look: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the latest interim look it reports
    patients: Mapped[int] = mapped_column(Integer)
    data_sha256: Mapped[str] = mapped_column(String(64))
    html: Mapped[str] = mapped_column(Text)
    html_sha256: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    lock_id: Mapped[int | None] = mapped_column(ForeignKey("data_locks.id"), nullable=True)
    generated_by: Mapped[str] = mapped_column(String(80))
    generated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DsmbDecision(Base):
    """The DSMB's recommendation after a look, with its reason, signed by the member who records it (password
    entered again); one per look."""

    __tablename__ = "dsmb_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    look_id: Mapped[int] = mapped_column(ForeignKey("interim_looks.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(80))
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
