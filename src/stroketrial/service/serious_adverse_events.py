"""Serious adverse events and their expedited reporting.

A site reports an SAE for a randomized patient (checked field by field, every error at once): the event, its
seriousness criteria, outcome, the investigator's causality, and when the site became aware of it (the awareness
date-time; when not given, the time of the report: the site learned of it then at the latest). Follow-up reports
add what is learned later; the sponsor's pharmacovigilance records its own causality and expectedness
assessment, and when it submitted a SUSAR to the authorities. The SAE row keeps the initial report as it was
sent; every report (initial, follow-up, sponsor assessment) is an SaeReport row, and the SAE's current state is
the initial report with the follow-ups applied in order.

The reporting clock (ICH E2A; EU CT-3; 21 CFR 312.32):
- the initial report is due within 24 h of the site's awareness; an SAE entered later is flagged late;
- a SUSAR (serious, related: possible or more, by the investigator or by the sponsor, since the sponsor may not
  downgrade the investigator's causality; and unexpected) is due to the authorities within 7 days if fatal or
  life-threatening, else 15 days, from the awareness of the site report that made it one (the first, for each
  deadline); it is met by the sponsor assessment that records the submission.
Expectedness is the sponsor's call; until the sponsor has assessed, it is read from the protocol's reference
safety information (the event's term or coded term matched against the expected events and their synonyms),
marked provisional.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol
from ..store import canonical, record
from ..store.models import Allocation, Notification, Patient, SaeReport, SeriousAdverseEvent, Trial
from . import locks, notifications, record_signatures, safety_monitoring
from .accounts import Actor
from .blinding import sees_arm_counts, sees_susar_arm
from .clock import CLOCK_SKEW, as_utc, calendar_date, local_now, site_zone, utcnow
from .errors import Invalid, NotFound
from .patients import MAX_REASON, aware, randomized_patient
from .text import plain_text
from .trials import get_trial, protocol_in_force

SAE_CRITERIA = ("death", "life_threatening", "hospitalization", "disability", "congenital_anomaly",
                "important_medical_event")
SAE_OUTCOMES = ("recovered", "recovering", "not_recovered", "recovered_with_sequelae", "fatal", "unknown")
SAE_RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
RELATED = ("possible", "probable", "definite")  # a reasonable possibility: "related" for expedited reporting
EXPECTEDNESS = ("expected", "unexpected")
# What people read for each stored choice (the pages, notices): never the stored code.
SAE_CRITERIA_LABELS = {"death": "death", "life_threatening": "life-threatening",
                       "hospitalization": "hospitalization or its prolongation",
                       "disability": "persistent or significant disability", "congenital_anomaly": "congenital anomaly",
                       "important_medical_event": "important medical event"}
SAE_OUTCOME_LABELS = {"recovered": "recovered", "recovering": "recovering/resolving",
                      "not_recovered": "not recovered", "recovered_with_sequelae": "recovered with sequelae",
                      "fatal": "fatal", "unknown": "unknown"}
RELATEDNESS_LABELS = {"not_related": "not related", "unlikely": "unlikely related", "possible": "possibly related",
                      "probable": "probably related", "definite": "definitely related"}
EXPECTEDNESS_LABELS = {"expected": "expected", "unexpected": "unexpected"}
MAX_SAE_TERM = 200
MAX_SAE_DESCRIPTION = 4000
MAX_CODED = 200  # MedDRA-style coded term and system organ class: free text (no licensed dictionary ships)

INITIAL_DUE = dt.timedelta(hours=24)
SUSAR_FATAL_DAYS = 7
SUSAR_OTHER_DAYS = 15
UPGRADING_CRITERIA = ("death", "life_threatening")

SAE_FIELDS = ("term", "coded_term", "system_organ_class", "onset_date", "criteria", "outcome", "relatedness",
              "description", "awareness_at")
SPONSOR_FIELDS = ("causality", "expectedness", "comment", "reported_to_authorities_at")


# ---- checks shared with the adverse-event log (service/adverse_events.py) ---------------------------------
def text_errors(field: str, value: Any, max_length: int) -> list[dict[str, Any]]:
    try:
        plain_text(field, value, max_length)
    except Invalid as exc:
        return exc.errors
    return []


def term_errors(data: Mapping[str, Any], max_length: int = MAX_SAE_TERM) -> list[dict[str, Any]]:
    term = data.get("term")
    if not isinstance(term, str) or not term.strip():
        return [{"field": "term", "value": term, "message": i18n.gettext("the event, in words (e.g. 'pneumonia')")}]
    return text_errors("term", term, max_length)


def coded_errors(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The optional MedDRA-style coding: a preferred term and its system organ class, as free text."""
    errors = []
    for key in ("coded_term", "system_organ_class"):
        value = data.get(key)
        if value is not None and value != "":
            errors.extend(text_errors(key, value, MAX_CODED))
    return errors


