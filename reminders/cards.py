"""Cards that stay current: after any change to a task (every change passes Escalation.settle), each
card shown about it gets its current state and only the buttons that still make sense, queued in
the same transaction as the change (storage/cards.py). A card already showing that state is left
alone, so a reconcile that changes nothing sends nothing, and the outbox folds a burst into one
update per card."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import Session, select

from message_templates.render import render
from message_templates.reply import Action, Reply
from storage import cards
from storage.models import (
    COLOURS,
    OPEN_STATUSES,
    ExtensionRequest,
    ExtensionStatus,
    Notice,
    NoticeStatus,
    Person,
    ProgressReport,
    Task,
    TaskStatus,
    Unit,
    highest_colour,
)


def refresh(session: Session, task: Task, now: datetime) -> int:
    """Queue an update for every card about `task` whose content changed; returns how many."""
    notices = session.exec(select(Notice).where(Notice.task_id == task.id, Notice.kind.in_(COLOURS)))
    drafts = {n.code: n for n in notices}
    keys = [f"t.{task.id}", f"r.{task.id}", f"x.{task.id}", *(f"n.{code}" for code in drafts)]
    shown = cards.shown(session, keys)
    if not shown:
        return 0
    facts = _facts(session, task, drafts.values())
    contents: dict[tuple[str, str, bool], Reply] = {}  # cards alike (a unit's head and liaison) render once
    changes = []
    for card in shown:
        kind, _, ref = card.key.partition(".")
        draft = drafts.get(ref)
        # 签发/暂缓 only for the draft's signer: a card left with a replaced signer loses them
        signable = draft if draft and draft.signer_id == card.recipient else None
        alike = (kind, ref, signable is not None)
        if alike not in contents:
            contents[alike] = _content(kind, task, facts, signable, now, draft)
        changes.append((card, contents[alike]))
    return cards.update(session, changes, now)


@dataclass(frozen=True)
class _Progress:
    author_id: str
    at: datetime
    text: str
    percent: int | None


@dataclass(frozen=True)
class _Extension:
    new_deadline: datetime
    status: ExtensionStatus
    decided_by: str | None


@dataclass(frozen=True)
class _Unit:
    name: str


_P, _E, _U = ProgressReport.__table__, ExtensionRequest.__table__, Unit.__table__
_ASSIGNER, _AUTHOR, _DECIDER = (Person.__table__.alias(name) for name in ("assigner", "author", "decider"))
_PEOPLE = Person.__table__


def _newest(table):  # the task's newest row: LIMIT 1 down the id, however many the task has
    return (select(table.c.id).where(table.c.task_id == bindparam("task")).order_by(table.c.id.desc()).limit(1)
            .scalar_subquery())


# what a card shows besides the task and its notices — its unit, newest progress report and extension
# request, and the names they mention — in one statement: this runs after every command
_FACTS = (select(_U.c.name, _P.c.author_id, _P.c.at, _P.c.text, _P.c.percent, _E.c.new_deadline,
                 _E.c.status, _E.c.decided_by, _ASSIGNER.c.name, _AUTHOR.c.name, _DECIDER.c.name)
          .select_from(_U.outerjoin(_P, _P.c.id == _newest(_P)).outerjoin(_E, _E.c.id == _newest(_E))
                       .outerjoin(_ASSIGNER, _ASSIGNER.c.user_id == bindparam("assigner"))
                       .outerjoin(_AUTHOR, _AUTHOR.c.user_id == _P.c.author_id)
                       .outerjoin(_DECIDER, _DECIDER.c.user_id == _E.c.decided_by))
          .where(_U.c.id == bindparam("unit")))
_NAMES = select(_PEOPLE.c.user_id, _PEOPLE.c.name).where(_PEOPLE.c.user_id.in_(bindparam("ids", expanding=True)))


def _facts(session: Session, task: Task, notices: Iterable[Notice]) -> dict[str, object]:
    notices = list(notices)
    row = session.execute(_FACTS, {"task": task.id, "unit": task.lead_unit_id, "assigner": task.assigner_id}).one()
    unit, author, at, text, percent, new_deadline, status, decided_by, assigner_name, author_name, decider_name = row
    names = {user_id: name for user_id, name in ((task.assigner_id, assigner_name), (author, author_name),
                                                 (decided_by, decider_name)) if name is not None}
    signers = {n.signed_by for n in notices} - {None} - names.keys()
    if signers:  # a signed 督办单: who signed it
        names.update((user_id, name) for user_id, name in session.execute(_NAMES, {"ids": list(signers)}))
    return {
        "task": task,
        "unit": _Unit(unit),
        "colour": highest_colour(n.kind for n in notices if n.status is NoticeStatus.ISSUED),
        # a report's `at` and a request's `new_deadline` are never NULL: None says there is none yet
        "progress": None if at is None else _Progress(author, at, text, percent),
        "extension": None if new_deadline is None else _Extension(new_deadline, status, decided_by),
        "names": names,
    }


def _content(kind: str, task: Task, facts: dict, signable: Notice | None, now: datetime,
             draft: Notice | None) -> Reply:
    code = task.code
    open_ = task.status in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS)
    actions: list[Action] = []
    if kind == "t" and open_:
        if task.status is TaskStatus.ASSIGNED:
            actions.append(Action("签收", f"签收 {code}"))
        actions.append(Action("汇报进展", f"进展 {code} "))
        extension = facts["extension"]
        if now < task.deadline and not (extension and extension.status is ExtensionStatus.PENDING):
            actions.append(Action("申请延期", f"延期 {code} "))  # 第八条: only within the deadline
        actions.append(Action("办结", f"办结 {code} "))
    elif kind == "r" and task.status is TaskStatus.REPORTED_DONE:
        actions += [Action("销号", f"销号 {code}"), Action("退回", f"退回 {code} ")]
    elif kind == "x" and open_ and facts["extension"] and facts["extension"].status is ExtensionStatus.PENDING:
        actions += [Action("同意", f"同意延期 {code}"), Action("驳回", f"驳回延期 {code} ")]
    elif kind == "n" and signable is not None and task.status in OPEN_STATUSES:
        if signable.status in (NoticeStatus.DRAFT, NoticeStatus.HELD):
            actions.append(Action("签发", f"签发 {signable.code}"))
        if signable.status is NoticeStatus.DRAFT:
            actions.append(Action("暂缓", f"暂缓 {signable.code} "))
    return render("card_draft" if kind == "n" else "card_task", actions=tuple(actions), draft=draft, now=now,
                  **facts)
