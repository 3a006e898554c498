"""The schema check every start makes: at head it is a read of the version table, without Alembic;
whatever else it finds goes through Alembic exactly as before."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from storage.db import VERSION_TABLE, alembic_config, create_schema, head_revision, make_engine

REPO = Path(__file__).resolve().parents[2]


def alembic_head() -> str:
    with make_engine("sqlite://").connect() as conn:
        return ScriptDirectory.from_config(alembic_config(conn)).get_current_head()


def stamped(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(MigrationContext.configure(conn).get_current_heads())


def test_the_head_read_from_the_files_is_alembics():
    assert head_revision() == alembic_head()


def write_revisions(folder: Path, *lines: str) -> Path:
    folder.mkdir()
    for number, line in enumerate(lines, 1):
        (folder / f"{number:04}_x.py").write_text(line.replace("; ", "\n") + "\n")
    return folder


def test_anything_but_a_plain_chain_is_left_to_alembic(tmp_path):
    first = "revision: str = '0001'; down_revision: str | None = None; depends_on = None"
    assert head_revision(write_revisions(tmp_path / "chain", first, "revision = '0002'; down_revision = '0001'")) == "0002"
    assert head_revision(write_revisions(tmp_path / "two_heads", first, "revision = '0002'; down_revision = '0001'",
                                         "revision = '0003'; down_revision = '0001'")) is None
    assert head_revision(write_revisions(tmp_path / "merge", first, "revision = '0002'; down_revision = '0001'",
                                         "revision = '0003'; down_revision = ('0001', '0002')")) is None
    assert head_revision(write_revisions(tmp_path / "depends", first,
                                         "revision = '0002'; down_revision = '0001'; depends_on = '0001'")) is None
    assert head_revision(write_revisions(tmp_path / "unknown_parent", "revision = '0002'; down_revision = '0001'")) is None
    assert head_revision(write_revisions(tmp_path / "empty")) is None


def version_table_shape(conn) -> tuple:
    found = inspect(conn)
    return ([(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns("alembic_version")],
            found.get_pk_constraint("alembic_version"))


def test_a_new_database_gets_alembics_own_version_table(engine):
    create_schema(engine)
    assert stamped(engine) == [alembic_head()]
    with engine.begin() as conn:
        ours = version_table_shape(conn)
        conn.execute(text("DROP TABLE alembic_version"))
        command.stamp(alembic_config(conn), "head")  # the table `alembic stamp` makes
        assert version_table_shape(conn) == ours
        command.downgrade(alembic_config(conn), "base")  # and Alembic can take it from there
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


def test_a_database_at_head_is_checked_without_loading_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'duban.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    check = textwrap.dedent(f"""
        import sys
        from storage.db import create_schema, make_engine
        create_schema(make_engine({url!r}))
        print(sorted(m for m in sys.modules if m.split(".")[0] == "alembic"))
    """)
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.stdout.strip() == "[]"


def test_a_revision_this_code_does_not_know_is_refused_as_before(engine):
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(VERSION_TABLE.update().values(version_num="9999"))
    with pytest.raises(CommandError, match="9999"):
        create_schema(engine)
    assert stamped(engine) == ["9999"]  # nothing written


def test_an_empty_database_stamped_elsewhere_is_left_to_alembic(engine):
    """Only a version table, at a revision that is not head: `alembic stamp head` decides, as before."""
    with engine.begin() as conn:
        VERSION_TABLE.create(conn)
        conn.execute(VERSION_TABLE.insert().values(version_num="9999"))
    with pytest.raises(CommandError, match="9999"):
        create_schema(engine)