def choice_errors(data: Mapping[str, Any], choices: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    return [{"field": key, "value": data.get(key),
             "message": i18n.gettext("one of {choices}").format(choices=", ".join(allowed))}
            for key, allowed in choices.items() if data.get(key) not in allowed]


def unknown_field_errors(data: Mapping[str, Any], known: Sequence[str], form: str) -> list[dict[str, Any]]:
    return [{"field": key, "value": data[key], "message": i18n.gettext("not a field of the {form}").format(form=form)}
            for key in sorted(set(data) - set(known))]


def onset_errors(session: Session, patient: Patient, onset: Any) -> list[dict[str, Any]]:
    """Not a date; a date after today (at the site) or before the patient can have been born."""
    day = calendar_date(onset)
    if day is None:
        return [{"field": "onset_date", "value": onset, "message": i18n.gettext("a date, YYYY-MM-DD")}]
    today = local_now(site_zone(session, patient.site_code), None).date()
    if day > today:
        return [{"field": "onset_date", "value": day.isoformat(),
                 "message": i18n.gettext("{day} is after today ({today} at this site)").format(
                     day=day.isoformat(), today=today.isoformat())}]
    age = json.loads(patient.data_json).get("age")
    if isinstance(age, int):
        registered = aware(patient.created_at).date()
        born_after = registered.replace(year=registered.year - age - 1, day=min(registered.day, 28))
        if day < born_after:
            return [{"field": "onset_date", "value": day.isoformat(),
                     "message": i18n.gettext("{day} is before the patient was born (aged {age} at screening on "
                                             "{registered})").format(day=day.isoformat(), age=age,
                                                                     registered=registered.isoformat())}]
    return []


def refuse(what: str, errors: list[dict[str, Any]]) -> None:
    if errors:
        raise Invalid(i18n.gettext("{what} refused: {problems}").format(
            what=what, problems="; ".join(f"{e['field']}: {e['message']}" for e in errors)), errors)


def _moment(session: Session, patient: Patient, field: str, value: Any, now: dt.datetime,
            not_before: dt.date | None = None) -> tuple[str | None, list[dict[str, Any]]]:
    """A date-time (ISO 8601; without a zone, the site's wall clock) as UTC ISO text, not in the future."""
    moment = None
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                                               r"(Z|[+-]\d{2}:?\d{2})?", value.strip()):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if moment is None:
        return None, [{"field": field, "value": value,
                       "message": i18n.gettext("a date and time, YYYY-MM-DDTHH:MM (the site's clock, or with a UTC "
                                               "offset)")}]
    zone = site_zone(session, patient.site_code)
    utc = as_utc(moment, zone)
    if utc > now + CLOCK_SKEW:
        return None, [{"field": field, "value": value,
                       "message": i18n.gettext(
                           "{value} is in the future: it is now {now} at this site ({zone})").format(
                           value=value, now=local_now(zone, None, now).isoformat(timespec="minutes"), zone=zone.key)}]
    if not_before is not None and utc.astimezone(zone).date() < not_before:
        return None, [{"field": field, "value": value,
                       "message": i18n.gettext("{value} is before the onset ({onset}): the site cannot have learned of "
                                               "the event before it began").format(value=value,
                                                                                   onset=not_before.isoformat())}]
    return utc.isoformat(timespec="seconds"), []


# ---- the SAE's state and its clock (pure) --------------------------------------------------------------------
def expected_by_rsi(protocol: Protocol, state: Mapping[str, Any]) -> bool:
    """Whether the event's term or coded term names an event of the protocol's reference safety information."""
    names = {str(state.get(k) or "").strip().casefold() for k in ("term", "coded_term")} - {""}
    return bool(names) and not names.isdisjoint(
        name.casefold() for e in protocol.reference_safety_information for name in (e.term, *e.synonyms))


def fatal_or_life_threatening(state: Mapping[str, Any]) -> bool:
    return bool(set(state.get("criteria") or ()) & set(UPGRADING_CRITERIA)) or state.get("outcome") == "fatal"


