"""Applies the policy to the database: `reconcile(now)` and `settle(task)`.

reconcile loads only tasks whose indexed `next_check_at` has come (O(due), not O(open tasks)),
and settles each in its own transaction. Every notice is a row unique on (task, kind, seq), so
two reconcilers — twice at one instant, or two processes at once — cannot issue one twice: the
loser's insert fails and its whole transaction (score, outbox rows) rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from reminders import cards
from reminders import notices as notice_io
from reminders.calendar import WorkCalendar
from reminders.policy import NoticeState, Policy, TaskState
from reminders.rules import Rules
from storage.db import is_postgres, transaction
from storage.models import (
    OPEN_STATUSES,
    HardReport,
    Notice,
    NoticeStatus,
    ProgressReport,
    Task,
    TaskStatus,
    Unit,
)

log = logging.getLogger(__name__)

MAX_STEPS = 64  # a task can't have more due at once than this; guards against a policy bug looping


@dataclass
class Escalation:
    calendar: WorkCalendar
    rules: Rules
    cards: bool = False  # interactive cards are shown: keep them current (reminders/cards.py)

    def refresh_cards(self, session: Session, task: Task, now: datetime) -> None:
        if self.cards:
            cards.refresh(session, task, now)

    def __post_init__(self) -> None:
        self.policy = Policy(self.calendar, self.rules)

    def settle(self, session: Session, task: Task, now: datetime) -> list[Notice]:
        """Bring one task up to date at `now` inside the caller's transaction; returns new notices."""
        if task.status in OPEN_STATUSES and not session.get(Unit, task.lead_unit_id).active:
            self._suspend(session, task, now)
            return []
        created: list[Notice] = []
        for _ in range(MAX_STEPS):
            notices = list(session.exec(select(Notice).where(Notice.task_id == task.id)))
            plan = self.policy.evaluate(task_state(task, session), [notice_state(n) for n in notices], now)
            by_id = {n.id: n for n in notices}
            for notice_id in plan.void:
                notice_io.void(session, task, by_id[notice_id], now)
            if not plan.due:
                task.next_check_at = plan.next_check_at
                session.add(task)
                self.refresh_cards(session, task, now)  # the cards shown about it say what happened
                return created
            # one at a time: what falls due next may depend on what was just issued
            created.append(notice_io.create(session, task, plan.due[0], now, self.policy))
        raise RuntimeError(f"task {task.code}: more than {MAX_STEPS} notices due at once")

    def _suspend(self, session: Session, task: Task, now: datetime) -> None:
        """Its unit left the roster: nobody can act on the task, so nothing more is sent or scored
        (waiting drafts become void) until 改派 hands it to a unit on the roster."""
        for notice in session.exec(select(Notice).where(
                Notice.task_id == task.id, Notice.status.in_((NoticeStatus.DRAFT, NoticeStatus.HELD)))):
            notice_io.void(session, task, notice, now)
        task.next_check_at = None
        session.add(task)
        self.refresh_cards(session, task, now)

    def reconcile(self, engine: Engine, now: datetime, batch: int = 500,
                  on_notice: Callable[[Notice], None] | None = None) -> int:
        """Settle every task due by `now`. Returns how many notices were created."""
        count = 0
        while True:
            with Session(engine) as session:
                due_ids = list(session.exec(
                    select(Task.id).where(Task.next_check_at <= now).order_by(Task.next_check_at).limit(batch)
                ))
            if not due_ids:
                return count
            progressed = False
            for task_id in due_ids:
                try:
                    with transaction(engine) as session:
                        query = select(Task).where(Task.id == task_id, Task.next_check_at <= now)
                        if is_postgres(engine):
                            query = query.with_for_update(skip_locked=True)
                        task = session.exec(query).first()
                        if task is None:  # settled meanwhile, or locked by another instance
                            continue
                        created = self.settle(session, task, now)
                    progressed = True
                except (IntegrityError, OperationalError) as exc:
                    # another instance issued the same notice first: its version stands
                    log.info("task %s: settled concurrently elsewhere (%s)", task_id, type(exc).__name__)
                    continue
                count += len(created)
                for notice in created:
                    if on_notice:
                        on_notice(notice)
            if not progressed:
                return count


def task_state(task: Task, session: Session | None = None) -> TaskState:
    """What the policy needs of a task; with a session, also the duties' records (每月报送, 难以执行)."""
    progress: tuple[datetime, ...] = ()
    hard_due = None
    if session is not None:
        if task.monthly_report:
            progress = tuple(session.exec(select(ProgressReport.at).where(ProgressReport.task_id == task.id)))
        hard_due = session.exec(select(HardReport.answer_due_at).where(
            HardReport.task_id == task.id, HardReport.answer.is_(None))).first()
    return TaskState(
        status=TaskStatus(task.status),
        assigned_at=task.assigned_at,
        deadline=task.deadline,
        cycle=task.cycle,
        cycle_started_at=task.cycle_started_at,
        acknowledged=task.acknowledged_at is not None,
        last_progress_at=task.last_progress_at,
        report_every_days=task.report_every_days,
        acknowledged_at=task.acknowledged_at,
        deployed=task.deployed_at is not None,
        monthly_report=task.monthly_report,
        progress_times=progress,
        hard_answer_due=hard_due,
    )


def notice_state(notice: Notice) -> NoticeState:
    return NoticeState(
        id=notice.id,
        kind=notice.kind,
        seq=notice.seq,
        cycle=notice.cycle,
        status=NoticeStatus(notice.status),
        due_at=notice.due_at,
        created_at=notice.created_at,
        issued_at=notice.issued_at,
        ref_notice_id=notice.ref_notice_id,
    )
