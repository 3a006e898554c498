"""The msgId guard on every command's hot path, in SQLAlchemy Core: a primary-key read before the
command runs and one INSERT … ON CONFLICT DO NOTHING RETURNING in its transaction (SQLite ≥ 3.35
and PostgreSQL both run it) instead of loading and flushing ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Insert, bindparam, literal, select, update
from sqlmodel import Session

from storage.dialects import dialect_of
from storage.models import Person, ProcessedMessage, Unit

TABLE = ProcessedMessage.__table__
# built once: constructing a statement costs more than running it on SQLite
_PROCESSED = select(TABLE.c.replies, TABLE.c.replied_at).where(TABLE.c.msg_id == bindparam("msg_id"))
_MARK = (update(TABLE).where(TABLE.c.msg_id.in_(bindparam("msg_ids", expanding=True)), TABLE.c.replied_at.is_(None))
         .values(replied_at=bindparam("replied")))
# a command's first read in one round trip: its msgId's row, its sender and the sender's unit (a
# 进展 is most often about the sender's unit's task: settling it then finds the unit loaded). The
# one-row subquery keeps a row when neither the msgId nor the sender is found.
_FIRST = (select(TABLE.c.msg_id, TABLE.c.replies, TABLE.c.replied_at, Person, Unit)
          .select_from(select(literal(1).label("n")).subquery("one"))
          .outerjoin(TABLE, TABLE.c.msg_id == bindparam("msg_id"))
          .outerjoin(Person, Person.user_id == bindparam("user_id"))
          .outerjoin(Unit, Unit.id == Person.unit_id))
_SENDER_UNIT = "duban_sender_unit"  # session.info key


@dataclass(frozen=True)
class Processed:
    msg_id: str
    replies: list[dict] | None  # None: a row from before replies were kept, which counts as answered
    replied_at: datetime | None


def processed(session: Session, msg_id: str) -> Processed | None:
    """The message already acted on, with its stored replies; None if it never was."""
    row = session.execute(_PROCESSED, {"msg_id": msg_id}).first()
    return None if row is None else Processed(msg_id, row.replies, row.replied_at)


def processed_and_sender(session: Session, msg_id: str, user_id: str) -> tuple[Processed | None, Person | None]:
    """`processed(msg_id)` (None for no msgId) and the sender on the current roster (None: a stranger,
    as storage.queries.member), read together when the session holds nothing yet."""
    row = session.execute(_FIRST, {"msg_id": msg_id, "user_id": user_id}).one()
    session.info[_SENDER_UNIT] = row.Unit  # the identity map holds rows weakly: this one for the session
    done = Processed(msg_id, row.replies, row.replied_at) if msg_id and row.msg_id is not None else None
    sender = row.Person if row.Person is not None and row.Person.active else None
    return done, sender


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
