"""The JSON API of record signatures and data freezes/locks: the investigator signs a form or a patient's casebook
(the password entered again), a patient's signatures with their state, and the data manager's freezes and locks
of a form, a patient or the whole trial. Thin calls into service.record_signatures and service.locks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request
from pydantic import Field

from ..service import locks, record_signatures, signatures
from ..service.accounts import Actor
from .api import PatientCode, Trial, _Body, current_actor, database, router


LockId = Annotated[int, Path(description="the freeze's or lock's number (`GET .../locks`)", ge=1, le=2**31 - 1)]


class RecordSignatureIn(_Body):
    form: str | None = Field(None, description="a visit form's id or `screening`; none (or `casebook`) signs the "
                                               "patient's whole casebook: screening, every visit form, the SAEs")
    meaning: Literal["review", "approval", "authorship"] = Field(
        description="what the signature means: review (I have reviewed the data and confirm that they are "
                    "accurate and complete), approval (I approve the data as recorded), authorship (I am the "
                    "author of the data)")
    password: str = Field(description="the investigator's password: the electronic signature")


class LockIn(_Body):
    level: Literal["freeze", "lock"] = Field(description="freeze (released by the data manager) or lock (released "
                                                         "by the admin alone); both refuse every write")
    reason: str = Field(description="why (at most 2000 characters)")
    patient_id: str | None = Field(None, description="one patient; none: the whole trial")
    form: str | None = Field(None, description="with a patient: one form (`screening`, `sae` or a visit id); "
                                               "none: the whole patient")


class ReleaseIn(_Body):
    reason: str = Field(description="why the freeze or lock is released (at most 2000 characters)")


@router.post("/trials/{trial}/patients/{patient}/signatures", status_code=201, tags=["signatures and locks"])
def post_signature(trial: Trial, patient: PatientCode, body: RecordSignatureIn, request: Request,
                   actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """The investigator signs a form, or the whole casebook, with its meaning. A wrong password counts as a failed
    sign-in (429 after too many)."""
    actor.require(record_signatures.SIGNING)
    signature = signatures.sign(db, actor, body.password, request.client.host if request.client else "unknown")
    with db.write(trial) as session:
        return record_signatures.sign_record(session, actor, trial, patient, body.form, body.meaning, signature)


@router.get("/trials/{trial}/patients/{patient}/signatures", tags=["signatures and locks"])
def get_signatures(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor),
                   db=Depends(database)) -> list[dict[str, Any]]:
    """The patient's signatures, newest first: valid (checked again now), invalidated (when and why) or mismatch
    (the signed data changed around the platform)."""
    with db.read() as session:
        return record_signatures.list_signatures(session, actor, trial, patient)


@router.get("/trials/{trial}/locks", tags=["signatures and locks"])
def get_locks(trial: Trial, patient: str | None = None, actor: Actor = Depends(current_actor),
              db=Depends(database)) -> list[dict[str, Any]]:
    """The trial's freezes and locks, newest first (with `patient`: those that cover the patient)."""
    with db.read() as session:
        return locks.list_locks(session, actor, trial, patient)


@router.post("/trials/{trial}/locks", status_code=201, tags=["signatures and locks"])
def post_lock(trial: Trial, body: LockIn, actor: Actor = Depends(current_actor),
              db=Depends(database)) -> dict[str, Any]:
    """Freeze or lock the whole trial, a patient, or one form of a patient."""
    with db.write(trial) as session:
        return locks.lock(session, actor, trial, body.level, body.reason, body.patient_id, body.form)


@router.post("/trials/{trial}/locks/{lock_id}/release", tags=["signatures and locks"])
def post_release(trial: Trial, lock_id: LockId, body: ReleaseIn, actor: Actor = Depends(current_actor),
                 db=Depends(database)) -> dict[str, Any]:
    """Release a freeze (data manager or admin) or a lock (admin), with a reason."""
    with db.write(trial) as session:
        return locks.release(session, actor, trial, lock_id, body.reason)
