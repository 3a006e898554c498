"""Small lookups shared by handlers, the engine and reports (plain functions, keyword session)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ARRAY, ColumnElement, Integer, any_, bindparam, delete
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.models import (
    COLOURS,
    ChatGroup,
    Notice,
    NoticeKind,
    NoticeStatus,
    Person,
    ProcessedMessage,
    Role,
    Task,
    Unit,
    highest_colour,
)


def among(column: ColumnElement[int], ids: Sequence[int], postgres: bool) -> ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL `column = ANY(ids)`, the ids one array parameter: psycopg
    converts a statement's placeholders in Python, anew for every long statement, and an IN list of
    a batch's 500 ids took milliseconds to send for a query that finds nothing."""
    if postgres:
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    return column.in_(ids)


def person(session: Session, user_id: str) -> Person | None:
    """Anyone the bot has known, on the roster or not: for names in history, never for powers."""
    return _get(session, Person, _PERSON, user_id)


def member(session: Session, user_id: str) -> Person | None:
    """The sender as the bot sees them: on the current roster, or nobody (a stranger)."""
    found = _get(session, Person, _PERSON, user_id)
    return found if found is not None and found.active else None


def unit(session: Session, unit_id: int) -> Unit | None:
    return _get(session, Unit, _UNIT, unit_id)


def first_with_role(session: Session, role: Role) -> Person | None:
    return session.exec(select(Person).where(Person.role == role, Person.active)
                        .order_by(Person.user_id)).first()


def people_with_role(session: Session, role: Role) -> list[Person]:
    return list(session.exec(select(Person).where(Person.role == role, Person.active).order_by(Person.user_id)))


def unit_head(session: Session, unit: Unit) -> Person | None:
    return session.get(Person, unit.head_user_id) if unit.head_user_id else None  # none once the unit left


def active_units(session: Session) -> list[Unit]:
    return list(session.exec(select(Unit).where(Unit.active).order_by(Unit.id)))


def group(session: Session, key: str) -> ChatGroup | None:
    return session.get(ChatGroup, key)


def task_by_code(session: Session, code: str, *, lock: bool = False) -> Task | None:
    return session.exec(_BY_CODE_LOCKED if lock else _BY_CODE, params={"code": code.upper()}).first()


def lock_task(session: Session, task_id: int) -> Task:
    """The task, its row locked until the transaction ends and its columns read afresh."""
    return session.exec(locked(select(Task).where(Task.id == task_id))).one()


def locked(query: SelectOfScalar[Task]) -> SelectOfScalar[Task]:
    """`query` as the first step of a command that changes a task: SELECT … FOR UPDATE on PostgreSQL,
    so a second command on the same task waits for the first to commit and then sees its result
    (READ COMMITTED reads the newest row once the lock is granted). SQLite renders no FOR UPDATE:
    BEGIN IMMEDIATE (storage.db) already serialises its writers. populate_existing overwrites an
    object the session loaded before the lock, which would otherwise keep its stale values."""
    return query.with_for_update().execution_options(populate_existing=True)


# every command that names a task starts here: the statements are built once
_PERSON = select(Person).where(Person.user_id == bindparam("key"))
_UNIT = select(Unit).where(Unit.id == bindparam("key"))
_BY_CODE = select(Task).where(Task.code == bindparam("code"))
_BY_CODE_LOCKED = locked(_BY_CODE)


def _get(session: Session, model: type, statement: SelectOfScalar, key: object) -> object | None:
    """session.get(model, key), which builds a new SELECT each time the session does not hold the
    row (settling a task reads its unit, a notice its unit head): here that SELECT is prebuilt."""
    if identity_key(model, key) in session.identity_map:
        return session.get(model, key)  # held: no SQL (and an expired row is refreshed)
    return session.exec(statement, params={"key": key}).first()


def task_conversation(session: Session, task: Task) -> str:
    """Where a task's group-wide messages go: the group it was assigned in, else the all-units group."""
    if task.conversation_id:
        return task.conversation_id
    fallback = group(session, "all_units")
    return fallback.conversation_id if fallback else ""


def forget_processed(session: Session, before: datetime) -> int:
    """Drop msgIds older than `before`: DingTalk redelivers within minutes, so a month is plenty."""
    return session.exec(delete(ProcessedMessage).where(ProcessedMessage.at < before)).rowcount


def task_colour(session: Session, task_id: int) -> NoticeKind | None:
    """The highest colour the task has received (extensions do not wash it off)."""
    return highest_colour(session.exec(select(Notice.kind).where(
        Notice.task_id == task_id, Notice.status == NoticeStatus.ISSUED, Notice.kind.in_(COLOURS))))
