"""Safety notifications: a new or upgraded SAE, an emergency unblinding, an overdue report.

Each is stored (a Notification row, in the write transaction of the event that caused it, with its audit event)
and shown in the in-app inbox of the users whose roles it is for (at their sites); it is emailed to the trial's
notification recipients of those roles *after* the transaction commits (`send_pending`, which the API routes and
pages call after their write): a failure to send never loses the stored notification, it is recorded in
`send_error` and shown in the inbox. With no SMTP server configured (STROKETRIAL_SMTP_HOST, STROKETRIAL_SMTP_PORT,
default 25, STROKETRIAL_SMTP_FROM, default stroketrial@localhost) notifications are stored and not sent, and the
inbox says so. The standard library's smtplib and email.message build and send a plain-text message; nothing more
is needed (no templates, attachments or HTML), so no extra library is.

Blinding: a message never carries an arm (or a kit, the key to an arm) to a role that may not see arms in the
trial (`blinding.sees_arm`). An event whose message would name the arm (an emergency unblinding) becomes two
notifications, one with the arm for the roles that see arms, one without it for the others; each recipient and
each inbox reader gets only the one for its role, and a notification that carries the arm is checked again
against the reader's role when shown, and each address against its recipient's role when sent.

Language: a recipient may have one (`add_recipient(..., language="zh_Hans")`); its emails are in that language,
and an email to a recipient without one is in English followed by the Chinese text. A notification is stored in
English (the inbox, the audit trail) with its other languages beside it, each worded from the catalogs' messages
when it is stored (`composed`: the SAE, overdue and unblinding messages); one stored without them is translated
when it is sent, line by line, from the patterns of `EMAIL_PATTERNS` (locale/zh_Hans/documents.po).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import smtplib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol
from ..store import Database, canonical, record
from ..store.models import Allocation, Notification, NotificationRead, NotificationRecipient, Patient, Trial, User
from .accounts import Actor
from .blinding import sees_arm
from .clock import utcnow
from .errors import Invalid, NotFound
from .patients import aware
from .roles import ROLES
from .trials import get_trial, protocol_in_force, trial_sites
from ..wording import translated

log = logging.getLogger("stroketrial.notifications")
SYSTEM_NAME = "system"
UNBLINDING_AUDIENCE = ("dsmb", "admin")  # the unblinding page tells the investigator these are informed
CLAIM = "sending since "
CLAIM_STALE = dt.timedelta(minutes=15)
NO_ADDRESSES = "no notification recipients of these roles in this trial"
BOTH = "\n\n---- 中文 ----\n\n"  # between the English and the Chinese of an email to a recipient without a language


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/documents.po); it is translated when the email is sent."""
    return message


# The patterns of the notifications' subjects and lines (here and in service.serious_adverse_events), and the
# words put into them, each translated when an email is sent in Chinese (`wording.translated`).
EMAIL_PATTERNS = (
    _("SAE reported"), _("SAE upgraded"), _("Overdue"), _("Emergency unblinding"),
    _("now fatal or life-threatening"), _("now a SUSAR"), _("SUSAR"),
    _("patient {patient} (site {site})"), _("initial SAE report (24 h)"),
    _("SUSAR report to the authorities ({days} days)"),
    _("Trial"), _("Patient"), _("{patient} at site {site}"), _("Onset"), _("Seriousness"), _("Outcome"),
    _("Investigator causality"), _("Expectedness"), _("Site aware since"), _("Initial report to the sponsor"),
    _("{when} (UTC)"), _("due {when} (UTC), {status}"), _("coded: {term}"), _("Open the trial's SAE list"),
    _("Unblinded by"), _("At"), _("Clinical reason"), _("Arm"), _("Kit"), _("The unblinding log"),
    _("The treatment is not given here: your role does not see treatment allocations in this trial."),
    _("expected"), _("unexpected"), _("yes"), _("no"), _("on time"), _("overdue"), _("pending"), _("late"),
    _("submitted"), _("hospitalization"), _("death"), _("life threatening"), _("disability"),
    _("congenital anomaly"), _("other medically important"), _("recovered"), _("recovering"),
    _("not recovered"), _("recovered with sequelae"), _("fatal"), _("unknown"), _("unrelated"), _("unlikely"),
    _("possible"), _("probable"), _("definite"), _("related"), _("investigator"), _("sponsor"),
    # the general shapes last: a subject, a value with its detail, a list, a labelled value
    _("[{trial}] {what}: {rest}"), _("{what} ({detail})"), _("{first}, {rest}"), _("{what}: {rest}"),
)
# Lines whose value is a name or free text, kept as it was typed.
VERBATIM = frozenset({"Unblinded by", "Clinical reason"})
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str


