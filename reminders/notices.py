"""What creating, issuing and voiding a notice does to the database: the notice row, its score
(第九条), its messages in the outbox, its audit event. Used by the engine and by 签发 / 暂缓."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, func, select

from message_templates.render import render
from message_templates.reply import Action
from reminders.ledger import notice_reads
from reminders.policy import Due, Policy
from reminders.rules import Rules
from storage import audit, queries
from storage.models import (
    COLOURS,
    OPEN_STATUSES,
    HardReport,
    Notice,
    NoticeKind,
    NoticeStatus,
    Outbox,
    OutboxStatus,
    Person,
    Role,
    ScoreEvent,
    Task,
    Unit,
)
from storage.outbox import enqueue
from storage.tz import SHANGHAI

LETTER = {
    NoticeKind.ACK_REMINDER: "A", NoticeKind.COURTESY: "C", NoticeKind.REPORT_REMINDER: "P",
    NoticeKind.BLUE: "B", NoticeKind.YELLOW: "Y", NoticeKind.RED: "R", NoticeKind.SIGN_REMINDER: "S",
    NoticeKind.DEPLOY_REMINDER: "D", NoticeKind.MONTH_REMINDER: "M", NoticeKind.HARD_REMINDER: "H",
}
SIGNER_ROLE = {NoticeKind.YELLOW: Role.EXECUTIVE_DEPUTY, NoticeKind.RED: Role.COUNTY_HEAD}


def score_for(kind: NoticeKind, rules: Rules) -> int:
    return {NoticeKind.BLUE: rules.score_blue, NoticeKind.YELLOW: rules.score_yellow,
            NoticeKind.RED: rules.score_red}.get(kind, 0)


def create(session: Session, task: Task, due: Due, now: datetime, policy: Policy) -> Notice:
    # the signer is whoever holds the role now; a roster change later moves the draft (move_drafts)
    signer = queries.first_with_role(session, SIGNER_ROLE[due.kind]) if due.draft else None
    notice = Notice(
        code=f"{task.code}-{LETTER[due.kind]}{due.seq}",
        task_id=task.id,
        kind=due.kind,
        seq=due.seq,
        cycle=due.cycle,
        ref_notice_id=due.ref_notice_id,
        status=NoticeStatus.DRAFT if due.draft else NoticeStatus.ISSUED,
        due_at=due.due_at,
        created_at=now,
        signer_id=signer.user_id if signer else None,
        deadline_at_issue=task.deadline,
    )
    session.add(notice)
    session.flush()  # the unique (task, kind, seq) check happens here, before anything else is written
    if due.draft:
        _send_draft(session, task, notice, now, policy)
        audit.record(session, at=now, actor=audit.SYSTEM, action="notice_drafted", task_id=task.id,
                     notice=notice.code, kind=notice.kind, signer=notice.signer_id)
    else:
        issue(session, task, notice, now, policy, signed_by=None)
    return notice


def issue(session: Session, task: Task, notice: Notice, now: datetime, policy: Policy,
          signed_by: str | None) -> None:
    notice.status, notice.issued_at, notice.signed_by = NoticeStatus.ISSUED, now, signed_by
    notice.deadline_at_issue = task.deadline
    session.add(notice)
    unit = session.get(Unit, task.lead_unit_id)
    points = score_for(notice.kind, policy.rules)
    if notice.kind in COLOURS:
        session.add(ScoreEvent(unit_id=unit.id, task_id=task.id, notice_id=notice.id, year=now.year,
                               points=points, at=now))
    audit.record(session, at=now, actor=signed_by or audit.SYSTEM, action="notice_issued", task_id=task.id,
                 notice=notice.code, kind=notice.kind, points=points)
    _deliver(session, task, notice, unit, now, policy)


def void(session: Session, task: Task, notice: Notice, now: datetime) -> None:
    notice.status = NoticeStatus.VOID
    session.add(notice)
    audit.record(session, at=now, actor=audit.SYSTEM, action="notice_void", task_id=task.id, notice=notice.code)


def reds_this_year(session: Session, unit_id: int, year: int) -> int:
    """Reds issued to the unit in the calendar year (第十条: 2 ⇒ 通报批评, 3 ⇒ 诫勉谈话)."""
    start, end = datetime(year, 1, 1, tzinfo=SHANGHAI), datetime(year + 1, 1, 1, tzinfo=SHANGHAI)
    query = (select(func.count()).select_from(Notice).join(Task, Task.id == Notice.task_id)
             .where(Task.lead_unit_id == unit_id, Notice.kind == NoticeKind.RED,
                    Notice.status == NoticeStatus.ISSUED, Notice.issued_at >= start, Notice.issued_at < end))
    return session.exec(query).one()


def _context(session: Session, task: Task, notice: Notice, unit: Unit, now: datetime, policy: Policy) -> dict:
    head = queries.unit_head(session, unit)
    signer = queries.person(session, notice.signed_by or notice.signer_id or "")
    return {
        "task": task, "notice": notice, "unit": unit, "head": head, "signer": signer, "now": now,
        "overdue_days": max((now.date() - task.deadline.date()).days, 0),
        "next_at": _next_step(task, notice, now, policy, sent_at=policy.send_time(now)),
        "points": score_for(notice.kind, policy.rules),
        "reds": reds_this_year(session, unit.id, now.year) if notice.kind is NoticeKind.RED else 0,
        "rules": policy.rules,
        "estimate": task.deadline_is_estimate,
        "unread_yellow": _unread_yellow(session, task, now) if notice.kind is NoticeKind.RED else [],
    }


def _unread_yellow(session: Session, task: Task, now: datetime) -> list[str]:
    """The names of those the task's latest yellow notice went to who have not read it."""
    yellow = next((r for r in notice_reads(session, task, now) if r["notice"].kind is NoticeKind.YELLOW), None)
    return [p["name"] for p in yellow["people"] if p["known"] and p["read_at"] is None] if yellow else []



