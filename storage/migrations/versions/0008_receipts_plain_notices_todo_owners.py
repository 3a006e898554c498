"""Colour notices as chat messages beside the cards (outbox.plain: DingTalk reports read status
for messages, never for cards), and a task's 待办 per person (todolink keyed by task and owner,
with the owner's userId and the subject last synced): liaisons' 待办, and one that moves to a new
head on 改派 or a roster change.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COPIED = 'task_id, union_id, todo_id, synced_due, synced_done, ticked_at, next_check_at'


def _todolink(name: str, *, per_owner: bool) -> None:
    owner = [sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''),
             sa.Column('synced_subject', sqlmodel.sql.sqltypes.AutoString(), nullable=True)] if per_owner else []
    op.create_table(name,
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('union_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    *owner,
    sa.Column('todo_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('synced_due', storage.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('synced_done', sa.Boolean(), nullable=False),
    sa.Column('ticked_at', storage.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('next_check_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
    sa.PrimaryKeyConstraint('task_id', 'union_id') if per_owner else sa.PrimaryKeyConstraint('task_id'),
    )


def upgrade() -> None:
    op.add_column('outbox', sa.Column('plain', sa.Boolean(), nullable=False, server_default=sa.false()))
    # a new primary key: a new table, the rows copied (nothing points at todolink)
    _todolink('todolink_new', per_owner=True)
    op.execute(f'INSERT INTO todolink_new ({_COPIED}, user_id) SELECT {_COPIED}, '
               "COALESCE((SELECT person.user_id FROM person WHERE person.union_id = todolink.union_id), '') "
               'FROM todolink')
    op.drop_table('todolink')
    op.rename_table('todolink_new', 'todolink')


def downgrade() -> None:
    _todolink('todolink_old', per_owner=False)
    # one row per task again, as the old key allows: one owner's
    op.execute(f'INSERT INTO todolink_old ({_COPIED}) SELECT {_COPIED} FROM todolink t '
               'WHERE t.union_id = (SELECT MIN(o.union_id) FROM todolink o WHERE o.task_id = t.task_id)')
    op.drop_table('todolink')
    op.rename_table('todolink_old', 'todolink')
    op.execute('ALTER TABLE outbox DROP COLUMN plain')
