"""scripts_and_walk_lists: survey scripts, stored walking order, last results at doors

Revision ID: d6a5f065ab5d
Revises: dc369c404202
Create Date: 2026-11-25 14:39:24.015389
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = 'd6a5f065ab5d'
down_revision: str | None = 'dc369c404202'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('script',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('is_default', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_script_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_script')),
    sa.UniqueConstraint('campaign_id', 'name', name=op.f('uq_script_campaign_id_name'))
    )
    with op.batch_alter_table('script', schema=None) as batch_op:
        batch_op.create_index('uq_script_default', ['campaign_id'], unique=True, postgresql_where=sa.text('is_default'), sqlite_where=sa.text('is_default'))

    op.create_table('script_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('script_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('questions', sa.Text(), nullable=False),
    sa.Column('result_codes', sa.Text(), nullable=False),
    sa.Column('frozen', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_script_version_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['script_id'], ['script.id'], name=op.f('fk_script_version_script_id_script'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_script_version')),
    sa.UniqueConstraint('script_id', 'version', name=op.f('uq_script_version_script_id_version'))
    )
    with op.batch_alter_table('script_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_script_version_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('walk_stop',
    sa.Column('turf_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], name=op.f('fk_walk_stop_household_id_household'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['turf_id'], ['turf.id'], name=op.f('fk_walk_stop_turf_id_turf'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('turf_id', 'household_id', name=op.f('pk_walk_stop'))
    )
    with op.batch_alter_table('walk_stop', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_walk_stop_household_id'), ['household_id'], unique=False)

    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_result', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('last_result_at', app.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('precinct', schema=None) as batch_op:
        batch_op.add_column(sa.Column('script_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_precinct_script_id_script'), 'script', ['script_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('turf', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('route_m', sa.Float(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('route_version', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('script_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('script_version_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('script_since', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_turf_script_version_id_script_version'), 'script_version', ['script_version_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_turf_script_id_script'), 'script', ['script_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('turf', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_turf_script_id_script'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_turf_script_version_id_script_version'), type_='foreignkey')
        batch_op.drop_column('script_since')
        batch_op.drop_column('script_version_id')
        batch_op.drop_column('script_id')
        batch_op.drop_column('route_version')
        batch_op.drop_column('route_m')
        batch_op.drop_column('route')

    with op.batch_alter_table('precinct', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_precinct_script_id_script'), type_='foreignkey')
        batch_op.drop_column('script_id')

    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_column('last_result_at')
        batch_op.drop_column('last_result')

    with op.batch_alter_table('walk_stop', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_walk_stop_household_id'))

    op.drop_table('walk_stop')
    with op.batch_alter_table('script_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_script_version_campaign_id'))

    op.drop_table('script_version')
    with op.batch_alter_table('script', schema=None) as batch_op:
        batch_op.drop_index('uq_script_default', postgresql_where=sa.text('is_default'), sqlite_where=sa.text('is_default'))

    op.drop_table('script')
