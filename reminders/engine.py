"""Applies the policy to the database: `reconcile(now)` and `settle(task)`.

reconcile loads only tasks whose indexed `next_check_at` has come (O(due), not O(open tasks)),
and settles them a batch to a transaction: the batch's notices, progress and 难以执行 records read
in three queries, its new rows written in bulk (reminders.notices.BatchRows). Every notice is a row
unique on (task, kind, seq), so two reconcilers — twice at one instant, or two processes at once —
cannot issue one twice: the loser's insert fails, its whole batch (scores, outbox rows) rolls back,
and its tasks are settled again one transaction each, where the other's version stands.
tests/reminders/test_engine.py runs one seeded year through both paths and compares every row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, literal
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from reminders import notices as notice_io
from reminders.calendar import WorkCalendar
from reminders.policy import NoticeState, Policy, TaskState
from reminders.rules import Rules
from storage import stale_cards
from storage.db import is_postgres, transaction
from storage.models import (
    OPEN_STATUSES,
    HardReport,
    Notice,
    NoticeStatus,
    ProgressReport,
    Task,
    TaskStatus,
)
from storage.queries import among

log = logging.getLogger(__name__)

# every command that changes a task settles it: its statements are built once
_HARD_DUE = (select(HardReport.answer_due_at).where(HardReport.task_id == bindparam("task"), HardReport.answer.is_(None))
             .order_by(HardReport.id).limit(1))
# the task's notices (id order) and its open 难以执行's answer due time in one round trip; the one-row
# subquery keeps a row when the task has no notice
_NOTICES = (select(Notice, _HARD_DUE.scalar_subquery().label("hard_due"))
            .select_from(select(literal(1).label("n")).subquery("one"))
            .outerjoin(Notice, Notice.task_id == bindparam("task")).order_by(Notice.id))
_PROGRESS = select(ProgressReport.at).where(ProgressReport.task_id == bindparam("task")).order_by(ProgressReport.id)
# Is anything due? On PostgreSQL asked outside a transaction: the usual answer, no, then costs one
# round trip instead of three, BEGIN and COMMIT included. Ordered, so that the planner walks the
# next_check_at index: unordered, with fresh statistics missing, it scanned 100,000 rows (15 ms)
_ANY_DUE = select(Task.id).where(Task.next_check_at <= bindparam("now")).order_by(Task.next_check_at).limit(1)
MAX_STEPS = 64  # a task can't have more due at once than this; guards against a policy bug looping
BATCH = 500  # tasks settled in one transaction by reconcile


@dataclass
class Escalation:
    calendar: WorkCalendar
    rules: Rules
    cards: bool = False  # interactive cards are shown: keep them current (reminders/cards.py)

    def refresh_cards(self, session: Session, task: Task, now: datetime) -> None:
        """The cards shown about the task will say what just happened: rendered when the sender
        next runs (reminders/card_updates.py), from the task as it is then."""
        if self.cards:
            stale_cards.note(session, task.id, task.code, now)

    def __post_init__(self) -> None:
        self.policy = Policy(self.calendar, self.rules)

    def settle(self, session: Session, task: Task, now: datetime) -> list[Notice]:
        """Bring one task up to date at `now` inside the caller's transaction; returns new notices."""
        rows = session.execute(_NOTICES, {"task": task.id}).all()
        notices = [row.Notice for row in rows if row.Notice is not None]
        # 每月报送 tasks are checked against every report
        progress = tuple(session.exec(_PROGRESS, params={"task": task.id})) if task.monthly_report else ()
        state = task_state(task, progress=progress, hard_due=rows[0].hard_due)
        return self._settle(notice_io.Rows(session), task, notices, state, now)

    def _settle(self, rows: notice_io.Rows, task: Task, notices: list[Notice], state: TaskState,
                now: datetime) -> list[Notice]:
        """`settle` with the task's notices (in id order) and its state already read: the one-task
        path and the batch path both run this."""
        if task.status in OPEN_STATUSES and not rows.unit(task.lead_unit_id).active:
            self._suspend(rows, task, notices, now)
            return []
        created: list[Notice] = []
        for _ in range(MAX_STEPS):
            plan = self.policy.evaluate(state, [notice_state(n) for n in notices], now)
            by_id = {n.id: n for n in notices}
            for notice_id in plan.void:
                notice_io.void(rows, task, by_id[notice_id], now)
            if not plan.due:
                task.next_check_at = plan.next_check_at
                rows.task_changed(task)
                self.refresh_cards(rows.session, task, now)  # the cards shown about it will say what happened
                return created
            # one at a time: what falls due next may depend on what was just issued
            created.append(notice_io.create(rows, task, plan.due[0], now, self.policy))
            notices.append(created[-1])
        raise RuntimeError(f"task {task.code}: more than {MAX_STEPS} notices due at once")

    def _suspend(self, rows: notice_io.Rows, task: Task, notices: list[Notice], now: datetime) -> None:
        """Its unit left the roster: nobody can act on the task, so nothing more is sent or scored
        (waiting drafts become void) until 改派 hands it to a unit on the roster."""
        for notice in notices:
            if notice.status in (NoticeStatus.DRAFT, NoticeStatus.HELD):
                notice_io.void(rows, task, notice, now)
        task.next_check_at = None
        rows.task_changed(task)
        self.refresh_cards(rows.session, task, now)

    def reconcile(self, engine: Engine, now: datetime, batch: int = BATCH,
                  on_notice: Callable[[Notice], None] | None = None) -> int:
        """Settle every task due by `now`, `batch` tasks to a transaction. Returns how many notices
        were created. A batch that meets another instance's notice (a unique-key conflict) or a
        busy database rolls back whole and its tasks are settled again one transaction each."""
        if is_postgres(engine) and not anything_due(engine, now):
            return 0
        count = 0
        while True:
            try:
                settled, created = self._settle_batch(engine, now, batch)
            except (IntegrityError, OperationalError) as exc:
                log.info("reconcile: a batch met concurrent work (%s); settling its tasks one by one",
                         type(exc).__name__)
                settled, created = self._settle_each(engine, now, batch)
            count += len(created)
            for notice in created:
                if on_notice:
                    on_notice(notice)
            if not settled:
                return count

    def reconcile_each(self, engine: Engine, now: datetime) -> int:
        """The one-task path alone (a transaction per task), as reconcile was before batches:
        what the batch path is compared with, row by row, in tests/reminders/test_engine.py."""
        count = 0
        while True:
            settled, created = self._settle_each(engine, now, BATCH)
            count += len(created)
            if not settled:
                return count

    def _settle_batch(self, engine: Engine, now: datetime, limit: int) -> tuple[int, list[Notice]]:
        with transaction(engine) as session:
            query = select(Task).where(Task.next_check_at <= now).order_by(Task.next_check_at, Task.id).limit(limit)
            if is_postgres(engine):  # another instance's batch is skipped, not waited for
                query = query.with_for_update(skip_locked=True)
            conn = session.connection()  # the batch's tasks and notices as plain rows (BatchRows)
            tasks = [notice_io.PlainTask(**row) for row in conn.execute(query).mappings()]
            if not tasks:
                return 0, []
            ids = [t.id for t in tasks]
            postgres = is_postgres(engine)
            notices: dict[int, list[notice_io.PlainNotice]] = {i: [] for i in ids}
            for row in conn.execute(select(Notice.__table__).where(among(Notice.task_id, ids, postgres)).order_by(Notice.id)
                                    ).mappings():
                notices[row["task_id"]].append(notice_io.PlainNotice(**row))
            progress: dict[int, list[datetime]] = {}
            monthly = [t.id for t in tasks if t.monthly_report]
            if monthly:
                for task_id, at in session.exec(select(ProgressReport.task_id, ProgressReport.at)
                                                .where(among(ProgressReport.task_id, monthly, postgres))
                                                .order_by(ProgressReport.id)):
                    progress.setdefault(task_id, []).append(at)
            hard: dict[int, datetime] = {}
            for task_id, due in session.exec(select(HardReport.task_id, HardReport.answer_due_at)
                                             .where(among(HardReport.task_id, ids, postgres), HardReport.answer.is_(None))
                                             .order_by(HardReport.id)):
                hard.setdefault(task_id, due)
            rows = notice_io.BatchRows(session, tasks, [n for of_task in notices.values() for n in of_task])
            created: list[Notice] = []
            for task in tasks:
                state = task_state(task, progress=tuple(progress.get(task.id, ())), hard_due=hard.get(task.id))
                # a plain row read as its model (BatchRows)
                created += self._settle(rows, task, notices[task.id], state, now)  # type: ignore[arg-type]
            rows.flush()
        return len(tasks), created

    def _settle_each(self, engine: Engine, now: datetime, limit: int) -> tuple[int, list[Notice]]:
        """One transaction per task: the retry after a batch conflict."""
        with Session(engine) as session:
            due_ids = list(session.exec(
                select(Task.id).where(Task.next_check_at <= now).order_by(Task.next_check_at, Task.id).limit(limit)))
        settled, created = 0, []
        for task_id in due_ids:
            try:
                with transaction(engine) as session:
                    query = select(Task).where(Task.id == task_id, Task.next_check_at <= now)
                    if is_postgres(engine):
                        query = query.with_for_update(skip_locked=True)
                    task = session.exec(query).first()
                    if task is None:  # settled meanwhile, or locked by another instance
                        continue
                    mine = self.settle(session, task, now)
            except (IntegrityError, OperationalError) as exc:
                # another instance issued the same notice first: its version stands
                log.info("task %s: settled concurrently elsewhere (%s)", task_id, type(exc).__name__)
                continue
            settled += 1
            created += mine
        return settled, created


def anything_due(engine: Engine, now: datetime) -> bool:
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        return conn.execute(_ANY_DUE, {"now": now}).first() is not None


def task_state(task: Task, *, progress: tuple[datetime, ...] = (), hard_due: datetime | None = None) -> TaskState:
    """What the policy needs of a task, with the duties' records (每月报送's report times, 难以执行's
    answer due time) read by the caller: settle for its task, the batch path for all its tasks."""
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
