"""Roster standing: people and units that left the roster are kept (tasks and history point at
them) but marked inactive, so they lose every power at once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # everyone already in the database was on the roster that wrote them: they start active
    # plain ALTER TABLE (no batch copy: SQLite refuses to drop a table that foreign keys point at)
    for table in ('person', 'unit'):
        op.add_column(table, sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite ≥ 3.35, PostgreSQL): Alembic on SQLite would copy the table and drop
    # the original, which the foreign keys pointing at person and unit refuse
    for table in ('unit', 'person'):
        op.execute(f'ALTER TABLE {table} DROP COLUMN active')
