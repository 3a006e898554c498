"""The dialect module for INSERT … ON CONFLICT, imported by name when first asked for: SQLite's engine
has loaded sqlite already and PostgreSQL's postgresql, so neither database loads the other's
(sqlalchemy.dialects.postgresql is ~0.02 s of a SQLite bot's start)."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType


@cache
def dialect_of(name: str) -> ModuleType:
    """sqlalchemy.dialects.postgresql for "postgresql", sqlalchemy.dialects.sqlite for anything else
    (the two databases the bot runs on)."""
    return importlib.import_module(f"sqlalchemy.dialects.{'postgresql' if name == 'postgresql' else 'sqlite'}")