def classification(protocol: Protocol, state: Mapping[str, Any], sponsor: Mapping[str, Any] | None
                   ) -> dict[str, Any]:
    related = state.get("relatedness") in RELATED or bool(sponsor and sponsor.get("causality") in RELATED)
    if sponsor and sponsor.get("expectedness") in EXPECTEDNESS:
        expected, by = sponsor["expectedness"] == "expected", "sponsor"
    else:
        expected, by = expected_by_rsi(protocol, state), "reference safety information (provisional)"
    return {"related": related, "expected": expected, "expectedness_by": by,
            "susar": related and not expected, "fatal_or_life_threatening": fatal_or_life_threatening(state)}


def _at(text: str) -> dt.datetime:
    return aware(dt.datetime.fromisoformat(text))


def sae_status(protocol: Protocol, reported_at: dt.datetime, reports: Sequence[tuple[str, Mapping[str, Any]]],
               now: dt.datetime) -> dict[str, Any]:
    """An SAE's current state, classification and clocks from its reports in order: (kind, data), the first the
    initial report. `reported_at` is when the initial report reached the platform."""
    state: dict[str, Any] = {}
    sponsor: dict[str, Any] | None = None
    awareness = reported_at
    first_awareness: dt.datetime | None = None
    start_any: dt.datetime | None = None  # the SUSAR clocks' day 0: 15 days, and 7 days if fatal/life-threatening
    start_fatal: dt.datetime | None = None
    submitted: dt.datetime | None = None
    for kind, data in reports:
        if kind == "sponsor_assessment":
            sponsor = {**(sponsor or {}), **{k: v for k, v in data.items() if k in SPONSOR_FIELDS}}
            if data.get("reported_to_authorities_at"):
                submitted = submitted or _at(data["reported_to_authorities_at"])
        else:
            state.update({k: v for k, v in data.items() if k in SAE_FIELDS and k != "awareness_at"})
            awareness = _at(data["awareness_at"]) if data.get("awareness_at") else awareness
            first_awareness = first_awareness or awareness
        now_class = classification(protocol, state, sponsor)
        if now_class["susar"]:
            start_any = start_any or awareness
            if now_class["fatal_or_life_threatening"]:
                start_fatal = start_fatal or awareness
    current = classification(protocol, state, sponsor)
    initial_due = (first_awareness or reported_at) + INITIAL_DUE
    clocks = [{"report": "initial", "to": "sponsor", "due": initial_due.isoformat(timespec="seconds"),
               "done_at": reported_at.isoformat(timespec="seconds"), "overdue": reported_at > initial_due,
               "status": "late" if reported_at > initial_due else "on time"}]
    if current["susar"] and start_any is not None:
        dues = [(start_any + dt.timedelta(days=SUSAR_OTHER_DAYS), SUSAR_OTHER_DAYS)]
        if start_fatal is not None:
            dues.append((start_fatal + dt.timedelta(days=SUSAR_FATAL_DAYS), SUSAR_FATAL_DAYS))
        due, days = min(dues)
        if submitted is not None:
            status, overdue = ("late" if submitted > due else "on time"), submitted > due
        else:
            status, overdue = ("overdue" if now > due else "due"), now > due
        clocks.append({"report": "susar", "to": "authorities", "days": days,
                       "due": due.isoformat(timespec="seconds"),
                       "done_at": submitted.isoformat(timespec="seconds") if submitted else None,
                       "overdue": overdue, "status": status})
    return {"state": state, "sponsor_assessment": sponsor, **current,
            "awareness_at": (first_awareness or reported_at).isoformat(timespec="seconds"),
            "clocks": clocks, "overdue": any(c["overdue"] for c in clocks)}


