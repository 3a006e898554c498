"""Alembic environment, configured in code (storage.db.alembic_config): no alembic.ini.

The caller passes the Connection to migrate in `config.attributes["connection"]`, already inside
the transaction it wants the migration to run in (create_schema holds one across the whole start).

A new revision, after changing storage/models.py (autogenerate compares the models with a
database at the previous head; here a throwaway in-memory one):
    python -c "from alembic import command; from storage.db import alembic_config, make_engine
    with make_engine('sqlite://').begin() as c:
        command.upgrade(alembic_config(c), 'head')
        command.revision(alembic_config(c), message='what changed', autogenerate=True, rev_id='0002')"
then read the generated file under versions/ and trim it; tests/storage/test_migrations.py checks the result.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from storage import dashboard, models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite cannot ALTER most things: generated revisions use batch operations, which rebuild the
    # table there (copy, drop, rename) and are plain ALTERs on PostgreSQL — one file runs on both
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
