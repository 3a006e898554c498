"""Cards that stay current: after any change to a task (every change passes Escalation.settle), each
card shown about it gets its current state and only the buttons that still make sense, queued in
the same transaction as the change (storage/cards.py). A card already showing that state is left
alone, so a reconcile that changes nothing sends nothing, and the outbox folds a burst into one
update per card."""

from __future__ import annotations

from datetime import datetime

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
    drafts = {n.code: n for n in session.exec(select(Notice).where(Notice.task_id == task.id,
                                                                    Notice.kind.in_(COLOURS)))}
    keys = [f"t.{task.id}", f"r.{task.id}", f"x.{task.id}", *(f"n.{code}" for code in drafts)]
    shown = cards.shown(session, keys)
    if not shown:
        return 0
    facts = _facts(session, task, drafts.values())
    updated = 0
    for card in shown:
        kind, _, ref = card.key.partition(".")
        draft = drafts.get(ref)
        # 签发/暂缓 only for the draft's signer: a card left with a replaced signer loses them
        reply = _content(kind, task, facts, draft if draft and draft.signer_id == card.recipient else None, now,
                         drafts.get(ref))
        updated += cards.update(session, card, reply, now)
    return updated


def _facts(session: Session, task: Task, notices) -> dict[str, object]:
    # LIMIT 1, not just first(): an ORM query loads every row it matches, and a task's reports pile up
    notices = list(notices)
    progress = session.exec(select(ProgressReport).where(ProgressReport.task_id == task.id)
                            .order_by(ProgressReport.id.desc()).limit(1)).first()
    extension = session.exec(select(ExtensionRequest).where(ExtensionRequest.task_id == task.id)
                             .order_by(ExtensionRequest.id.desc()).limit(1)).first()
    ids = {task.assigner_id, progress and progress.author_id, extension and extension.requester_id,
           extension and extension.decided_by, *(n.signed_by for n in notices)} - {None}
    return {
        "task": task,
        "unit": session.get(Unit, task.lead_unit_id),
        "colour": highest_colour(n.kind for n in notices if n.status is NoticeStatus.ISSUED),
        "progress": progress,
        "extension": extension,
        "names": {p.user_id: p.name for p in session.exec(select(Person).where(Person.user_id.in_(ids)))},
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