# ---- operations ---------------------------------------------------------------------------------------------
def _sae_errors(session: Session, patient: Patient, data: Mapping[str, Any], now: dt.datetime,
                follow_up: bool) -> tuple[list[dict[str, Any]], str | None]:
    errors: list[dict[str, Any]] = []
    given = (lambda key: key in data) if follow_up else (lambda key: True)
    if given("term"):
        errors.extend(term_errors(data))
    errors.extend(coded_errors(data))
    description = data.get("description")
    if follow_up and (not isinstance(description, str) or not description.strip()):
        errors.append({"field": "description", "value": description,
                       "message": i18n.gettext("what the follow-up adds, in words (at most 4000 characters)")})
    elif description is not None and description != "":
        errors.extend(text_errors("description", description, MAX_SAE_DESCRIPTION))
    if given("onset_date"):
        errors.extend(onset_errors(session, patient, data.get("onset_date")))
    criteria = data.get("criteria")
    if given("criteria") and (not isinstance(criteria, list) or not criteria
                              or any(c not in SAE_CRITERIA for c in criteria)):
        errors.append({"field": "criteria", "value": criteria,
                       "message": i18n.gettext("one or more of {choices}").format(choices=", ".join(SAE_CRITERIA))})
    errors.extend(choice_errors(data, {k: v for k, v in (("outcome", SAE_OUTCOMES), ("relatedness", SAE_RELATEDNESS))
                                       if given(k)}))
    awareness = None
    if data.get("awareness_at") not in (None, ""):
        onset = calendar_date(data.get("onset_date"))
        awareness, problems = _moment(session, patient, "awareness_at", data["awareness_at"], now, onset)
        errors.extend(problems)
    form = i18n.gettext("SAE follow-up report") if follow_up else i18n.gettext("SAE form")
    errors.extend(unknown_field_errors(data, SAE_FIELDS, form))
    return errors, awareness


def _document(data: Mapping[str, Any], awareness: str, keys: Sequence[str]) -> dict[str, Any]:
    document: dict[str, Any] = {k: data[k] for k in keys if k in data and data[k] not in (None, "")}
    for key, limit in (("term", MAX_SAE_TERM), ("coded_term", MAX_CODED), ("system_organ_class", MAX_CODED)):
        if key in document:
            document[key] = plain_text(key, document[key], limit)  # checked; stripped of surrounding space
    document["description"] = plain_text("description", data.get("description"), MAX_SAE_DESCRIPTION,
                                         required=False) or ""
    document["awareness_at"] = awareness
    return document


def _mark_under_lock(session: Session, patient: Patient, document: dict[str, Any]) -> None:
    """An SAE report is taken under a freeze or lock (expedited reporting does not stop at database lock) and
    says so, naming the lock, for the reconciliation of the locked data set with the safety database."""
    lock = locks.lock_over_safety_report(session, patient)
    if lock is not None:
        document["received_under_lock"] = lock["described"]


def report_sae(session: Session, actor: Actor, trial_id: str, code: str, data: Mapping[str, Any], *,
               now: dt.datetime | None = None) -> dict[str, Any]:
    """The initial SAE report. Without `awareness_at` the site became aware at the time of this report. `now`
    stands for the server's clock (the demo's SAEs reported in the past); real use leaves it None."""
    actor.require("reporting a serious adverse event")
    protocol, patient, _allocation = randomized_patient(session, actor, trial_id, code)
    if not isinstance(data, Mapping):
        raise Invalid(i18n.gettext("an SAE report is an object"),
                      [{"field": "sae", "value": data, "message": i18n.gettext("an object")}])
    now = now or utcnow()
    errors, awareness = _sae_errors(session, patient, data, now, follow_up=False)
    refuse(i18n.gettext("SAE report"), errors)
    document = _document(data, awareness or now.isoformat(timespec="seconds"),
                         ("term", "coded_term", "system_organ_class", "onset_date", "criteria", "outcome",
                          "relatedness"))
    _mark_under_lock(session, patient, document)
    row = SeriousAdverseEvent(patient_id=patient.id, data_json=canonical(document), created_by=actor.name,
                              created_at=now)
    session.add(row)
    session.flush()
    session.add(SaeReport(sae_id=row.id, kind="initial", data_json=canonical(document), created_by=actor.name,
                          created_at=now))
    record(session, actor.name, "report_sae", "sae", f"{trial_id}/{code}/{row.id}", trial_id=trial_id,
           site=patient.site_code, after=document)
    status = sae_status(protocol, now, [("initial", document)], now)
    _notify(session, protocol, trial_id, patient, row.id, status, "sae_new", lambda: i18n.gettext("SAE reported"))
    _notify_overdue(session, protocol, trial_id, patient, row.id, status)
    record_signatures.after_change(session, actor, patient, locks.SAE_FORM)
    safety_monitoring.check(session, trial_id)  # a death or an sICH may cross a rule the DSMB watches
    return {"id": row.id, "patient_id": code, **document}


def _sae_of(session: Session, actor: Actor, trial_id: str, code: str, sae_id: int
            ) -> tuple[Protocol, Patient, SeriousAdverseEvent]:
    protocol, patient, _ = randomized_patient(session, actor, trial_id, code)
    row = session.get(SeriousAdverseEvent, sae_id)
    if row is None or row.patient_id != patient.id:
        raise NotFound(i18n.gettext("no SAE {sae} of patient {patient} in {trial}").format(sae=sae_id, patient=code,
                                                                                         trial=trial_id))
    return protocol, patient, row


