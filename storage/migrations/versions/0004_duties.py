"""Duties from the other four documents: 布置落实 (task.deployed_at, deploy_plan), 每月报送
(task.monthly_report), 难以执行反馈 (the hardreport table), and the reminders they send (three
notice kinds).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ('ACK_REMINDER', 'COURTESY', 'REPORT_REMINDER', 'BLUE', 'YELLOW', 'RED', 'SIGN_REMINDER')
NEW_KINDS = ('DEPLOY_REMINDER', 'MONTH_REMINDER', 'HARD_REMINDER')


def upgrade() -> None:
    # plain ALTER TABLE (no batch copy: SQLite refuses to drop a table that foreign keys point at)
    op.add_column('task', sa.Column('monthly_report', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('task', sa.Column('deployed_at', storage.types.AwareDateTime(timezone=True), nullable=True))
    op.add_column('task', sa.Column('deploy_plan', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                    server_default=''))
    op.create_table('hardreport',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('reporter_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reported_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('answer_due_at', storage.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('answered_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('answered_at', storage.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('new_deadline', storage.types.AwareDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_hardreport_task_id'), 'hardreport', ['task_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for kind in NEW_KINDS:
            op.execute(f"ALTER TYPE noticekind ADD VALUE IF NOT EXISTS '{kind}'")
    # SQLite stores the kind as VARCHAR(15), the longest name then and now: nothing to widen


def downgrade() -> None:
    kinds = ", ".join(f"'{k}'" for k in NEW_KINDS)
    # compared as text: PostgreSQL refuses the new enum values in the transaction that added them
    op.execute(f"DELETE FROM outbox WHERE notice_id IN (SELECT id FROM notice WHERE CAST(kind AS VARCHAR) IN ({kinds}))")
    op.execute(f"DELETE FROM notice WHERE CAST(kind AS VARCHAR) IN ({kinds})")
    if op.get_bind().dialect.name == 'postgresql':
        # PostgreSQL cannot drop a value from an enum: make the type again without them
        op.execute("ALTER TYPE noticekind RENAME TO noticekind_old")
        sa.Enum(*OLD_KINDS, name='noticekind').create(op.get_bind())
        op.execute("ALTER TABLE notice ALTER COLUMN kind TYPE noticekind USING kind::text::noticekind")
        op.execute("DROP TYPE noticekind_old")
    op.drop_index(op.f('ix_hardreport_task_id'), table_name='hardreport')
    op.drop_table('hardreport')
    for column in ('deploy_plan', 'deployed_at', 'monthly_report'):
        op.execute(f'ALTER TABLE task DROP COLUMN {column}')
