"""Schema migrations on SQLite and PostgreSQL: the revisions build exactly the models' schema, and an
old database upgrades on start, keeping its data, with the bot carrying on where it stopped."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from bot.simulation import Simulation
from storage.db import FIRST_REVISION, alembic_config, create_schema, make_engine
from storage.models import Notice, NoticeKind, NoticeStatus, ScoreEvent, Task, TaskStatus
from storage.tz import shanghai as sh

LEADER, HEAD, DEPUTY = "u_xianzhang", "u_zhujian", "u_changwu"


def schema_diff(engine: Engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    with make_engine("sqlite://").connect() as conn:
        return ScriptDirectory.from_config(alembic_config(conn)).get_current_head()


def test_the_revisions_build_exactly_the_models_schema(engine):
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert schema_diff(engine, SQLModel.metadata) == []
    assert revision(engine) == head()


def test_a_model_change_without_a_migration_is_caught(engine):
    """The test above can fail: a column added to the models and not to a revision is a difference."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    changed = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["task"].append_column(Column("priority", Integer, nullable=True))
    diff = schema_diff(engine, changed)
    assert [(op[0], op[2], op[3].name) for op in diff] == [("add_column", "task", "priority")]


def test_downgrade_to_base_removes_everything(engine):
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        command.downgrade(alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_type WHERE typtype = 'e'")).scalar_one() == 0


def test_a_fresh_database_is_created_and_stamped_at_head(engine):
    create_schema(engine)
    assert revision(engine) == head()
    assert schema_diff(engine, SQLModel.metadata) == []


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per table, for the tables the schema has now (a later revision may add tables)."""
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {t.name: conn.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar_one()
                for t in SQLModel.metadata.sorted_tables if t.name in present}


@pytest.mark.parametrize("made_by", ["revision 0001", "create_all before migrations existed"])
def test_an_old_database_upgrades_on_start_and_the_bot_carries_on(engine, db_url, made_by):
    # Today's bot cannot write into the first schema (its models have columns added since), so the
    # data is written at head and the schema taken back to the first revision: what remains is what
    # a first-revision bot would have left (the later columns hold nothing it did not write).
    sim = Simulation(db_url, sh(2026, 11, 23, 9, 30))
    code = sim.say(LEADER, "交办 县住建局 燃气管道隐患排查 截止12月2日", group="cid_leaders")[0].title.split()[-1]
    assert "已签收" in sim.say(HEAD, f"签收 {code}")[0].title
    sim.run_until(sh(2026, 12, 3, 10))  # the blue is issued at D (2 December, 17:30)
    sim.engine.dispose()
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), FIRST_REVISION)
        if made_by.startswith("create_all"):  # such a database has the tables but no version table
            conn.execute(text("DROP TABLE alembic_version"))
    assert revision(engine) == (FIRST_REVISION if made_by.startswith("revision") else None)
    before = table_counts(engine)
    assert before["notice"] and before["scoreevent"] == 1

    sim.restart()  # what every start does: create_schema upgrades the database
    assert revision(engine) == head()
    after = table_counts(engine)
    assert {name: after[name] for name in before} == before
    assert not any(after[name] for name in set(after) - set(before))  # tables added since start empty
    assert schema_diff(engine, SQLModel.metadata) == []

    draft = sim.wait_for_draft(code, sh(2026, 12, 8, 10))  # day 5 after D: the yellow, for the 常务副县长
    assert "已签发" in sim.say(DEPUTY, f"签发 {draft}")[0].title
    with Session(sim.engine) as s:
        task = s.exec(select(Task).where(Task.code == code)).one()
        assert task.status is TaskStatus.IN_PROGRESS and task.acknowledged_at is not None
        issued = s.exec(select(Notice.kind).where(Notice.task_id == task.id, Notice.status == NoticeStatus.ISSUED))
        assert {NoticeKind.BLUE, NoticeKind.YELLOW} <= set(issued)
        assert sorted(e.points for e in s.exec(select(ScoreEvent))) == [-2, -1]
        assert task.next_check_at is not None  # the red's clock runs from the yellow's issue
    sim.engine.dispose()
