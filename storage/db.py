"""Engine set-up for SQLite (default, WAL) and PostgreSQL, and the one-transaction helper."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, SQLModel, create_engine

from storage import dashboard, models  # noqa: F401  (registers the tables)

if TYPE_CHECKING:
    from alembic.config import Config


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return _ping_when_idle(create_engine(url))

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


# A pooled connection back in use within this many seconds is not pinged first: in a burst of
# commands that ping was one round trip in thirteen, and a command whose connection died meanwhile
# runs again on a new one (bot/app.py). One idle longer (a restart is noticed after a quiet spell)
# is pinged, as pool_pre_ping did for every checkout.
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "duban_idle_since"  # the DBAPI connection's info: when it went back to the pool


def _ping_when_idle(engine: Engine) -> Engine:
    """pool_pre_ping for connections that sat in the pool: a dead one is replaced before use."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:
        since = record.info.pop(_IDLE_SINCE, None)  # None: a new connection, alive
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError from exc  # the pool drops it and checks out another

    return engine


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
# Alembic's own version table, as MigrationContext defines it (name, column, primary key name)
VERSION_TABLE = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                      PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
_REVISION = re.compile(r"^(down_revision|revision|depends_on)\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)


def alembic_config(connection: Connection) -> Config:
    """Alembic set up in code (no alembic.ini), to migrate `connection` in its current transaction."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The one head of the revision files, read as text: every start asks, and loading Alembic and
    its scripts to answer is most of the schema check's time. None when the files are not a plain chain
    (a merge, a dependency, two heads, a line not understood): then Alembic itself decides."""
    revisions, downs = set(), set()
    for path in versions.glob("*.py"):
        found = dict((key, value) for key, value in _REVISION.findall(path.read_text(encoding="utf-8")))
        quoted = {key: re.fullmatch(r"""(['"])([^'"]+)\1""", value) for key, value in found.items()}
        if not quoted.get("revision") or found.get("depends_on", "None") != "None":
            return None
        if found.get("down_revision", "None") != "None":
            if not quoted.get("down_revision"):
                return None
            downs.add(quoted["down_revision"].group(2))
        revisions.add(quoted["revision"].group(2))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 and downs <= revisions else None


def create_schema(engine: Engine) -> None:
    """Bring the database to the current schema: an old one is upgraded, a new one created.

    The usual start finds the database at the head revision, where an upgrade does nothing: that is
    told from the version table alone, without loading Alembic. A new database is created from the
    models and stamped at head in the same way. Anything else (an old revision, no version table, a
    revision this code does not know) goes through Alembic, which upgrades it or refuses."""
    with engine.begin() as conn:
        if is_postgres(engine):  # instances starting together on one database migrate one at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('duban schema'))"))
        tables = set(inspect(conn).get_table_names())
        head = head_revision()
        stamped = (conn.execute(VERSION_TABLE.select()).scalars().all()
                   if VERSION_TABLE.name in tables else [])
        if not tables - {VERSION_TABLE.name}:  # a version table alone holds no data (drop_all keeps it)
            # create_all is much faster than replaying every revision (tests make many databases)
            SQLModel.metadata.create_all(conn)
            if head and stamped in ([], [head]):  # what `alembic stamp head` writes, without Alembic
                VERSION_TABLE.create(conn, checkfirst=True)
                if not stamped:
                    conn.execute(VERSION_TABLE.insert().values(version_num=head))
                return
            from alembic import command

            command.stamp(alembic_config(conn), "head")
            return
        if head and stamped == [head]:
            return  # current: `alembic upgrade head` would do nothing
        from alembic import command

        config = alembic_config(conn)
        if VERSION_TABLE.name not in tables:
            # made by create_all before migrations existed: that schema is the first revision
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


@contextmanager
def transaction(bind: Engine | Connection) -> Iterator[Session]:
    """One unit of work: everything inside commits together, or nothing does. On a connection
    already in a transaction (commands sharing one commit, bot/app.py) it is a SAVEPOINT of it:
    a failure rolls back this unit alone, and its rows become durable with the shared commit."""
    with Session(bind, expire_on_commit=False, join_transaction_mode="create_savepoint") as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
