"""Trials on the platform: created from a protocol at sites, with concealed lists made at creation."""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache

from sqlalchemy import bindparam, exists, select, true
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol, ProtocolError, resolve
from ..protocol.schemes import PermutedBlocks
from ..randomization import Randomizer, SystemDraw
from ..randomization.lists import LIST_LENGTH_PER_STRATUM, initial_kits_per_site, kit_block_sizes
from ..store import record
from ..store.models import ProtocolVersion, RandomizationStateRow, Site, Trial, TrialSite
from .accounts import Actor, create_site
from .concealed_lists import StoredBlockList, StoredKitList
from .errors import Conflict, Forbidden, Invalid, NotFound



@lru_cache(maxsize=64)
def _parse(protocol_json: str) -> Protocol:
    return Protocol.model_validate_json(protocol_json)


def stored_protocol(protocol: Protocol) -> str:
    """The protocol as the database keeps it: JSON that reads back as the same protocol (aliases, no nulls)."""
    return protocol.model_dump_json(by_alias=True, exclude_none=True)


def protocol_of(trial: Trial) -> Protocol:
    return _parse(trial.protocol_json)


_AMENDMENT_IN_FORCE = (select(ProtocolVersion.protocol_json)
                       .where(ProtocolVersion.trial_id == Trial.id, ProtocolVersion.effective_from <= bindparam("now"))
                       .order_by(ProtocolVersion.version.desc()).limit(1).scalar_subquery())
# Built once (bound per call), for the admin and for site staff: nearly every request starts here.
_TRIAL_FOR = {admin: select(Trial, true() if admin else exists().where(
    TrialSite.trial_id == Trial.id, TrialSite.site_code.in_(bindparam("sites", expanding=True))), _AMENDMENT_IN_FORCE)
    .where(Trial.id == bindparam("trial")) for admin in (True, False)}


def get_trial(session: Session, actor: Actor, trial_id: str) -> tuple[Trial, Protocol]:
    """The trial and the protocol version in force now (as `protocol_in_force`). One query: the trial, whether the
    actor works at one of its sites, and the latest amendment in force."""
    bound: dict = {"trial": trial_id, "now": dt.datetime.now(dt.UTC)}
    if not actor.is_admin:
        bound["sites"] = sorted(actor.sites)
    found = session.execute(_TRIAL_FOR[actor.is_admin], bound).one_or_none()
    if found is None:
        raise NotFound(i18n.gettext("no trial {trial} on this platform").format(trial=repr(trial_id)))
    trial, allowed, in_force = found
    if not allowed:
        raise Forbidden(i18n.gettext("{name} works at no site of {trial}").format(name=actor.name, trial=trial_id))
    return trial, _parse(in_force) if in_force is not None else protocol_of(trial)


def protocol_in_force(session: Session, trial: Trial, at: dt.datetime | None = None) -> tuple[int, Protocol]:
    """(version, protocol) in force at `at` (now): the latest amendment already effective, else version 1."""
    moment = at or dt.datetime.now(dt.UTC)
    row = session.execute(select(ProtocolVersion).where(ProtocolVersion.trial_id == trial.id,
                                                        ProtocolVersion.effective_from <= moment)
                          .order_by(ProtocolVersion.version.desc()).limit(1)).scalar_one_or_none()
    return (row.version, _parse(row.protocol_json)) if row is not None else (1, protocol_of(trial))


def patient_protocol(session: Session, trial_id: str, version: int | None) -> Protocol:
    """The protocol version a patient was screened under (None: version 1): their eligibility stays its."""
    trial = session.get(Trial, trial_id)
    if trial is None:  # pragma: no cover - a patient's trial exists
        raise NotFound(i18n.gettext("no trial {trial} on this platform").format(trial=repr(trial_id)))
    if version is None or version == 1:
        return protocol_of(trial)
    row = session.execute(select(ProtocolVersion).where(ProtocolVersion.trial_id == trial_id,
                                                        ProtocolVersion.version == version)).scalar_one()
    return _parse(row.protocol_json)


def trial_sites(session: Session, trial_id: str) -> list[str]:
    return list(session.execute(select(TrialSite.site_code).where(TrialSite.trial_id == trial_id)
                                .order_by(TrialSite.site_code)).scalars())


