"""Interactive cards: which card an outbox row shows or updates (outbox.card_key, card_id,
card_update), and the questions a tapped button asked (pendingquestion).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('card_key', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('outbox', sa.Column('card_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('outbox', sa.Column('card_update', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(op.f('ix_outbox_card_key'), 'outbox', ['card_key'], unique=False)
    op.create_table(
        'pendingquestion',
        sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('conversation_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('command', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('asked_at', storage.types.AwareDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', 'conversation_id'),
    )


def downgrade() -> None:
    op.drop_table('pendingquestion')
    op.drop_index(op.f('ix_outbox_card_key'), table_name='outbox')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('card_update')
        batch.drop_column('card_id')
        batch.drop_column('card_key')
