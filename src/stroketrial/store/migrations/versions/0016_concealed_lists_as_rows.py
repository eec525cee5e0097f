"""The concealed block and kit lists leave the randomization state for tables of their own, a row per entry.

As JSON documents in `randomization_state` they were read whole by every allocation and grew with the
trial (a block list of 20,000 entries is about 2 MB and takes about 100 ms to parse). In rows, an allocation
reads the one entry or kit it uses; a resupply appends rows.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STATES = sa.table("randomization_state", sa.column("trial_id", sa.String), sa.column("block_list_json", sa.Text),
                  sa.column("kit_list_json", sa.Text))
BLOCKS = sa.table("concealed_block_entries", sa.column("trial_id", sa.String), sa.column("stratum", sa.String),
                  sa.column("position", sa.Integer), sa.column("block", sa.Integer),
                  sa.column("block_size", sa.Integer), sa.column("slot", sa.String), sa.column("arm", sa.String))
KITS = sa.table("concealed_kits", sa.column("trial_id", sa.String), sa.column("position", sa.Integer),
                sa.column("kit_number", sa.String), sa.column("site", sa.String), sa.column("arm", sa.String),
                sa.column("block", sa.Integer))


def _json(document) -> str:
    # as the lists were stored (pydantic's model_dump_json: compact, field order kept)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def upgrade() -> None:
    op.create_table("concealed_block_entries",
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), primary_key=True),
                    sa.Column("stratum", sa.String(300), primary_key=True),
                    sa.Column("position", sa.Integer, primary_key=True),
                    sa.Column("block", sa.Integer, nullable=False),
                    sa.Column("block_size", sa.Integer, nullable=False),
                    sa.Column("slot", sa.String(60), nullable=False),
                    sa.Column("arm", sa.String(60), nullable=False))
    op.create_table("concealed_kits",
                    sa.Column("trial_id", sa.String(60), sa.ForeignKey("trials.id"), primary_key=True),
                    sa.Column("position", sa.Integer, primary_key=True),
                    sa.Column("kit_number", sa.String(20), nullable=False),
                    sa.Column("site", sa.String(40), nullable=False),
                    sa.Column("arm", sa.String(60), nullable=False),
                    sa.Column("block", sa.Integer, nullable=False),
                    sa.UniqueConstraint("trial_id", "kit_number", name="uq_concealed_kit_number"))
    op.create_index("ix_concealed_kits_next", "concealed_kits", ["trial_id", "site", "arm", "position"])
    connection = op.get_bind()
    for trial_id, blocks_json, kits_json in connection.execute(
            sa.select(STATES.c.trial_id, STATES.c.block_list_json, STATES.c.kit_list_json)).all():
        entries = [{"trial_id": trial_id, "stratum": stratum, **entry}
                   for stratum, listed in json.loads(blocks_json).get("strata", {}).items() for entry in listed]
        kits = [{"trial_id": trial_id, "position": i, **kit}
                for i, kit in enumerate(json.loads(kits_json).get("kits", []))]
        if entries:
            connection.execute(BLOCKS.insert(), entries)
        if kits:
            connection.execute(KITS.insert(), kits)
    with op.batch_alter_table("randomization_state") as batch:
        batch.drop_column("block_list_json")
        batch.drop_column("kit_list_json")


def downgrade() -> None:
    with op.batch_alter_table("randomization_state") as batch:
        batch.add_column(sa.Column("block_list_json", sa.Text, nullable=False, server_default='{"strata":{}}'))
        batch.add_column(sa.Column("kit_list_json", sa.Text, nullable=False, server_default='{"kits":[]}'))
    connection = op.get_bind()
    for (trial_id,) in connection.execute(sa.select(STATES.c.trial_id)).all():
        strata: dict[str, list[dict]] = {}
        for row in connection.execute(sa.select(BLOCKS).where(BLOCKS.c.trial_id == trial_id)
                                      .order_by(BLOCKS.c.stratum, BLOCKS.c.position)).mappings():
            strata.setdefault(row["stratum"], []).append(
                {k: row[k] for k in ("position", "block", "block_size", "slot", "arm")})
        kits = [{k: row[k] for k in ("kit_number", "site", "arm", "block")}
                for row in connection.execute(sa.select(KITS).where(KITS.c.trial_id == trial_id)
                                              .order_by(KITS.c.position)).mappings()]
        connection.execute(STATES.update().where(STATES.c.trial_id == trial_id)
                           .values(block_list_json=_json({"strata": strata}), kit_list_json=_json({"kits": kits})))
    with op.batch_alter_table("randomization_state") as batch:  # as 0001 made them: no default
        batch.alter_column("block_list_json", existing_type=sa.Text, server_default=None)
        batch.alter_column("kit_list_json", existing_type=sa.Text, server_default=None)
    op.drop_index("ix_concealed_kits_next", table_name="concealed_kits")
    op.drop_table("concealed_kits")
    op.drop_table("concealed_block_entries")