def list_trials(session: Session, actor: Actor) -> list[dict]:
    out = []
    for trial in session.execute(select(Trial).order_by(Trial.id)).scalars():
        sites = trial_sites(session, trial.id)
        if actor.is_admin or actor.sites & set(sites):
            p = protocol_of(trial)
            out.append({"id": trial.id, "acronym": p.acronym, "title": p.title, "registry_id": p.registry_id,
                        "masking": p.design.masking,
                        "randomization": p.randomization.method if p.randomization else None,
                        "allocation_ratio": p.allocation_ratio, "sites": sites,
                        "your_sites": sites if actor.is_admin else sorted(actor.sites & set(sites))})
    return out


def create_trial(session: Session, actor: Actor, trial: str, sites: list[str]) -> Trial:
    actor.require("creating a trial")
    try:
        protocol = resolve(trial)
    except ProtocolError as exc:
        raise Invalid(str(exc), [{"field": "trial", "value": trial, "message": str(exc)}]) from None
    if not sites:
        raise Invalid(i18n.gettext("a trial runs at one or more sites; give --site"),
                      [{"field": "site", "value": None, "message": i18n.gettext("at least one site")}])
    if session.get(Trial, protocol.id) is not None:
        raise Conflict(i18n.gettext("trial {trial} exists already; add sites with `stroketrial admin add-site`").format(
            trial=protocol.id))
    row = Trial(id=protocol.id, protocol_json=stored_protocol(protocol))
    session.add(row)
    session.flush()
    record(session, actor.name, "create", "trial", protocol.id, trial_id=protocol.id,
           after={"protocol": protocol.id, "registry_id": protocol.registry_id, "sites": sorted(sites)})
    if protocol.randomization is not None:
        session.add(RandomizationStateRow(trial_id=protocol.id, state_json=Randomizer.for_protocol(protocol)
                                          .initial_state().model_dump_json()))
        session.flush()
    for site in sites:
        add_site(session, actor, protocol.id, site)
    return row


def add_site(session: Session, actor: Actor, trial_id: str, site: str) -> None:
    """Open a site for a trial; its concealed block lists and kits are made now, from the OS CSPRNG."""
    actor.require("adding a site to a trial")
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFound(i18n.gettext("no trial {trial}").format(trial=repr(trial_id)))
    if session.get(Site, site) is None:
        create_site(session, actor, site)
    if session.get(TrialSite, (trial_id, site)) is not None:
        return
    session.add(TrialSite(trial_id=trial_id, site_code=site))
    protocol = protocol_of(trial)
    if protocol.randomization is not None:
        prepare_lists(session, protocol, site)
    record(session, actor.name, "add_site", "trial", trial_id, trial_id=trial_id, site=site, after={"site": site})


def randomization_state(session: Session, trial_id: str) -> RandomizationStateRow:
    """The allocation state and the concealed lists of a randomized trial, made with the trial."""
    row = session.get(RandomizationStateRow, trial_id)
    if row is None:
        raise Conflict(i18n.gettext("{trial} has no allocation state on this platform, so it cannot randomize").format(
            trial=trial_id))
    return row


def prepare_lists(session: Session, protocol: Protocol, site: str) -> None:
    """Make a new site's concealed block lists and kits (nothing for a trial that is not randomized)."""
    scheme = protocol.randomization
    if scheme is None:
        return
    randomization_state(session, protocol.id)  # made with the trial
    randomizer = Randomizer.for_protocol(protocol)
    draw = SystemDraw()
    if isinstance(scheme, PermutedBlocks):
        blocks = StoredBlockList(session, protocol.id)
        for stratum in randomizer.strata_for_sites([site]):
            blocks.extend(randomizer.arms, scheme.block_sizes, stratum, LIST_LENGTH_PER_STRATUM, draw)
    if scheme.blinded_kits:
        StoredKitList(session, protocol.id).add(randomizer.arms, [site],
                                                initial_kits_per_site(protocol.sample_size.total),
                                                kit_block_sizes(scheme, randomizer.arms), draw)


def protocol_summary(protocol: Protocol) -> dict:
    data = json.loads(protocol.model_dump_json(by_alias=True, exclude_none=True))
    return {k: data[k] for k in ("id", "acronym", "title", "registry_id", "phase", "design", "arms", "endpoints",
                                 "visits")}
