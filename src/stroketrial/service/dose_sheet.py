"""The dose sheet of a randomized patient: what to give, when and how much, as this user may see it."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from .. import i18n
from ..dosing import DoseError, dose_instructions
from .accounts import Actor
from .blinding import sees_arm
from . import supply
from .consent import refuse_treatment_after_withdrawal
from .escalation import dose_level_of
from .errors import Conflict, Invalid
from .patients import aware, randomized_patient


def dose(session: Session, actor: Actor, trial_id: str, code: str) -> dict[str, Any]:
    actor.require("reading a dose sheet")
    protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    refuse_treatment_after_withdrawal(session, patient)
    weight = json.loads(patient.data_json).get("weight_kg")
    blinded = not sees_arm(actor.role, protocol.design.masking)
    # A physical kit replaced after damage: the sheet names the kit the patient holds now.
    kit = supply.current_kit(session, patient) or allocation.kit
    if blinded and not kit and protocol.randomization is not None and protocol.randomization.blinded_kits:
        raise Conflict(i18n.gettext("patient {patient} was allocated without a kit (none was in stock); the unblinded "
                                    "pharmacist dispenses one when the urgent resupply arrives, and the dose sheet "
                                    "follows").format(patient=code))
    # In a double-blind trial kits look alike and hold the same volume: a blinded user is given the
    # experimental arm's instructions for "the study drug in kit N", whichever arm the kit holds. The
    # unblinded pharmacist, who sees the arm, gets the arm's own sheet: for a matching placebo, what to
    # draw up in place of the drug; the volumes, rates, times and label are the active arm's.
    if blinded and not kit:
        # The protocol model refuses masking without kits; never fall back to showing one arm's dose.
        raise Conflict(i18n.gettext("{trial} is {masking} without blinded kits: the dose sheet is for those who may "
                                    "see the arm").format(trial=trial_id,
                                                      masking=i18n.gettext(protocol.design.masking.replace("_", " "))))
    arm = next(a.id for a in protocol.arms if a.role == "experimental") if blinded else allocation.arm
    try:
        steps = dose_instructions(protocol, arm, weight, aware(allocation.created_at),
                                  level=dose_level_of(session, patient))
    except DoseError as exc:
        raise Invalid(str(exc), [{"field": "weight_kg", "value": weight, "message": str(exc)}]) from None
    out = []
    for s in steps:
        item = s.to_json()
        if kit and "label" in item:
            item["label"] += " · " + i18n.gettext("kit {kit}").format(kit=kit)
        if blinded and kit and s.route != "procedure":  # the thrombectomy is no study drug
            item["name"] = i18n.gettext("study drug from kit {kit}").format(kit=kit)
            # What the pharmacist draws up and reconstitutes names the drug: the kit arrives prepared.
            for key in ("intervention", "draw_up", "reconstitution"):
                item.pop(key, None)
        out.append(item)
    body = {"patient_id": code, "weight_kg": weight, "sequence": allocation.sequence, "kit": kit,
            "administrations": out}
    if not blinded:
        body["arm"] = allocation.arm
    return body