def _next_step(task: Task, notice: Notice, now: datetime, policy: Policy, *, sent_at: datetime) -> datetime | None:
    """When the next colour would follow, as the notice tells the unit (SPEC §3); None when that
    moment is already past when the notice goes out (the bot was down): no notice names a past date."""
    step = _step(task, notice, now, policy)
    return step if step is None or step > sent_at else None


def _step(task: Task, notice: Notice, now: datetime, policy: Policy) -> datetime | None:
    rules = policy.rules
    if notice.kind in (NoticeKind.COURTESY, NoticeKind.ACK_REMINDER, NoticeKind.REPORT_REMINDER):
        return policy.send_time(task.deadline)
    if notice.kind is NoticeKind.BLUE:
        return policy.send_time(policy.after_days(task.deadline, rules.yellow_after_days))
    if notice.kind is NoticeKind.YELLOW:
        return policy.send_time(policy.after_days(notice.issued_at or now, rules.red_after_yellow_days))
    if notice.kind is NoticeKind.RED:
        return policy.send_time(policy.after_days(notice.issued_at or now, rules.red_repeat_days))
    return None


def task_actions(task: Task, at: datetime | None = None) -> tuple[Action, ...]:
    """The unit's actions on `task` for a message going out at `at`: no 签收 once acknowledged, no
    申请延期 from the deadline on (第八条: extensions are asked for within the deadline)."""
    actions = [Action("签收", f"签收 {task.code}")] if task.acknowledged_at is None else []
    actions.append(Action("汇报进展", f"进展 {task.code} "))
    if at is None or at < task.deadline:
        actions.append(Action("申请延期", f"延期 {task.code} "))
    return (*actions, Action("办结", f"办结 {task.code} "))


def _deliver(session: Session, task: Task, notice: Notice, unit: Unit, now: datetime, policy: Policy) -> None:
    ctx = _context(session, task, notice, unit, now, policy)
    at = policy.send_time(now)
    head = ctx["head"]
    if notice.kind is NoticeKind.COURTESY and at >= task.deadline:
        return  # a 临期提醒 that could only go out once the deadline passed means nothing: dropped
    if notice.kind is NoticeKind.SIGN_REMINDER:
        draft = session.get(Notice, notice.ref_notice_id)
        if _unsent(session, draft.signer_id, f"n.{draft.code}"):
            return  # the draft, or a reminder of it, still waits to go out to the signer: one is enough
        ctx["draft"] = draft
        reply = render("reminder_sign", actions=_sign_actions(draft), **ctx)
        enqueue(session, reply, target="user", recipient=draft.signer_id, deliver_after=at, now=now,
                task_id=task.id, notice_id=notice.id)
        return
    if notice.kind is NoticeKind.HARD_REMINDER:  # 难以执行 waits for an answer: the 督查室 and the assigner
        report = session.exec(select(HardReport).where(HardReport.task_id == task.id, HardReport.answer.is_(None))
                               .order_by(HardReport.id.desc())).first()
        reply = render("notice_hard_reminder", actions=hard_actions(task), report=report, **ctx)
        people = [task.assigner_id, *(p.user_id for p in queries.people_with_role(session, Role.SUPERVISOR))]
        for user_id in dict.fromkeys(people):
            if queries.member(session, user_id):
                enqueue(session, reply, target="user", recipient=user_id, deliver_after=at, now=now,
                        task_id=task.id, notice_id=notice.id)
        return
    reply = render(f"notice_{notice.kind}", actions=task_actions(task, at), **ctx)
    if head:
        enqueue(session, reply, target="user", recipient=head.user_id, deliver_after=at, now=now,
                task_id=task.id, notice_id=notice.id)
        ding = {NoticeKind.RED: policy.rules.ding_red, NoticeKind.YELLOW: policy.rules.ding_yellow}.get(notice.kind)
        if ding:  # after the notice in the head's queue: the DING points at a message already there
            enqueue(session, render("notice_ding", **ctx), target="user", recipient=head.user_id,
                    deliver_after=at, now=now, task_id=task.id, notice_id=notice.id, ding_remind_type=ding)
    groups = []
    if notice.kind in (NoticeKind.YELLOW, NoticeKind.RED):
        groups.append(queries.task_conversation(session, task))
    if notice.kind is NoticeKind.RED:
        leaders = queries.group(session, "leaders")
        groups.append(leaders.conversation_id if leaders else "")
    for conversation in dict.fromkeys(g for g in groups if g):
        enqueue(session, render(f"notice_{notice.kind}", **ctx), target="group", recipient=conversation,
                deliver_after=at, now=now, task_id=task.id, notice_id=notice.id)


