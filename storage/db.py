"""Engine set-up for SQLite (default, WAL) and PostgreSQL, and the one-transaction helper."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel, create_engine

from storage import dashboard, models  # noqa: F401  (registers the tables)


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)

    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        if ":memory:" not in url:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn) -> None:
        # Take the write lock up front: a deferred transaction that reads then writes can fail
        # at once with SQLITE_BUSY when another writer got in between, instead of waiting.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"


def alembic_config(connection: Connection) -> Config:
    """Alembic set up in code (no alembic.ini), to migrate `connection` in its current transaction."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def create_schema(engine: Engine) -> None:
    """Bring the database to the current schema: an old one is upgraded, a new one created."""
    with engine.begin() as conn:
        if is_postgres(engine):  # instances starting together on one database migrate one at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('duban schema'))"))
        config = alembic_config(conn)
        tables = set(inspect(conn).get_table_names())
        if not tables - {"alembic_version"}:  # a version table alone holds no data (drop_all keeps it)
            # create_all is much faster than replaying every revision (tests make many databases)
            SQLModel.metadata.create_all(conn)
            command.stamp(config, "head")
            return
        if "alembic_version" not in tables:
            # made by create_all before migrations existed: that schema is the first revision
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: everything inside commits together, or nothing does."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
