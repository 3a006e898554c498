"""Dashboard sign-in: single-use links (看板) and the browser sessions they open.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('dashboardlink', 'dashboardsession'):
        columns = [
            sa.Column('token_hash', sa.String(length=64), nullable=False),
            sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column('created_at', storage.types.AwareDateTime(timezone=True), nullable=False),
            sa.Column('expires_at', storage.types.AwareDateTime(timezone=True), nullable=False),
        ]
        if table == 'dashboardlink':
            columns.append(sa.Column('used_at', storage.types.AwareDateTime(timezone=True), nullable=True))
        op.create_table(table, *columns, sa.ForeignKeyConstraint(['user_id'], ['person.user_id']),
                        sa.PrimaryKeyConstraint('token_hash'))
        op.create_index(op.f(f'ix_{table}_user_id'), table, ['user_id'], unique=False)
    op.create_index(op.f('ix_dashboardsession_expires_at'), 'dashboardsession', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_dashboardsession_expires_at'), table_name='dashboardsession')
    for table in ('dashboardsession', 'dashboardlink'):
        op.drop_index(op.f(f'ix_{table}_user_id'), table_name=table)
        op.drop_table(table)
