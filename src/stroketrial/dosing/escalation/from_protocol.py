"""The BOIN or CRM design a protocol fixes in its dose_escalation section."""

from __future__ import annotations

from ...protocol.model import DoseEscalation
from .boin import Boin
from .crm import Crm, calibrated_skeleton


def boin_design(escalation: DoseEscalation) -> Boin:
    b = escalation.boin
    if b is None or escalation.n_cohorts is None:
        raise ValueError(f"the protocol's escalation design is {escalation.design}, not boin")
    return Boin(b.target, cohort_size=escalation.cohort_size, n_cohorts=escalation.n_cohorts, p_saf=b.p_saf,
                p_tox=b.p_tox, n_earlystop=b.n_earlystop, cutoff_eli=b.cutoff_eli, extrasafe=b.extrasafe,
                offset=b.offset, escalation_boundary=b.lambda_e, deescalation_boundary=b.lambda_d)


def crm_design(escalation: DoseEscalation) -> Crm:
    c = escalation.crm
    if c is None or escalation.n_cohorts is None:
        raise ValueError(f"the protocol's escalation design is {escalation.design}, not crm")
    skeleton = (tuple(c.skeleton) if c.skeleton is not None
                else calibrated_skeleton(c.target, len(escalation.levels), c.halfwidth, c.prior_mtd))
    return Crm(c.target, skeleton, cohort_size=escalation.cohort_size, n_cohorts=escalation.n_cohorts,
               prior_variance=c.prior_variance, stop_probability=c.safety_stop)