def _reports(session: Session, sae: SeriousAdverseEvent) -> list[SaeReport]:
    return list(session.execute(select(SaeReport).where(SaeReport.sae_id == sae.id).order_by(SaeReport.id)
                                ).scalars())


def _reports_of(session: Session, sae_ids: list[int]) -> dict[int, list[SaeReport]]:
    """The reports of many SAEs, each SAE's in order, in one query (a trial's list reads them all)."""
    reports: dict[int, list[SaeReport]] = {sae_id: [] for sae_id in sae_ids}
    if sae_ids:
        for report in session.execute(select(SaeReport).where(SaeReport.sae_id.in_(sae_ids))
                                      .order_by(SaeReport.id)).scalars():
            reports[report.sae_id].append(report)
    return reports


def _history(sae: SeriousAdverseEvent, reports: Sequence[SaeReport]) -> list[tuple[str, dict[str, Any]]]:
    """The reports in order; an SAE reported before expedited reporting existed has no initial report row."""
    history = [(r.kind, json.loads(r.data_json)) for r in reports]
    if not any(kind == "initial" for kind, _ in history):
        initial = json.loads(sae.data_json)
        initial.setdefault("awareness_at", aware(sae.created_at).isoformat(timespec="seconds"))
        history.insert(0, ("initial", initial))
    return history


def status_of(session: Session, protocol: Protocol, sae: SeriousAdverseEvent, now: dt.datetime | None = None,
              reports: Sequence[SaeReport] | None = None) -> dict[str, Any]:
    reports = _reports(session, sae) if reports is None else reports
    return sae_status(protocol, aware(sae.created_at), _history(sae, reports), now or utcnow())


def follow_up_sae(session: Session, actor: Actor, trial_id: str, code: str, sae_id: int,
                  data: Mapping[str, Any]) -> dict[str, Any]:
    """A follow-up report: what the site learned since (a new outcome, seriousness, causality, a better term),
    with `description` saying what it adds. An upgrade (now fatal or life-threatening, or now a SUSAR) notifies."""
    actor.require("reporting a serious adverse event")
    protocol, patient, sae = _sae_of(session, actor, trial_id, code, sae_id)
    if not isinstance(data, Mapping):
        raise Invalid(i18n.gettext("a follow-up report is an object"),
                      [{"field": "follow_up", "value": data, "message": i18n.gettext("an object")}])
    now = utcnow()
    errors, awareness = _sae_errors(session, patient, data, now, follow_up=True)
    refuse(i18n.gettext("SAE follow-up report"), errors)
    before = status_of(session, protocol, sae, now)
    document = _document(data, awareness or now.isoformat(timespec="seconds"),
                         [k for k in SAE_FIELDS if k not in ("description", "awareness_at")])
    _mark_under_lock(session, patient, document)
    session.add(SaeReport(sae_id=sae.id, kind="follow_up", data_json=canonical(document), created_by=actor.name,
                          created_at=now))
    session.flush()
    record(session, actor.name, "follow_up_sae", "sae", f"{trial_id}/{code}/{sae.id}", trial_id=trial_id,
           site=patient.site_code, after=document)
    after = status_of(session, protocol, sae, now)
    _notify_upgrade(session, protocol, trial_id, patient, sae.id, before, after)
    _notify_overdue(session, protocol, trial_id, patient, sae.id, after)
    record_signatures.after_change(session, actor, patient, locks.SAE_FORM)
    return _view(actor, protocol, patient, sae, after, session)


