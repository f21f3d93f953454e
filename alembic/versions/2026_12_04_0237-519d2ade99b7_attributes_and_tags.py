"""attributes and tags

The columns of voter and address files a campaign keeps on purpose (declared attributes, their typed values per
person or household) and activist tags on people.

Revision ID: 519d2ade99b7
Revises: 3b7e2f1c9a45
Create Date: 2026-12-04 02:37:20.327871
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = '519d2ade99b7'
down_revision: str | None = '3b7e2f1c9a45'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('attribute',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('applies_to', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('canvassers_see', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_attribute_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attribute')),
    sa.UniqueConstraint('campaign_id', 'name', name=op.f('uq_attribute_campaign_id_name'))
    )
    op.create_table('tag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_tag_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag')),
    sa.UniqueConstraint('campaign_id', 'name', name=op.f('uq_tag_campaign_id_name'))
    )
    op.create_table('attribute_value',
    sa.Column('attribute_id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Float(), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.ForeignKeyConstraint(['attribute_id'], ['attribute.id'], name=op.f('fk_attribute_value_attribute_id_attribute'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attribute_id', 'subject_id', name=op.f('pk_attribute_value'))
    )
    with op.batch_alter_table('attribute_value', schema=None) as batch_op:
        batch_op.create_index('ix_attribute_value_number', ['attribute_id', 'number'], unique=False)
        batch_op.create_index('ix_attribute_value_subject', ['subject_id'], unique=False)
        batch_op.create_index('ix_attribute_value_text', ['attribute_id', 'text'], unique=False)

    op.create_table('person_tag',
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_person_tag_person_id_person'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tag.id'], name=op.f('fk_person_tag_tag_id_tag'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tag_id', 'person_id', name=op.f('pk_person_tag'))
    )
    with op.batch_alter_table('person_tag', schema=None) as batch_op:
        batch_op.create_index('ix_person_tag_person', ['person_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('person_tag', schema=None) as batch_op:
        batch_op.drop_index('ix_person_tag_person')

    op.drop_table('person_tag')
    with op.batch_alter_table('attribute_value', schema=None) as batch_op:
        batch_op.drop_index('ix_attribute_value_text')
        batch_op.drop_index('ix_attribute_value_subject')
        batch_op.drop_index('ix_attribute_value_number')

    op.drop_table('attribute_value')
    op.drop_table('tag')
    op.drop_table('attribute')
