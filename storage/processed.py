"""The msgId guard on every command's hot path, in SQLAlchemy Core: a primary-key read before the
command runs and one INSERT … ON CONFLICT DO NOTHING RETURNING in its transaction (SQLite ≥ 3.35
and PostgreSQL both run it) instead of loading and flushing ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Insert, bindparam, select, update
from sqlmodel import Session

from storage.dialects import dialect_of
from storage.models import ProcessedMessage

TABLE = ProcessedMessage.__table__
# built once: constructing a statement costs more than running it on SQLite
_PROCESSED = select(TABLE.c.replies, TABLE.c.replied_at).where(TABLE.c.msg_id == bindparam("msg_id"))
_MARK = (update(TABLE).where(TABLE.c.msg_id.in_(bindparam("msg_ids", expanding=True)), TABLE.c.replied_at.is_(None))
         .values(replied_at=bindparam("replied")))


@dataclass(frozen=True)
class Processed:
    msg_id: str
    replies: list[dict] | None  # None: a row from before replies were kept, which counts as answered
    replied_at: datetime | None


def processed(session: Session, msg_id: str) -> Processed | None:
    """The message already acted on, with its stored replies; None if it never was."""
    row = session.execute(_PROCESSED, {"msg_id": msg_id}).first()
    return None if row is None else Processed(msg_id, row.replies, row.replied_at)


def record(session: Session, msg_id: str, at: datetime, replies: list[dict]) -> bool:
    """Record `msg_id` as acted on, in the command's transaction. False if it already was: another
    instance committed the same message meanwhile (on PostgreSQL the INSERT waits for that
    instance's transaction, then finds its row), and this transaction must roll back."""
    statement = _record(session.get_bind().dialect.name)
    return session.execute(statement, {"msg_id": msg_id, "at": at, "replies": replies}).first() is not None


@cache
def _record(dialect: str) -> Insert:
    """Built once per dialect, on first use: only the database's own dialect module is loaded."""
    return (dialect_of(dialect).insert(TABLE).on_conflict_do_nothing(index_elements=[TABLE.c.msg_id])
            .returning(TABLE.c.msg_id))


def mark_replied(session: Session, msg_ids: list[str], at: datetime) -> None:
    """Their replies went out: a redelivery of them now answers nothing."""
    session.execute(_MARK, {"msg_ids": msg_ids, "replied": at})
