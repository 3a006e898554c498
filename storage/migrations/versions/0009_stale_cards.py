"""Cards rendered when they are sent, not when their task changes: stalecard, one row a task whose
cards may be out of date (reminders/card_updates.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stalecard',
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('since', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('fresh', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
    sa.PrimaryKeyConstraint('task_id'),
    )


def downgrade() -> None:
    op.drop_table('stalecard')
