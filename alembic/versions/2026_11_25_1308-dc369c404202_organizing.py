"""organizing

Revision ID: dc369c404202
Revises: fcbdf0bd5c35
Create Date: 2026-11-25 13:08:36.898511
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = 'dc369c404202'
down_revision: str | None = 'fcbdf0bd5c35'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Uuid(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('starts_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_event_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['host_id'], ['user_account.id'], name=op.f('fk_event_host_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_host_id'), ['host_id'], unique=False)

    op.create_table('join_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('revoked_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'organizer', 'host', 'canvasser')", name=op.f('ck_join_code_role')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_join_code_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_join_code_created_by_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_join_code_event_id_event'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_join_code')),
    sa.UniqueConstraint('code', name=op.f('uq_join_code_code'))
    )
    with op.batch_alter_table('join_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_join_code_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('event_attendee',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('joined_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('checked_in_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('turf_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_attendee_event_id_event'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['turf_id'], ['turf.id'], name=op.f('fk_event_attendee_turf_id_turf'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_event_attendee_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_attendee')),
    sa.UniqueConstraint('event_id', 'user_id', name=op.f('uq_event_attendee_event_id_user_id'))
    )
    with op.batch_alter_table('event_attendee', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_attendee_user_id'), ['user_id'], unique=False)

    op.create_table('event_turf',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('turf_id', sa.Integer(), nullable=False),
    sa.Column('checked_out_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_turf_event_id_event'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['turf_id'], ['turf.id'], name=op.f('fk_event_turf_turf_id_turf'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_turf')),
    sa.UniqueConstraint('event_id', 'turf_id', name=op.f('uq_event_turf_event_id_turf_id'))
    )
    with op.batch_alter_table('event_turf', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_turf_turf_id'), ['turf_id'], unique=False)

    op.create_table('turf_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('turf_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('by_user_id', sa.Uuid(), nullable=True),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('assigned', 'unassigned', 'claimed', 'released', 'lapsed', 'checked_out', 'returned')", name=op.f('ck_turf_history_action')),
    sa.ForeignKeyConstraint(['by_user_id'], ['user_account.id'], name=op.f('fk_turf_history_by_user_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_turf_history_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_turf_history_event_id_event'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['turf_id'], ['turf.id'], name=op.f('fk_turf_history_turf_id_turf')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_turf_history_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turf_history'))
    )
    with op.batch_alter_table('turf_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_turf_history_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index('ix_turf_history_turf_user_at', ['turf_id', 'user_id', 'at'], unique=False)

    op.create_table('turf_holding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('turf_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('since', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_activity_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("via IN ('assigned', 'claimed', 'event')", name=op.f('ck_turf_holding_via')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_turf_holding_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_turf_holding_event_id_event'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['turf_id'], ['turf.id'], name=op.f('fk_turf_holding_turf_id_turf'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_turf_holding_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turf_holding')),
    sa.UniqueConstraint('turf_id', 'user_id', name=op.f('uq_turf_holding_turf_id_user_id'))
    )
    with op.batch_alter_table('turf_holding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_turf_holding_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_turf_holding_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_lapse_hours', sa.Integer(), server_default='48', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_column('claim_lapse_hours')

    with op.batch_alter_table('turf_holding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_turf_holding_user_id'))
        batch_op.drop_index(batch_op.f('ix_turf_holding_campaign_id'))

    op.drop_table('turf_holding')
    with op.batch_alter_table('turf_history', schema=None) as batch_op:
        batch_op.drop_index('ix_turf_history_turf_user_at')
        batch_op.drop_index(batch_op.f('ix_turf_history_campaign_id'))

    op.drop_table('turf_history')
    with op.batch_alter_table('event_turf', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_turf_turf_id'))

    op.drop_table('event_turf')
    with op.batch_alter_table('event_attendee', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_attendee_user_id'))

    op.drop_table('event_attendee')
    with op.batch_alter_table('join_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_join_code_campaign_id'))

    op.drop_table('join_code')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_host_id'))
        batch_op.drop_index(batch_op.f('ix_event_campaign_id'))

    op.drop_table('event')
