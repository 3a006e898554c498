"""The storage tests' empty database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from storage.db import make_engine


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An empty database: db_url drops the models' tables, and here the version table goes too."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    yield engine
    engine.dispose()
