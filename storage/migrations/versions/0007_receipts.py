"""Proof that a notice was seen: the outbox keeps DingTalk's receipt key (processQueryKey or
openDingId) and whether a row is a DING; readwatch holds what the read-status job still asks
about, readreceipt the read times (never updated), undeliverable the people DingTalk refused; person.union_id and
todolink keep each task's DingTalk 待办.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('ding_remind_type', sa.Integer(), nullable=True))
    op.add_column('outbox', sa.Column('receipt_key', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_table('readwatch',
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sent_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('next_poll_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ),
    sa.PrimaryKeyConstraint('outbox_id')
    )
    op.create_index(op.f('ix_readwatch_done'), 'readwatch', ['done'], unique=False)
    op.create_table('readreceipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('read_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('exact', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('outbox_id', 'user_id', name='uq_readreceipt_outbox_user')
    )
    op.create_index(op.f('ix_readreceipt_outbox_id'), 'readreceipt', ['outbox_id'], unique=False)
    op.create_index(op.f('ix_readreceipt_notice_id'), 'readreceipt', ['notice_id'], unique=False)
    op.add_column('person', sa.Column('union_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_table('todolink',
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('union_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('todo_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('synced_due', storage.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('synced_done', sa.Boolean(), nullable=False),
    sa.Column('ticked_at', storage.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('next_check_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
    sa.PrimaryKeyConstraint('task_id')
    )
    op.create_table('undeliverable',
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('first_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('last_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )


def downgrade() -> None:
    op.drop_table('undeliverable')
    op.drop_table('todolink')
    op.drop_index(op.f('ix_readreceipt_notice_id'), table_name='readreceipt')
    op.drop_index(op.f('ix_readreceipt_outbox_id'), table_name='readreceipt')
    op.drop_table('readreceipt')
    op.drop_index(op.f('ix_readwatch_done'), table_name='readwatch')
    op.drop_table('readwatch')
    # plain ALTER TABLE (SQLite ≥ 3.35 drops columns; no batch copy of a table others point at)
    for column in ('receipt_key', 'ding_remind_type'):
        op.execute(f'ALTER TABLE outbox DROP COLUMN {column}')
    op.execute('ALTER TABLE person DROP COLUMN union_id')
