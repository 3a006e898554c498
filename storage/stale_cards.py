"""Which tasks' cards may be out of date (StaleCard), in SQLAlchemy Core: a change notes its task,
the notes are written as its transaction commits (one upsert a task, however many changes), and
the sender takes them when it renders the cards (reminders/card_updates.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from storage.cards import NEW_CARDS
from storage.models import StaleCard

TABLE = StaleCard.__table__
NOTED = "duban_stale_cards"  # session.info key: task id → the cards its latest change made


@dataclass(frozen=True)
class Stale:
    task_id: int
    fresh: frozenset[str]


def note(session: Session, task_id: int, code: str, now: datetime) -> None:
    """This transaction changed the task: its cards are rendered after it commits."""
    session.info.setdefault(NOTED, {}).setdefault(task_id, (code, now))


@event.listens_for(OrmSession, "before_commit")
def _write(session: OrmSession) -> None:
    """The transaction's notes, in one statement, as it commits: then every card it made is known,
    and already says what it did (the cards made with a task, the drafts made with its notices).
    A task noted before keeps its place in the queue; its fresh cards become this change's (a card
    made before a later change must show that one)."""
    noted = session.info.pop(NOTED, None)
    if not noted:
        return
    made = session.info.get(NEW_CARDS, ())
    # one statement executed for many rows: compiled once and cached (a VALUES list of hundreds of
    # rows was compiled anew at every commit), and on PostgreSQL sent as one pipeline
    session.execute(_UPSERT[session.get_bind().dialect.name == "postgresql"], [
        {"task_id": task_id, "since": now, "fresh": sorted(c for c in made if _about(c, task_id, code))}
        for task_id, (code, now) in sorted(noted.items())])


def _upsert(dialect) -> Insert:
    statement = dialect.insert(TABLE)
    return statement.on_conflict_do_update(index_elements=[TABLE.c.task_id],
                                           set_={"fresh": statement.excluded.fresh})


_UPSERT = {True: _upsert(postgresql), False: _upsert(sqlite)}  # by "is it PostgreSQL"


def any_stale(session: Session) -> bool:
    return session.execute(select(TABLE.c.task_id).limit(1)).first() is not None


def take(session: Session, limit: int) -> list[Stale]:
    """Up to `limit` notes, the oldest first, removed in the caller's transaction (which renders
    them). On PostgreSQL notes another instance is taking are skipped, not waited for."""
    query = select(TABLE.c.task_id, TABLE.c.fresh).order_by(TABLE.c.since, TABLE.c.task_id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    if rows:
        session.execute(delete(TABLE).where(TABLE.c.task_id.in_([r.task_id for r in rows])))
    return [Stale(r.task_id, frozenset(r.fresh)) for r in rows]


def _about(card_id: str, task_id: int, code: str) -> bool:
    """Whether a card (duban.<key>.<random>, storage/cards.py) is about the task: t/r/x.<task id>, or
    n.<notice code>, a notice code being the task's code and a suffix (DB-2026-0042-Y1)."""
    _, kind, ref, *_ = (*card_id.split("."), "", "", "")
    return ref == str(task_id) if kind != "n" else ref.startswith(f"{code}-")
