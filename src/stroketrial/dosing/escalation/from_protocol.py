"""The BOIN or CRM design a protocol fixes in its dose_escalation section, or one planned from given settings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ...protocol.model import DoseEscalation
from .boin import Boin
from .crm import Crm, calibrated_skeleton
from .decisions import EscalationInputError

PLANNING_TARGET = 0.25  # the target DLT rate assumed when planning without one (BOIN's and dfcrm's examples)


def boin_design(escalation: DoseEscalation) -> Boin:
    b = escalation.boin
    if b is None or escalation.n_cohorts is None:
        raise EscalationInputError(f"the protocol's escalation design is {escalation.design}, not boin")
    return Boin(b.target, cohort_size=escalation.cohort_size, n_cohorts=escalation.n_cohorts, p_saf=b.p_saf,
                p_tox=b.p_tox, n_earlystop=b.n_earlystop, cutoff_eli=b.cutoff_eli, extrasafe=b.extrasafe,
                offset=b.offset, escalation_boundary=b.lambda_e, deescalation_boundary=b.lambda_d)


def crm_design(escalation: DoseEscalation) -> Crm:
    c = escalation.crm
    if c is None or escalation.n_cohorts is None:
        raise EscalationInputError(f"the protocol's escalation design is {escalation.design}, not crm")
    skeleton = (tuple(c.skeleton) if c.skeleton is not None
                else calibrated_skeleton(c.target, len(escalation.levels), c.halfwidth, c.prior_mtd))
    return Crm(c.target, skeleton, cohort_size=escalation.cohort_size, n_cohorts=escalation.n_cohorts,
               prior_variance=c.prior_variance, stop_probability=c.safety_stop)



def planned_boin(target: float | None = None, n_cohorts: int | None = None, n_earlystop: int | None = None,
                 extrasafe: bool | None = None, offset: float | None = None, lambda_e: float | None = None,
                 lambda_d: float | None = None) -> Boin:
    """A BOIN design for planning: the settings given, and Boin's own defaults for the rest."""
    given: dict[str, Any] = {"n_cohorts": n_cohorts, "n_earlystop": n_earlystop, "extrasafe": extrasafe,
                             "offset": offset, "escalation_boundary": lambda_e, "deescalation_boundary": lambda_d}
    return replace(Boin(PLANNING_TARGET if target is None else target),
                   **{k: v for k, v in given.items() if v is not None})


def planned_crm(n_levels: int, target: float | None = None, skeleton: tuple[float, ...] | None = None,
                n_cohorts: int | None = None, safety_stop: bool | None = None) -> Crm:
    """A CRM design for planning: a calibrated skeleton unless one is given (Lee & Cheung 2009) and Crm's
    own defaults for the rest; `safety_stop=False` drops the safety stop, as dfcrm has none."""
    target = PLANNING_TARGET if target is None else target
    crm = Crm(target, skeleton or calibrated_skeleton(target, n_levels))
    if n_cohorts is not None:
        crm = replace(crm, n_cohorts=n_cohorts)
    return replace(crm, stop_probability=None) if safety_stop is False else crm