def _unsent(session: Session, user_id: str | None, card_key: str) -> bool:
    return session.exec(select(Outbox.id).where(
        Outbox.target == "user", Outbox.recipient == user_id, Outbox.card_key == card_key,
        Outbox.card_update.is_(False), Outbox.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)))).first() is not None


def hard_actions(task: Task) -> tuple[Action, ...]:
    """The three answers to a 难以执行 report (湖北 (六))."""
    return (Action("继续执行", f"继续执行 {task.code} "), Action("暂缓执行", f"暂缓执行 {task.code} "),
            Action("调整要求", f"调整要求 {task.code} "))


def _sign_actions(draft: Notice) -> tuple[Action, ...]:
    return (Action("签发", f"签发 {draft.code}"), Action("暂缓", f"暂缓 {draft.code} "))


def _send_draft(session: Session, task: Task, notice: Notice, now: datetime, policy: Policy) -> None:
    if notice.signer_id is None:
        return  # no signer in the roster: the roster check refuses such a roster, so this is a test set-up
    unit = session.get(Unit, task.lead_unit_id)
    ctx = _context(session, task, notice, unit, now, policy)
    reply = render("notice_draft", actions=_sign_actions(notice), **ctx)
    enqueue(session, reply, target="user", recipient=notice.signer_id, deliver_after=policy.send_time(now),
            now=now, task_id=task.id, notice_id=notice.id)


def move_drafts(session: Session, now: datetime, policy: Policy) -> list[tuple[Notice, Person | None, Person]]:
    """After a roster change: every waiting draft whose signer no longer holds the signing role
    goes to whoever holds it now, with a DM carrying its 签发/暂缓 actions. Returns (draft, old, new)."""
    moved = []
    waiting = session.exec(select(Notice).join(Task, Task.id == Notice.task_id).where(
        Notice.kind.in_(tuple(SIGNER_ROLE)), Notice.status.in_((NoticeStatus.DRAFT, NoticeStatus.HELD)),
        Task.status.in_(OPEN_STATUSES)).order_by(Notice.id))
    for notice in list(waiting):
        role = SIGNER_ROLE[notice.kind]
        old = queries.person(session, notice.signer_id or "")
        if old is not None and old.active and old.role is role:
            continue
        new = queries.first_with_role(session, role)
        if new is None:
            continue  # the roster check requires every signing role: only a hand-built database gets here
        notice.signer_id = new.user_id
        session.add(notice)
        task = session.get(Task, notice.task_id)
        unit = session.get(Unit, task.lead_unit_id)
        ctx = _context(session, task, notice, unit, now, policy)
        actions = _sign_actions(notice)[:1 if notice.status is NoticeStatus.HELD else 2]  # held: 签发 only
        reply = render("notice_draft_moved", actions=actions, previous=old, **ctx)
        enqueue(session, reply, target="user", recipient=new.user_id, deliver_after=policy.send_time(now),
                now=now, task_id=task.id, notice_id=notice.id)
        audit.record(session, at=now, actor=audit.SYSTEM, action="notice_signer_changed", task_id=task.id,
                     notice=notice.code, old=old.user_id if old else None, new=new.user_id,
                     new_name=new.name)
        moved.append((notice, old, new))
    return moved
