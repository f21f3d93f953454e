"""door_knocks_and_tallies: synced knocks, and the counters kept with them

Revision ID: 9fbe89e616d0
Revises: d6a5f065ab5d
Create Date: 2026-11-25 15:17:13.002787
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = '9fbe89e616d0'
down_revision: str | None = 'd6a5f065ab5d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('result_tally',
    sa.Column('turf_id', sa.Integer(), nullable=False),
    sa.Column('precinct_id', sa.Integer(), nullable=False),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('knocks', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_result_tally_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['precinct_id'], ['precinct.id'], name=op.f('fk_result_tally_precinct_id_precinct')),
    sa.ForeignKeyConstraint(['turf_id'], ['turf.id'], name=op.f('fk_result_tally_turf_id_turf')),
    sa.PrimaryKeyConstraint('turf_id', 'precinct_id', 'result', name=op.f('pk_result_tally'))
    )
    with op.batch_alter_table('result_tally', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_tally_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_tally_precinct_id'), ['precinct_id'], unique=False)

    op.create_table('door_knock',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('turf_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('precinct_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('script_version_id', sa.Integer(), nullable=True),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('contacted', sa.Boolean(), nullable=False),
    sa.Column('answers', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('knocked_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('clock_offset_s', sa.Float(), nullable=False),
    sa.Column('corrected_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('clock_suspect', sa.Boolean(), nullable=False),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_door_knock_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], name=op.f('fk_door_knock_household_id_household')),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_door_knock_person_id_person'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['precinct_id'], ['precinct.id'], name=op.f('fk_door_knock_precinct_id_precinct')),
    sa.ForeignKeyConstraint(['script_version_id'], ['script_version.id'], name=op.f('fk_door_knock_script_version_id_script_version')),
    sa.ForeignKeyConstraint(['turf_id'], ['turf.id'], name=op.f('fk_door_knock_turf_id_turf')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_door_knock_user_id_user_account')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_door_knock')),
    sa.UniqueConstraint('id', name=op.f('uq_door_knock_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('door_knock', schema=None) as batch_op:
        batch_op.create_index('ix_door_knock_campaign_corrected', ['campaign_id', 'corrected_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_door_knock_household_id'), ['household_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_door_knock_turf_id'), ['turf_id'], unique=False)

    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.add_column(sa.Column('knocks', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('first_knock_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('contacted_at', app.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('precinct', schema=None) as batch_op:
        batch_op.add_column(sa.Column('knocks', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('doors_attempted', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('doors_contacted', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_knock_at', app.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('turf', schema=None) as batch_op:
        batch_op.add_column(sa.Column('doors_attempted', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('doors_contacted', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_knock_at', app.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('walk_stop', schema=None) as batch_op:
        batch_op.add_column(sa.Column('knocks', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('contacted', sa.Boolean(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('walk_stop', schema=None) as batch_op:
        batch_op.drop_column('contacted')
        batch_op.drop_column('knocks')

    with op.batch_alter_table('turf', schema=None) as batch_op:
        batch_op.drop_column('last_knock_at')
        batch_op.drop_column('doors_contacted')
        batch_op.drop_column('doors_attempted')

    with op.batch_alter_table('precinct', schema=None) as batch_op:
        batch_op.drop_column('last_knock_at')
        batch_op.drop_column('doors_contacted')
        batch_op.drop_column('doors_attempted')
        batch_op.drop_column('knocks')

    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_column('contacted_at')
        batch_op.drop_column('first_knock_at')
        batch_op.drop_column('knocks')

    with op.batch_alter_table('door_knock', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_door_knock_turf_id'))
        batch_op.drop_index(batch_op.f('ix_door_knock_household_id'))
        batch_op.drop_index('ix_door_knock_campaign_corrected')

    op.drop_table('door_knock')
    with op.batch_alter_table('result_tally', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_tally_precinct_id'))
        batch_op.drop_index(batch_op.f('ix_result_tally_campaign_id'))

    op.drop_table('result_tally')