def assess_sae(session: Session, actor: Actor, trial_id: str, code: str, sae_id: int,
               data: Mapping[str, Any]) -> dict[str, Any]:
    """The sponsor's assessment: its causality and expectedness (against the reference safety information), a
    comment, and when it submitted the SUSAR to the authorities (which stops the SUSAR clock)."""
    actor.require("assessing an SAE for the sponsor")
    protocol, patient, sae = _sae_of(session, actor, trial_id, code, sae_id)
    if not isinstance(data, Mapping):
        raise Invalid(i18n.gettext("a sponsor assessment is an object"),
                      [{"field": "assessment", "value": data, "message": i18n.gettext("an object")}])
    now = utcnow()
    errors = choice_errors(data, {"causality": SAE_RELATEDNESS, "expectedness": EXPECTEDNESS})
    comment = data.get("comment")
    if comment is not None and comment != "":
        errors.extend(text_errors("comment", comment, MAX_REASON))
    submitted = None
    if data.get("reported_to_authorities_at") not in (None, ""):
        submitted, problems = _moment(session, patient, "reported_to_authorities_at",
                                      data["reported_to_authorities_at"], now)
        errors.extend(problems)
    errors.extend(unknown_field_errors(data, SPONSOR_FIELDS, i18n.gettext("sponsor assessment")))
    refuse(i18n.gettext("sponsor assessment"), errors)
    before = status_of(session, protocol, sae, now)
    document = {"causality": data["causality"], "expectedness": data["expectedness"],
                "comment": plain_text("comment", comment, MAX_REASON, required=False) or ""}
    if submitted is not None:
        document["reported_to_authorities_at"] = submitted
    session.add(SaeReport(sae_id=sae.id, kind="sponsor_assessment", data_json=canonical(document),
                          created_by=actor.name, created_at=now))
    session.flush()
    record(session, actor.name, "assess_sae", "sae", f"{trial_id}/{code}/{sae.id}", trial_id=trial_id,
           site=patient.site_code, after=document)
    after = status_of(session, protocol, sae, now)
    _notify_upgrade(session, protocol, trial_id, patient, sae.id, before, after)
    _notify_overdue(session, protocol, trial_id, patient, sae.id, after)
    return _view(actor, protocol, patient, sae, after, session)


def _view(actor: Actor, protocol: Protocol, patient: Patient, sae: SeriousAdverseEvent, status: Mapping[str, Any],
          session: Session, allocation: Allocation | None = None,
          reports: Sequence[SaeReport] | None = None) -> dict[str, Any]:
    """One SAE as a reader sees it: its current state, classification and clocks, its reports, and the arm only
    for those who see arms in a list (blinding.sees_arm_counts), or for the sponsor's pharmacovigilance on a
    SUSAR (blinding.sees_susar_arm)."""
    reports = _reports(session, sae) if reports is None else reports
    item = {"id": sae.id, "patient_id": patient.code, "site": patient.site_code, "reported_by": sae.created_by,
            "reported_at": aware(sae.created_at).isoformat(timespec="seconds"), **status["state"],
            **{k: status[k] for k in ("awareness_at", "related", "expected", "expectedness_by", "susar",
                                      "fatal_or_life_threatening", "sponsor_assessment", "clocks", "overdue")},
            "reports": [{"kind": r.kind, "by": r.created_by, "at": aware(r.created_at).isoformat(timespec="seconds"),
                         **json.loads(r.data_json)} for r in reports]}
    masking = protocol.design.masking
    if sees_arm_counts(actor.role, protocol) or (status["susar"] and sees_susar_arm(actor.role, masking)):
        allocation = allocation or session.execute(select(Allocation).where(Allocation.patient_id == patient.id)
                                                   ).scalar_one_or_none()
        if allocation is not None:
            item["arm"] = allocation.arm
    return item


def list_saes(session: Session, actor: Actor, trial_id: str, code: str) -> list[dict[str, Any]]:
    """A patient's SAEs as first reported (the stored initial report), each with `current`: its state now."""
    actor.require("reading safety data")  # an SAE narrative can name the treatment: never the outcome assessor's
    protocol, patient, _ = randomized_patient(session, actor, trial_id, code)
    rows = session.execute(select(SeriousAdverseEvent).where(SeriousAdverseEvent.patient_id == patient.id)
                           .order_by(SeriousAdverseEvent.id)).scalars()
    now = utcnow()
    out = []
    for r in rows:
        status = status_of(session, protocol, r, now)
        out.append({"id": r.id, "patient_id": code, "reported_by": r.created_by, **json.loads(r.data_json),
                    "current": status["state"], "susar": status["susar"], "clocks": status["clocks"],
                    "overdue": status["overdue"]})
    return out


def trial_saes(session: Session, actor: Actor, trial_id: str, now: dt.datetime | None = None
               ) -> list[dict[str, Any]]:
    """Every SAE of the trial at the actor's sites, with its clocks (due, overdue), newest first."""
    actor.require("reading safety data")
    _trial, protocol = get_trial(session, actor, trial_id)
    now = now or utcnow()
    rows = session.execute(select(SeriousAdverseEvent, Patient, Allocation)
                           .join(Patient, Patient.id == SeriousAdverseEvent.patient_id)
                           .outerjoin(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial_id).order_by(SeriousAdverseEvent.id.desc())).all()
    visible = [(s, p, a) for s, p, a in rows if actor.can_see_site(p.site_code)]
    reports = _reports_of(session, [s.id for s, _, _ in visible])
    return [_view(actor, protocol, p, s, status_of(session, protocol, s, now, reports[s.id]), session, a,
                  reports[s.id]) for s, p, a in visible]


