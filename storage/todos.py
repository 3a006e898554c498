"""Each task's DingTalk 待办 as rows: what each person's should be (from the task and the roster) and
what was last synced (TodoLink, one per task and owner). bot/todo_job.py makes the calls; this
module only reads and records.

Who holds a task's 待办 follows from the data, not from events: the lead unit's head, and its
liaisons when that setting is on. So 改派 to another unit, or a roster that names a new head, moves
it by itself: the next round closes the old holder's (done, its subject saying who has it now)
and gives the new one theirs — created once, found again by its sourceId if a create's answer was
lost. One who gets the task back has their old 待办 reopened, not a second one.

A holder ticking the 待办 done is a request to report done, never a close ("任务不落实不销号"):
`ticked` sends them one prompt to 办结, in the transaction that records the tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from message_templates.render import render
from message_templates.reply import Action
from storage.db import transaction
from storage.models import OPEN_STATUSES, Person, Role, Task, TaskStatus, TodoLink, Unit
from storage.outbox import enqueue

CHECK_EVERY = timedelta(hours=6)  # how often an open task's 待办 is looked at for a tick


@dataclass(frozen=True)
class Want:
    """What one person's 待办 for a task should be now, and what was last synced (`link`, None
    before the first). `holds`: the person holds the task now; `done`: the 待办 should be done
    (the task is over, or it moved to someone else)."""

    task_id: int
    code: str
    subject: str | None  # what it should say now (None: whatever it says)
    created_subject: str  # what it said when made: the subject of a link synced before subjects were kept
    due: datetime
    holds: bool
    done: bool
    user_id: str
    union_id: str | None
    link: TodoLink | None


def holders(session: Session, task: Task, liaisons: bool) -> list[Person]:
    """Who holds `task`'s 待办: its lead unit's head, then (if so set) its liaisons."""
    unit = session.get(Unit, task.lead_unit_id)
    if unit is None or not unit.active:
        return []
    head = session.get(Person, unit.head_user_id) if unit.head_user_id else None
    people = [head] if head is not None and head.active else []
    if liaisons:
        people += session.exec(select(Person).where(Person.unit_id == unit.id, Person.role == Role.LIAISON,
                                                    Person.active.is_(True)).order_by(Person.user_id))
    return people


def wanted(engine: Engine, liaisons: bool = False) -> list[Want]:
    """Every 待办 that should exist or change: open tasks' holders, and links not yet done."""
    with Session(engine) as session:
        links: dict[int, list[TodoLink]] = {}
        for link in session.exec(select(TodoLink).order_by(TodoLink.task_id, TodoLink.union_id)):
            links.setdefault(link.task_id, []).append(link)
        open_ids = set(session.exec(select(Task.id).where(Task.status.in_(OPEN_STATUSES))))
        undone = {task_id for task_id, rows in links.items() if any(not r.synced_done for r in rows)}
        out: list[Want] = []
        for task in session.exec(select(Task).where(Task.id.in_(open_ids | undone)).order_by(Task.id)):
            out += _wants(session, task, links.get(task.id or 0, []), liaisons)
        return out


def _wants(session: Session, task: Task, links: Iterable[TodoLink], liaisons: bool) -> list[Want]:
    unit = session.get(Unit, task.lead_unit_id)
    is_open = task.status in OPEN_STATUSES
    people = holders(session, task, liaisons) if is_open else []
    title = render("todo_subject", task=task, unit=unit).text
    moved = render("todo_moved_subject", task=task, unit=unit, holder=people[0] if people else None).text
    links = list(links)
    out = []
    for person in people:
        link = next((r for r in links if r.user_id == person.user_id or r.union_id == person.union_id), None)
        out.append(Want(task_id=task.id or 0, code=task.code, subject=title, created_subject=title,
                        due=task.deadline, holds=True, done=False, user_id=person.user_id,
                        union_id=link.union_id if link else person.union_id, link=link))
    held = {w.link.union_id for w in out if w.link}
    for link in links:  # the 待办 of people who no longer hold it, or of a task that is over
        # a task over, or one nobody holds now (its unit left the roster): done, its subject left as it is
        subject = moved if people else None
        if link.union_id in held or link.synced_done and subject in (None, link.synced_subject or title):
            continue
        out.append(Want(task_id=task.id or 0, code=task.code, subject=subject, created_subject=title,
                        due=task.deadline, holds=False, done=True, user_id=link.user_id, union_id=link.union_id,
                        link=link))
    return out


def keep_union_id(engine: Engine, user_id: str, union_id: str) -> None:
    with transaction(engine) as session:
        person = session.get(Person, user_id)
        if person is not None:
            person.union_id = union_id
            session.add(person)


def save(engine: Engine, task_id: int, union_id: str, user_id: str, now: datetime, **synced: object) -> None:
    """Record what DingTalk now holds for this person's 待办 of the task (the first call makes the row)."""
    with transaction(engine) as session:
        link = session.get(TodoLink, (task_id, union_id)) or TodoLink(
            task_id=task_id, union_id=union_id, user_id=user_id, next_check_at=now)
        for name, value in synced.items():
            setattr(link, name, value)
        session.add(link)


def ticked(engine: Engine, task_id: int, union_id: str, now: datetime) -> bool:
    """The owner ticked the 待办 done: prompt them once to report done; the task stays as it is."""
    with transaction(engine) as session:
        link, task = session.get(TodoLink, (task_id, union_id)), session.get(Task, task_id)
        if link is None or task is None or link.ticked_at is not None:
            return False
        link.ticked_at = now
        session.add(link)
        if task.status not in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS):
            return False  # already reported done (or over): nothing to ask
        owner = session.get(Person, link.user_id) if link.user_id else None
        owner = owner or session.exec(select(Person).where(Person.union_id == link.union_id)).first()
        if owner is None:
            return False
        reply = render("todo_ticked", task=task, actions=(Action("办结", f"办结 {task.code} "),))
        enqueue(session, reply, target="user", recipient=owner.user_id, deliver_after=now, now=now, task_id=task.id)
        return True
