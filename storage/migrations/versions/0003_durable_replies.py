"""Durable replies: a processed message keeps its replies until they went out.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # both nullable: messages processed before this revision have no replies kept and count as answered
    with op.batch_alter_table('processedmessage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replies', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('replied_at', storage.types.AwareDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('processedmessage', schema=None) as batch_op:
        batch_op.drop_column('replied_at')
        batch_op.drop_column('replies')
