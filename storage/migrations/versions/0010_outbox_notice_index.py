"""An index on outbox.notice_id: the 台账, 查询 and the dashboard's 单位 page read which messages carried
a task's colour notices and who read them (reminders/ledger.py), and a year's outbox, nearly all of
it sent, has tens of thousands of rows to search otherwise.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f('ix_outbox_notice_id'), 'outbox', ['notice_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_outbox_notice_id'), table_name='outbox')
