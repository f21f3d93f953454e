"""stored polygon GeoJSON, the feed and window indexes

Turfs and precincts keep their shape as snapped GeoJSON text beside the WKB (progress maps and walk lists embed it
instead of converting every polygon on every read); the results feed pages a campaign's knocks by sequence; progress
over a time window reads only the window index, which now holds every column it counts.

Revision ID: c4186cd88492
Revises: dd5c03c56544
Create Date: 2026-12-01 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db  # noqa: F401  (the column types migrations name)
from alembic import op
from app.geo.geojson import geometries

revision: str = 'c4186cd88492'
down_revision: str | None = 'dd5c03c56544'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows converted a statement at a time: a city's turfs and precincts, whatever their number, in bounded memory.
CHUNK = 1000


def _fill(table: str) -> None:
    """Write every row's GeoJSON text from its WKB."""
    connection = op.get_bind()
    rows = sa.table(table, sa.column("id", sa.Integer), sa.column("geometry", sa.LargeBinary),
                    sa.column("geojson", sa.Text))
    after = 0
    while True:
        chunk = connection.execute(sa.select(rows.c.id, rows.c.geometry).where(rows.c.id > after)
                                   .order_by(rows.c.id).limit(CHUNK)).all()
        if not chunk:
            return
        texts = geometries([r.geometry for r in chunk])
        connection.execute(rows.update().where(rows.c.id == sa.bindparam("row_id"))
                           .values(geojson=sa.bindparam("text")),
                           [{"row_id": r.id, "text": t} for r, t in zip(chunk, texts, strict=True)])
        after = chunk[-1].id


def upgrade() -> None:
    for table in ('turf', 'precinct'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('geojson', sa.Text(), nullable=True))
        _fill(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('geojson', existing_type=sa.Text(), nullable=False)
    with op.batch_alter_table('door_knock', schema=None) as batch_op:
        batch_op.create_index('ix_door_knock_campaign_seq', ['campaign_id', 'seq'], unique=False)
        batch_op.drop_index('ix_door_knock_campaign_corrected')
        batch_op.create_index('ix_door_knock_window', ['campaign_id', 'corrected_at', 'turf_id', 'precinct_id',
                                                       'household_id', 'result', 'contacted'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('door_knock', schema=None) as batch_op:
        batch_op.drop_index('ix_door_knock_window')
        batch_op.create_index('ix_door_knock_campaign_corrected', ['campaign_id', 'corrected_at'], unique=False)
        batch_op.drop_index('ix_door_knock_campaign_seq')
    for table in ('precinct', 'turf'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('geojson')
