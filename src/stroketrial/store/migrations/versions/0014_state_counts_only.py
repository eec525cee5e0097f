"""The randomization state keeps counts only: the list of randomized patient ids leaves it.

The ids are in the allocations table (one row per patient, unique); carrying them in the state
made every allocation read and rewrite a document that grew with the trial.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

STATES = sa.table("randomization_state", sa.column("trial_id", sa.String), sa.column("state_json", sa.Text))


def _rewrite(change) -> None:
    connection = op.get_bind()
    for trial_id, state_json in connection.execute(sa.select(STATES.c.trial_id, STATES.c.state_json)).all():
        state = json.loads(state_json)
        change(connection, trial_id, state)
        connection.execute(STATES.update().where(STATES.c.trial_id == trial_id)
                           .values(state_json=json.dumps(state, separators=(",", ":"), ensure_ascii=False)))


def upgrade() -> None:
    _rewrite(lambda _connection, _trial, state: state.pop("patients", None))


def downgrade() -> None:
    allocations = sa.table("allocations", sa.column("trial_id", sa.String), sa.column("patient_id", sa.Integer),
                           sa.column("sequence", sa.Integer))
    patients = sa.table("patients", sa.column("id", sa.Integer), sa.column("code", sa.String))

    def restore(connection, trial_id, state) -> None:
        codes = connection.execute(
            sa.select(patients.c.code).join(allocations, allocations.c.patient_id == patients.c.id)
            .where(allocations.c.trial_id == trial_id).order_by(allocations.c.sequence)).scalars()
        state["patients"] = list(codes)

    _rewrite(restore)
