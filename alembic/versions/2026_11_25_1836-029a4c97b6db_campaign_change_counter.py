"""campaign change counter

Revision ID: 029a4c97b6db
Revises: 9fbe89e616d0
Create Date: 2026-11-25 18:36:58.258311
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db  # noqa: F401  (the column types migrations name)
from alembic import op

revision: str = '029a4c97b6db'
down_revision: str | None = '9fbe89e616d0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column('changes', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_column('changes')