def overdue_count(session: Session, actor: Actor, trial_id: str, now: dt.datetime | None = None) -> int:
    """How many of the trial's SAEs at the actor's sites have a report overdue (or made late): `trial_saes`
    counted, without building each SAE's view."""
    actor.require("reading safety data")
    _trial, protocol = get_trial(session, actor, trial_id)
    now = now or utcnow()
    rows = [sae for sae, site in session.execute(
        select(SeriousAdverseEvent, Patient.site_code).join(Patient, Patient.id == SeriousAdverseEvent.patient_id)
        .where(Patient.trial_id == trial_id)).all() if actor.can_see_site(site)]
    reports = _reports_of(session, [sae.id for sae in rows])
    return sum(1 for sae in rows if status_of(session, protocol, sae, now, reports[sae.id])["overdue"])


# ---- notifications --------------------------------------------------------------------------------------------
SAE_AUDIENCE = ("pharmacovigilance", "dsmb", "admin", "investigator")
OVERDUE_AUDIENCE = ("pharmacovigilance", "admin", "investigator")


def _summary(protocol: Protocol, trial_id: str, patient: Patient, sae_id: int, status: Mapping[str, Any]) -> str:
    """The message body: the event and its clocks. Never the arm, the kit or the narrative (free text that could
    name a treatment), whoever receives it."""
    state = status["state"]
    _ = i18n.gettext

    def words(code: Any) -> str:  # a stored choice as the email words it: the code's words, translated
        return _(str(code).replace("_", " "))

    shown = {"sponsor": _("sponsor"),
             "reference safety information (provisional)": _("reference safety information (provisional)"),
             "on time": _("on time"), "late": _("late"), "overdue": _("overdue"), "due": _("due")}
    listed = ("、" if i18n.current() == i18n.CHINESE else ", ").join(words(c) for c in state.get("criteria") or [])
    lines = [_("Trial: {acronym} ({trial})").format(acronym=protocol.acronym, trial=trial_id),
             _("Patient: {patient} at site {site}").format(patient=patient.code, site=patient.site_code),
             _("SAE {sae}: {term}").format(sae=sae_id, term=state.get("term", ""))
             + (_(" (coded: {term})").format(term=state["coded_term"]) if state.get("coded_term") else ""),
             _("Onset: {day}").format(day=state.get("onset_date", "")),
             _("Seriousness: {criteria}").format(criteria=listed),
             _("Outcome: {outcome}").format(outcome=words(state.get("outcome", ""))),
             _("Investigator causality: {relatedness}").format(relatedness=words(state.get("relatedness", ""))),
             _("Expectedness: {expectedness} ({by})").format(
                 expectedness=_("expected") if status["expected"] else _("unexpected"),
                 by=shown.get(status["expectedness_by"], status["expectedness_by"])),
             _("SUSAR: {answer}").format(answer=_("yes") if status["susar"] else _("no")),
             _("Site aware since: {when} (UTC)").format(when=status["awareness_at"])]
    for clock in status["clocks"]:
        what = _("Initial report to the sponsor") if clock["report"] == "initial" else \
            _("SUSAR report to the authorities ({days} days)").format(days=clock["days"])
        lines.append(_("{what}: due {when} (UTC), {status}").format(what=what, when=clock["due"],
                                                                    status=shown.get(clock["status"], clock["status"])))
    lines.append(_("Open the trial's SAE list: {link}").format(link=f"/trials/{trial_id}/saes"))
    return "\n".join(lines)


def _notify(session: Session, protocol: Protocol, trial_id: str, patient: Patient, sae_id: int,
            status: Mapping[str, Any], kind: str, headline: Callable[[], str]) -> None:
    """`headline` words the event in the language it is called in."""
    def compose() -> tuple[str, str]:
        subject = i18n.gettext("[{acronym}] {headline}: {susar}patient {patient} (site {site}), SAE {sae}").format(
            acronym=protocol.acronym, headline=headline(), susar=i18n.gettext("SUSAR, ") if status["susar"] else "",
            patient=patient.code, site=patient.site_code, sae=sae_id)
        return subject, _summary(protocol, trial_id, patient, sae_id, status)

    subject, body, others = notifications.composed(compose)
    notifications.notify(session, trial_id, kind, subject, body, SAE_AUDIENCE, site=patient.site_code,
                         about=f"sae/{sae_id}/{kind}", translations=others)