def smtp_settings() -> SmtpSettings | None:
    """The SMTP server from the environment; None when STROKETRIAL_SMTP_HOST is not set."""
    host = os.environ.get("STROKETRIAL_SMTP_HOST", "").strip()
    if not host:
        return None
    port_text = os.environ.get("STROKETRIAL_SMTP_PORT", "25").strip() or "25"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise Invalid(i18n.gettext("STROKETRIAL_SMTP_PORT={port} is not a port number (1-65535)").format(
            port=repr(port_text)),
            [{"field": "STROKETRIAL_SMTP_PORT", "value": port_text, "message": i18n.gettext("a port number, 1-65535")}])
    return SmtpSettings(host, int(port_text), os.environ.get("STROKETRIAL_SMTP_FROM", "").strip()
                        or "stroketrial@localhost")


# ---- recipients ---------------------------------------------------------------------------------------------
def _email(value: Any) -> str:
    if not isinstance(value, str) or len(value.strip()) > 254 or not EMAIL.fullmatch(value.strip()):
        raise Invalid(i18n.gettext("{value} is not an email address").format(value=repr(value)),
                      [{"field": "email", "value": value, "message": i18n.gettext(
                          "an email address, name@example.org (at most 254 characters)")}])
    return value.strip()


def add_recipient(session: Session, actor: Actor, trial_id: str, email: Any, role: Any, language: Any = None
                  ) -> dict[str, Any]:
    """An address the trial's safety notifications go to; its role decides which ones and whether they may carry
    an arm, its language (None: English followed by the Chinese) the language of its emails. Adding an address
    again changes its role and language."""
    actor.require("managing notification recipients")
    get_trial(session, actor, trial_id)
    errors = []
    try:
        email = _email(email)
    except Invalid as exc:
        errors.extend(exc.errors)
    if role not in ROLES:
        errors.append({"field": "role", "value": role,
                       "message": i18n.gettext("one of {choices}").format(choices=", ".join(ROLES))})
    if language is not None and language not in i18n.LANGUAGES:
        errors.append({"field": "language", "value": language,
                       "message": i18n.gettext("one of {choices}, or none for English then Chinese").format(
                           choices=", ".join(i18n.LANGUAGES))})
    if errors:
        raise Invalid(i18n.gettext("notification recipient refused: {problems}").format(
            problems="; ".join(f"{e['field']}: {e['message']}" for e in errors)), errors)
    row = session.execute(select(NotificationRecipient).where(NotificationRecipient.trial_id == trial_id,
                                                              NotificationRecipient.email == email)
                          ).scalar_one_or_none()
    before = None
    if row is None:
        row = NotificationRecipient(trial_id=trial_id, email=email, role=role, language=language,
                                    created_by=actor.name)
        session.add(row)
    else:
        before = {"email": row.email, "role": row.role, "language": row.language}
        row.role, row.language = role, language
    session.flush()
    after = {"email": email, "role": role, "language": language}
    record(session, actor.name, "add_notification_recipient", "notification_recipient", f"{trial_id}/{email}",
           trial_id=trial_id, before=before, after=after)
    return {"id": row.id, "trial_id": trial_id, **after}


