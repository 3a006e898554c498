"""Small lookups shared by handlers, the engine and reports (plain functions, keyword session)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, select

from storage.models import ChatGroup, Person, ProcessedMessage, Role, Task, Unit


def person(session: Session, user_id: str) -> Person | None:
    """Anyone the bot has known, on the roster or not: for names in history, never for powers."""
    return session.get(Person, user_id)


def member(session: Session, user_id: str) -> Person | None:
    """The sender as the bot sees them: on the current roster, or nobody (a stranger)."""
    found = session.get(Person, user_id)
    return found if found is not None and found.active else None


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


def task_by_code(session: Session, code: str) -> Task | None:
    return session.exec(select(Task).where(Task.code == code.upper())).first()


def task_conversation(session: Session, task: Task) -> str:
    """Where a task's group-wide messages go: the group it was assigned in, else the all-units group."""
    if task.conversation_id:
        return task.conversation_id
    fallback = group(session, "all_units")
    return fallback.conversation_id if fallback else ""


def forget_processed(session: Session, before: datetime) -> int:
    """Drop msgIds older than `before`: DingTalk redelivers within minutes, so a month is plenty."""
    return session.exec(delete(ProcessedMessage).where(ProcessedMessage.at < before)).rowcount
