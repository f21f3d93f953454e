"""do not contact

Why a person or a door is on no list any more (the file said so, an organizer, a result at the door), and since
when.

Revision ID: db53d4faf9c3
Revises: 519d2ade99b7
Create Date: 2026-12-04 02:51:43.283022
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = 'db53d4faf9c3'
down_revision: str | None = '519d2ade99b7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.add_column(sa.Column('do_not_contact', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('do_not_contact_at', app.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('do_not_contact', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('do_not_contact_at', app.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('do_not_contact_at')
        batch_op.drop_column('do_not_contact')

    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_column('do_not_contact_at')
        batch_op.drop_column('do_not_contact')