def remove_recipient(session: Session, actor: Actor, trial_id: str, email: str) -> None:
    actor.require("managing notification recipients")
    get_trial(session, actor, trial_id)
    row = session.execute(select(NotificationRecipient).where(NotificationRecipient.trial_id == trial_id,
                                                              NotificationRecipient.email == email)
                          ).scalar_one_or_none()
    if row is None:
        raise NotFound(i18n.gettext("{email} is not a notification recipient of {trial}").format(email=email,
                                                                                              trial=trial_id))
    session.delete(row)
    record(session, actor.name, "remove_notification_recipient", "notification_recipient", f"{trial_id}/{email}",
           trial_id=trial_id, before={"email": row.email, "role": row.role})


def recipients(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    actor.require("managing notification recipients")
    get_trial(session, actor, trial_id)
    rows = session.execute(select(NotificationRecipient).where(NotificationRecipient.trial_id == trial_id)
                           .order_by(NotificationRecipient.email)).scalars()
    return [{"id": r.id, "trial_id": trial_id, "email": r.email, "role": r.role, "language": r.language}
            for r in rows]


# ---- making notifications ---------------------------------------------------------------------------------------
def exists(session: Session, trial_id: str, about: str) -> bool:
    """Whether the trial has a notification about this (e.g. `sae/12/susar_overdue`): notify once."""
    pattern = '%"about":' + json.dumps(about) + "%"
    return session.execute(select(Notification.id).where(Notification.trial_id == trial_id,
                                                         Notification.audience_json.like(pattern)).limit(1)
                           ).first() is not None


def notify(session: Session, trial_id: str, kind: str, subject: str, body: str, roles: Sequence[str], *,
           site: str | None = None, about: str | None = None, carries_arm: bool = False,
           translations: Mapping[str, tuple[str, str]] | None = None) -> Notification:
    """Store one notification for these roles (at `site`, or the whole trial), addressed to the trial's recipients of
    those roles. A message that carries an arm must only be for roles that see arms. `translations`: the subject
    and body in other languages (`composed`); without them an email is translated line by line when sent."""
    trial = session.get(Trial, trial_id)
    assert trial is not None
    masking = protocol_in_force(session, trial)[1].design.masking
    if carries_arm and any(not sees_arm(role, masking) for role in roles):
        raise AssertionError(f"a notification naming the arm is for roles that see arms, not {list(roles)}")
    emails = sorted(r.email for r in session.execute(
        select(NotificationRecipient).where(NotificationRecipient.trial_id == trial_id,
                                            NotificationRecipient.role.in_(list(roles)))).scalars())
    audience = {"roles": list(roles), "emails": emails, "site": site, "carries_arm": carries_arm, "about": about}
    row = Notification(trial_id=trial_id, kind=kind, subject=subject[:300], body=body,
                       audience_json=canonical(audience), created_at=utcnow(),
                       send_error=None if emails else NO_ADDRESSES,
                       translations_json=canonical({k: list(v) for k, v in translations.items()})
                       if translations else None)
    session.add(row)
    session.flush()
    # The trail keeps what was sent to whom, never the body (it may carry an arm; monitors read the trail).
    record(session, SYSTEM_NAME, "notify", "notification", row.id, trial_id=trial_id, site=site,
           after={"kind": kind, "subject": row.subject, **audience})
    return row


def composed(compose: Callable[[], tuple[str, str]]) -> tuple[str, str, dict[str, tuple[str, str]]]:
    """A message's (subject, body) in English, and in each other language: `compose` words it with the catalogs'
    messages (i18n.gettext), in the language of the block it is called in."""
    with i18n.use(i18n.ENGLISH):
        subject, body = compose()
    others = {}
    for language in i18n.LANGUAGES:
        if language != i18n.ENGLISH:
            with i18n.use(language):
                others[language] = compose()
    return subject, body, others


def emergency_unblinding(session: Session, protocol: Protocol, trial_id: str, patient: Patient,
                         allocation: Allocation, by: str, reason: str) -> list[Notification]:
    """Tell the DSMB and the admin that a patient was unblinded: with the arm and kit for those who see arms in the
    trial, without them for the others."""
    masking = protocol.design.masking
    seeing = [r for r in UNBLINDING_AUDIENCE if sees_arm(r, masking)]
    blind = [r for r in UNBLINDING_AUDIENCE if not sees_arm(r, masking)]
    at = utcnow().isoformat(timespec="seconds")
    arm = next((a for a in protocol.arms if a.id == allocation.arm), None)

    def compose(with_arm: bool) -> tuple[str, str]:
        subject = i18n.gettext("[{acronym}] Emergency unblinding: patient {patient} (site {site})").format(
            acronym=protocol.acronym, patient=patient.code, site=patient.site_code)
        lines = [i18n.gettext("Trial: {acronym} ({trial})").format(acronym=protocol.acronym, trial=trial_id),
                 i18n.gettext("Patient: {patient} at site {site}").format(patient=patient.code,
                                                                         site=patient.site_code),
                 i18n.gettext("Unblinded by: {name}").format(name=by),
                 i18n.gettext("At: {when} (UTC)").format(when=at),
                 i18n.gettext("Clinical reason: {reason}").format(reason=reason)]
        if not with_arm:
            lines.append(i18n.gettext("The treatment is not given here: your role does not see treatment "
                                      "allocations in this trial."))
            return subject, "\n".join(lines)
        lines.append(i18n.gettext("Arm: {arm}").format(arm=allocation.arm)
                     + (i18n.gettext(" ({name})").format(name=i18n.protocol_text(arm, "name"))
                        if arm is not None else ""))
        if allocation.kit:
            lines.append(i18n.gettext("Kit: {kit}").format(kit=allocation.kit))
        lines.append(i18n.gettext("The unblinding log: {link}").format(link=f"/trials/{trial_id}/unblindings"))
        return subject, "\n".join(lines)

    made = []
    if seeing:
        subject, body, others = composed(lambda: compose(True))
        made.append(notify(session, trial_id, "emergency_unblinding", subject, body, seeing, site=patient.site_code,
                           about=f"unblinding/{patient.code}", carries_arm=True, translations=others))
    if blind:
        subject, body, others = composed(lambda: compose(False))
        made.append(notify(session, trial_id, "emergency_unblinding", subject, body, blind, site=patient.site_code,
                           about=f"unblinding/{patient.code}", translations=others))
    return made


# ---- the inbox ------------------------------------------------------------------------------------------------
def _user_id(session: Session, actor: Actor) -> int:
    user_id = session.execute(select(User.id).where(User.name == actor.name)).scalar_one_or_none()
    if user_id is None:
        raise NotFound(i18n.gettext("no user {name}").format(name=actor.name))
    return user_id


def _for(actor: Actor, audience: dict[str, Any], masking: str | None, trial_sites_: Sequence[str]) -> bool:
    if actor.role not in audience.get("roles", ()):
        return False
    if audience.get("carries_arm") and (masking is None or not sees_arm(actor.role, masking)):
        return False
    site = audience.get("site")
    if site is not None:
        return actor.can_see_site(site)
    return actor.is_admin or bool(actor.sites & set(trial_sites_))


def delivery(row: Notification, audience: dict[str, Any], settings_configured: bool) -> str:
    """What happened to the email, in words."""
    count = len(audience.get("emails", ()))
    if row.sent_at is not None:
        return f"emailed to {count} address{'es' if count != 1 else ''} at {aware(row.sent_at).isoformat()}"
    if row.send_error == NO_ADDRESSES:
        return "not emailed: " + NO_ADDRESSES
    if row.send_error is not None and row.send_error.startswith(CLAIM):
        return "email being sent"
    if row.send_error is not None:
        return f"email failed: {row.send_error}"
    if not settings_configured:
        return "stored, not emailed: no SMTP server is configured (STROKETRIAL_SMTP_HOST)"
    return "email pending"


def inbox(session: Session, actor: Actor, unread_only: bool = False) -> list[dict[str, Any]]:
    """The notifications for the actor's role at its sites, newest first, each with whether the actor has read it
    and what happened to its email."""
    user_id = _user_id(session, actor)
    read = {n: at for n, at in session.execute(select(NotificationRead.notification_id, NotificationRead.read_at)
                                               .where(NotificationRead.user_id == user_id)).all()}
    configured = os.environ.get("STROKETRIAL_SMTP_HOST", "").strip() != ""
    maskings: dict[str, str | None] = {}
    sites: dict[str, list[str]] = {}
    out = []
    for row in session.execute(select(Notification).order_by(Notification.id.desc())).scalars():
        audience = json.loads(row.audience_json)
        trial_id = row.trial_id or ""
        if trial_id not in maskings:
            trial = session.get(Trial, trial_id) if row.trial_id else None
            maskings[trial_id] = protocol_in_force(session, trial)[1].design.masking if trial is not None else None
            sites[trial_id] = trial_sites(session, trial_id) if trial is not None else []
        if not _for(actor, audience, maskings[trial_id], sites[trial_id]):
            continue
        if unread_only and row.id in read:
            continue
        out.append({"id": row.id, "trial_id": row.trial_id, "kind": row.kind, "subject": row.subject,
                    "body": row.body, "created_at": aware(row.created_at).isoformat(timespec="seconds"),
                    "read": row.id in read,
                    "read_at": aware(read[row.id]).isoformat(timespec="seconds") if row.id in read else None,
                    "email": delivery(row, audience, configured)})
    return out


def mark_read(session: Session, actor: Actor, notification_id: int) -> dict[str, Any]:
    row = session.get(Notification, notification_id)
    visible = {n["id"] for n in inbox(session, actor)} if row is not None else set()
    if row is None or notification_id not in visible:
        raise NotFound(i18n.gettext("no notification {notification} in {name}'s inbox").format(
            notification=notification_id, name=actor.name))
    user_id = _user_id(session, actor)
    if session.get(NotificationRead, (notification_id, user_id)) is None:
        session.add(NotificationRead(notification_id=notification_id, user_id=user_id, read_at=utcnow()))
        session.flush()
        record(session, actor.name, "read_notification", "notification", notification_id, trial_id=row.trial_id)
    return {"id": notification_id, "read": True}


# ---- sending -------------------------------------------------------------------------------------------------
def _claimable(row: Notification, now: dt.datetime) -> bool:
    if row.sent_at is not None:
        return False
    if row.send_error is None:
        return True
    if row.send_error.startswith(CLAIM):
        try:
            return now - dt.datetime.fromisoformat(row.send_error.removeprefix(CLAIM)) > CLAIM_STALE
        except ValueError:
            return True
    return False


def in_chinese(text: str) -> str:
    """A notification's subject or body in Simplified Chinese, line by line (what no pattern matches stays as it
    is: a term, a reason, a code)."""
    with i18n.use(i18n.CHINESE):
        return "\n".join(_line(line) for line in text.split("\n"))


def _line(line: str) -> str:
    label, colon, rest = line.partition(": ")
    if not colon or label.startswith("[") or i18n.has_translation(line):
        return translated(line, EMAIL_PATTERNS)
    # "Label: value" (a value may itself be "a, b" or "x (y)"): the label, then the value's own words
    value = rest if label in VERBATIM else translated(rest, EMAIL_PATTERNS[:-1])
    return i18n.gettext("{what}: {rest}").format(what=translated(label, EMAIL_PATTERNS), rest=value)


def email_text(row: Notification, language: str | None) -> tuple[str, str]:
    """(subject, body) of a notification's email to a recipient of this language: English, Chinese, or (None)
    the English followed by the Chinese."""
    if language == i18n.ENGLISH:
        return row.subject, row.body
    stored = json.loads(row.translations_json) if row.translations_json else {}
    if i18n.CHINESE in stored:
        subject, body = stored[i18n.CHINESE]
    else:  # a notification stored without its translations (made elsewhere, or before they were stored)
        subject, body = in_chinese(row.subject), in_chinese(row.body)
    if language == i18n.CHINESE:
        return subject, body
    return f"{row.subject} / {subject}", row.body + BOTH + body


def _message(settings: SmtpSettings, row: Notification, to: str, language: str | None = None) -> EmailMessage:
    subject, body = email_text(row, language)
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(body)
    return message


def _languages(session: Session, trial_id: str | None) -> dict[str, str | None]:
    """Each recipient's language, by address."""
    return {r.email: r.language for r in session.execute(
        select(NotificationRecipient).where(NotificationRecipient.trial_id == trial_id)).scalars()}


def _addresses_now(session: Session, row: Notification) -> list[str]:
    """The stored addresses a notification still goes to when it is sent: each still a recipient of the trial in a
    role of the audience, and, for a notification that carries the arm, in a role that sees arms now (an address
    given a blinded role, or removed, after the notification was stored never receives the arm)."""
    audience = json.loads(row.audience_json)
    trial = session.get(Trial, row.trial_id) if row.trial_id else None
    if trial is None:
        return []
    masking = protocol_in_force(session, trial)[1].design.masking
    roles = {r.email: r.role for r in session.execute(
        select(NotificationRecipient).where(NotificationRecipient.trial_id == trial.id)).scalars()}
    return [email for email in audience.get("emails", [])
            if roles.get(email) in audience.get("roles", ())
            and (not audience.get("carries_arm") or sees_arm(roles[email], masking))]


def deliver(db: Database) -> int:
    """`send_pending` after a write, for the API routes and pages: a misconfigured SMTP setting is logged, never
    turned into an error answer for a write that has committed (the notifications wait, unsent)."""
    try:
        return send_pending(db)
    except Invalid as exc:
        log.warning("notifications not sent: %s", exc.message)
        return 0


def send_pending(db: Database, settings: SmtpSettings | None = None) -> int:
    """Email every stored notification not yet sent, after the write that made it has committed; returns how many
    were sent. Each is claimed in one transaction (so two servers do not both send it), sent one message per
    address, and its outcome (sent_at, or send_error) recorded in another. Without an SMTP server nothing is
    claimed: the notifications wait, and the inbox says they are not emailed."""
    settings = settings or smtp_settings()
    if settings is None:
        return 0
    now = utcnow()
    with db.read() as session:
        candidates = [r.id for r in session.execute(select(Notification).where(Notification.sent_at.is_(None))
                                                    ).scalars() if _claimable(r, now)]
    if not candidates:
        return 0
    claimed: list[tuple[int, list[str], Notification]] = []
    languages: dict[str, dict[str, str | None]] = {}
    with db.write() as session:
        for row in session.execute(select(Notification).where(Notification.id.in_(candidates))).scalars():
            if _claimable(row, now):
                row.send_error = CLAIM + now.isoformat()
                claimed.append((row.id, _addresses_now(session, row), row))
                if (row.trial_id or "") not in languages:
                    languages[row.trial_id or ""] = _languages(session, row.trial_id)
        if claimed:
            record(session, SYSTEM_NAME, "claim_notifications", "notification", f"{len(claimed)} to send",
                   after={"ids": [c[0] for c in claimed]})
    outcomes: dict[int, str | None] = {}
    for notification_id, emails, row in claimed:
        errors = []
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=10) as smtp:
                for to in emails:
                    try:
                        smtp.send_message(_message(settings, row, to, languages[row.trial_id or ""].get(to)),
                                          from_addr=settings.sender, to_addrs=[to])
                    except smtplib.SMTPException as exc:
                        errors.append(f"{to}: {exc}")
        except (OSError, smtplib.SMTPException) as exc:
            errors.append(f"{settings.host}:{settings.port}: {exc}")
        outcomes[notification_id] = "; ".join(errors)[:2000] if errors else None
    sent = 0
    with db.write() as session:
        for notification_id, error in outcomes.items():
            stored = session.get(Notification, notification_id)
            assert stored is not None
            if error is None:
                stored.sent_at, stored.send_error = utcnow(), None
                sent += 1
            else:
                stored.send_error = error
            record(session, SYSTEM_NAME, "send_notification", "notification", notification_id,
                   trial_id=stored.trial_id, after={"sent": error is None, "error": error})
    return sent