def _notify_upgrade(session: Session, protocol: Protocol, trial_id: str, patient: Patient, sae_id: int,
                    before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """Upgraded: now fatal or life-threatening, or now a SUSAR."""
    worse = after["fatal_or_life_threatening"] and not before["fatal_or_life_threatening"]
    susar = after["susar"] and not before["susar"]

    def headline() -> str:
        changes = [*([i18n.gettext("now fatal or life-threatening")] if worse else []),
                   *([i18n.gettext("now a SUSAR")] if susar else [])]
        return i18n.gettext("SAE upgraded ({changes})").format(changes=", ".join(changes))

    if worse or susar:
        _notify(session, protocol, trial_id, patient, sae_id, after, "sae_upgraded", headline)


def _notify_overdue(session: Session, protocol: Protocol, trial_id: str, patient: Patient, sae_id: int,
                    status: Mapping[str, Any]) -> list[Notification]:
    """One notification per overdue report of an SAE (the initial report entered late; a SUSAR not submitted by
    its deadline), the first time it is seen overdue."""
    made = []
    for clock in status["clocks"]:
        about = f"sae/{sae_id}/{clock['report']}_overdue"
        if not clock["overdue"] or notifications.exists(session, trial_id, about):
            continue
        def compose(clock: Mapping[str, Any] = clock) -> tuple[str, str]:
            what = i18n.gettext("initial SAE report (24 h)") if clock["report"] == "initial" else \
                i18n.gettext("SUSAR report to the authorities ({days} days)").format(days=clock["days"])
            subject = i18n.gettext("[{acronym}] Overdue: {what}, patient {patient} (site {site}), SAE {sae}").format(
                acronym=protocol.acronym, what=what, patient=patient.code, site=patient.site_code, sae=sae_id)
            return subject, _summary(protocol, trial_id, patient, sae_id, status)

        subject, body, others = notifications.composed(compose)
        made.append(notifications.notify(session, trial_id, "overdue_report", subject, body, OVERDUE_AUDIENCE,
                                         site=patient.site_code, about=about, translations=others))
    return made


def _overdue(session: Session, trial_id: str | None, now: dt.datetime
             ) -> Iterator[tuple[Protocol, Patient, SeriousAdverseEvent, dict[str, Any]]]:
    """Each SAE with a report overdue that no notification has told of yet."""
    query = select(SeriousAdverseEvent, Patient).join(Patient, Patient.id == SeriousAdverseEvent.patient_id)
    if trial_id is not None:
        query = query.where(Patient.trial_id == trial_id)
    protocols: dict[str, Protocol] = {}
    rows = session.execute(query.order_by(SeriousAdverseEvent.id)).all()
    reports = _reports_of(session, [sae.id for sae, _ in rows])
    for sae, patient in rows:
        if patient.trial_id not in protocols:
            trial = session.get(Trial, patient.trial_id)
            assert trial is not None
            protocols[patient.trial_id] = protocol_in_force(session, trial)[1]
        status = status_of(session, protocols[patient.trial_id], sae, now, reports[sae.id])
        if any(c["overdue"] and not notifications.exists(session, patient.trial_id,
                                                         f"sae/{sae.id}/{c['report']}_overdue")
               for c in status["clocks"]):
            yield protocols[patient.trial_id], patient, sae, status


def overdue_unnotified(session: Session, trial_id: str | None = None, now: dt.datetime | None = None) -> bool:
    """Whether `flag_overdue` has anything to do (a read, so that readers write only when there is)."""
    return next(_overdue(session, trial_id, now or utcnow()), None) is not None


def flag_overdue(session: Session, trial_id: str | None = None, now: dt.datetime | None = None) -> int:
    """Notify each report that has become overdue since it was last looked at (a SUSAR whose deadline passed with
    no submission recorded). The platform has no scheduler: the SAE list and the inbox run it (after a read that
    finds something to do), so an overdue report is flagged the next time anyone looks. Returns how many
    notifications it made."""
    made = 0
    for protocol, patient, sae, status in list(_overdue(session, trial_id, now or utcnow())):
        made += len(_notify_overdue(session, protocol, patient.trial_id, patient, sae.id, status))
    return made
