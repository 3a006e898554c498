"""Each task's DingTalk 待办 as rows: what it should be (from the task) and what was last synced
(TodoLink). bot/todo_job.py makes the calls; this module only reads and records.

A head ticking the 待办 done is a request to report done, never a close ("任务不落实不销号"):
`ticked` sends the head one prompt to 办结, in the transaction that records the tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from message_templates.render import render
from message_templates.reply import Action
from storage.db import transaction
from storage.models import OPEN_STATUSES, Person, Task, TaskStatus, TodoLink, Unit
from storage.outbox import enqueue

CHECK_EVERY = timedelta(hours=6)  # how often an open task's 待办 is looked at for a tick


@dataclass(frozen=True)
class Want:
    """What a task's 待办 should be now, and what was last synced (`link`, None before the first)."""

    task_id: int
    code: str
    subject: str
    due: datetime
    done: bool
    head_id: str
    union_id: str | None
    link: TodoLink | None


def wanted(engine: Engine) -> list[Want]:
    """Open tasks whose lead unit has a head, and tasks whose 待办 is not marked done yet."""
    with Session(engine) as session:
        links = {link.task_id: link for link in session.exec(select(TodoLink))}
        open_ids = set(session.exec(select(Task.id).where(Task.status.in_(OPEN_STATUSES))))
        undone = {task_id for task_id, link in links.items() if not link.synced_done}
        out = []
        for task in session.exec(select(Task).where(Task.id.in_(open_ids | undone)).order_by(Task.id)):
            unit = session.get(Unit, task.lead_unit_id)
            head = session.get(Person, unit.head_user_id) if unit and unit.head_user_id else None
            if head is None and task.id not in links:
                continue
            subject = render("todo_subject", task=task, unit=unit).text
            out.append(Want(task_id=task.id or 0, code=task.code, subject=subject, due=task.deadline,
                            done=task.status not in OPEN_STATUSES, head_id=head.user_id if head else "",
                            union_id=head.union_id if head else None, link=links.get(task.id or 0)))
        return out


def keep_union_id(engine: Engine, user_id: str, union_id: str) -> None:
    with transaction(engine) as session:
        person = session.get(Person, user_id)
        if person is not None:
            person.union_id = union_id
            session.add(person)


def save(engine: Engine, task_id: int, union_id: str, now: datetime, **synced: object) -> None:
    """Record what DingTalk now holds for the task's 待办 (the first call makes the row)."""
    with transaction(engine) as session:
        link = session.get(TodoLink, task_id) or TodoLink(task_id=task_id, union_id=union_id, next_check_at=now)
        for name, value in synced.items():
            setattr(link, name, value)
        session.add(link)


def ticked(engine: Engine, task_id: int, now: datetime) -> bool:
    """The head ticked the 待办 done: prompt them once to report done; the task stays as it is."""
    with transaction(engine) as session:
        link, task = session.get(TodoLink, task_id), session.get(Task, task_id)
        if link is None or task is None or link.ticked_at is not None:
            return False
        link.ticked_at = now
        session.add(link)
        if task.status not in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS):
            return False  # already reported done (or over): nothing to ask
        head = session.exec(select(Person).where(Person.union_id == link.union_id)).first()
        if head is None:
            return False
        reply = render("todo_ticked", task=task, actions=(Action("办结", f"办结 {task.code} "),))
        enqueue(session, reply, target="user", recipient=head.user_id, deliver_after=now, now=now, task_id=task.id)
        return True
