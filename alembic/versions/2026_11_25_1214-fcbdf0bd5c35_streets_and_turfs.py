"""streets and turfs

Revision ID: fcbdf0bd5c35
Revises: c9261692d988
Create Date: 2026-11-25 12:14:37.006421
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = 'fcbdf0bd5c35'
down_revision: str | None = 'c9261692d988'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('street',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('from_node', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('to_node', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('l_from', sa.Integer(), nullable=True),
    sa.Column('l_to', sa.Integer(), nullable=True),
    sa.Column('r_from', sa.Integer(), nullable=True),
    sa.Column('r_to', sa.Integer(), nullable=True),
    sa.Column('direction', sa.Integer(), nullable=False),
    sa.Column('length_m', sa.Float(), nullable=False),
    sa.Column('geometry', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_street_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_street')),
    sa.UniqueConstraint('campaign_id', 'external_id', name=op.f('uq_street_campaign_id_external_id'))
    )
    op.create_table('turf_cut',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('target_doors', sa.Integer(), nullable=False),
    sa.Column('precincts', sa.Text(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('precincts_total', sa.Integer(), nullable=False),
    sa.Column('precincts_done', sa.Integer(), nullable=False),
    sa.Column('turfs_made', sa.Integer(), nullable=False),
    sa.Column('report', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_turf_cut_state')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_turf_cut_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turf_cut'))
    )
    with op.batch_alter_table('turf_cut', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_turf_cut_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('turf',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('precinct_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('cut_id', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('geometry', sa.LargeBinary(), nullable=False),
    sa.Column('min_lon', sa.Float(), nullable=False),
    sa.Column('min_lat', sa.Float(), nullable=False),
    sa.Column('max_lon', sa.Float(), nullable=False),
    sa.Column('max_lat', sa.Float(), nullable=False),
    sa.Column('doors', sa.Integer(), nullable=False),
    sa.Column('buildings', sa.Integer(), nullable=False),
    sa.Column('holders', sa.Integer(), nullable=False),
    sa.Column('knocks', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('archived_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("source IN ('drawn', 'cut')", name=op.f('ck_turf_source')),
    sa.CheckConstraint("status IN ('active', 'archived')", name=op.f('ck_turf_status')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_turf_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['cut_id'], ['turf_cut.id'], name=op.f('fk_turf_cut_id_turf_cut'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['precinct_id'], ['precinct.id'], name=op.f('fk_turf_precinct_id_precinct')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turf'))
    )
    with op.batch_alter_table('turf', schema=None) as batch_op:
        batch_op.create_index('ix_turf_campaign_status_precinct', ['campaign_id', 'status', 'precinct_id'], unique=False)

    with op.batch_alter_table('building', schema=None) as batch_op:
        batch_op.add_column(sa.Column('street_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('street_side', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('street_pos_m', sa.Float(), server_default=sa.text('0'), nullable=False))
        batch_op.create_index('ix_building_street_id', ['street_id'], unique=False,
                              postgresql_where=sa.text('street_id IS NOT NULL'),
                              sqlite_where=sa.text('street_id IS NOT NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_building_street_id_street'), 'street', ['street_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.add_column(sa.Column('turf_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_household_turf_id', ['turf_id'], unique=False,
                              postgresql_where=sa.text('turf_id IS NOT NULL'), sqlite_where=sa.text('turf_id IS NOT NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_household_turf_id_turf'), 'turf', ['turf_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_household_turf_id_turf'), type_='foreignkey')
        batch_op.drop_index('ix_household_turf_id')
        batch_op.drop_column('turf_id')

    with op.batch_alter_table('building', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_building_street_id_street'), type_='foreignkey')
        batch_op.drop_index('ix_building_street_id')
        batch_op.drop_column('street_pos_m')
        batch_op.drop_column('street_side')
        batch_op.drop_column('street_id')

    with op.batch_alter_table('turf', schema=None) as batch_op:
        batch_op.drop_index('ix_turf_campaign_status_precinct')

    op.drop_table('turf')
    with op.batch_alter_table('turf_cut', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_turf_cut_campaign_id'))

    op.drop_table('turf_cut')
    op.drop_table('street')
