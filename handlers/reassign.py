"""改派: hand an open task to another unit on the roster — above all the tasks of a unit that left it.

The new unit gets a fair start, as after an approved extension (第八条): a new cycle from now, so
waiting drafts of the old clock become void and the colours count afresh for the new unit. The
deadline is kept if it leaves the new unit at least the default period (第三条, 7 working days),
else it becomes that period from now; the 督查室 may name another. Notices already issued and their
points stay where they were earned, with the unit that held the task then.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from handlers.deadlines import DeadlineError, parse_deadline
from handlers.parsing import find_unit, require_task, split_first, unit_names
from handlers.registry import ASSIGNERS, Context, UserError, command
from handlers.tasks import require_open
from message_templates.render import render
from reminders.engine import Escalation
from reminders.notices import task_actions
from storage import audit, queries
from storage.models import ExtensionRequest, ExtensionStatus, Person, Role, Task, TaskStatus, Unit
from storage.outbox import enqueue


@command("改派", roles=ASSIGNERS, aliases=("reassign",), summary="把未办结事项改派给另一责任单位，新单位重新计时",
         usage="改派 事项编号 单位名称 [新期限]", example="改派 DB-2026-0042 县应急局")
def reassign(ctx: Context, args: str) -> None:
    task, rest = require_task(ctx.session, args, "改派")
    require_open(task)
    word, when = split_first(rest)
    if not word:
        raise UserError("reassign_usage", code=task.code)
    unit = find_unit(ctx.session, word)
    if unit is None:
        raise UserError("unknown_unit", word=word, units=unit_names(ctx.session))
    if unit.id == task.lead_unit_id:
        raise UserError("reassign_same_unit", code=task.code, unit=unit.name)
    deadline = None
    if when:
        try:
            deadline = parse_deadline(when, ctx.now, ctx.services.calendar, ctx.rules).at
        except DeadlineError as exc:
            raise UserError(f"deadline_{exc.kind}", expression=exc.expression) from exc
    old_unit = ctx.session.get(Unit, task.lead_unit_id)
    old_head = queries.unit_head(ctx.session, old_unit)
    hand_over(ctx.session, task, unit, ctx.now, ctx.services.escalation, deadline, actor=ctx.sender.user_id)
    notify_unit(ctx.session, task, unit, old_unit, ctx.now, by=ctx.sender)
    if old_head:
        ctx.notify_user(old_head.user_id, "task_reassigned_away_dm", task_id=task.id, task=task, unit=unit)
    ctx.reply("task_reassigned", task=task, unit=unit, old_unit=old_unit, head=queries.unit_head(ctx.session, unit))


def hand_over(session: Session, task: Task, unit: Unit, now: datetime, esc: Escalation,
              deadline: datetime | None = None, *, actor: str) -> None:
    """Make `unit` the lead unit of `task` with a fresh escalation cycle from `now` (see the module doc)."""
    old_unit_id, old_deadline = task.lead_unit_id, task.deadline
    fair = datetime.combine(esc.calendar.add_workdays(now.date(), esc.rules.default_deadline_workdays),
                            esc.rules.due_time, tzinfo=now.tzinfo)
    task.deadline = deadline or max(task.deadline, fair)
    task.deadline_is_estimate = esc.calendar.is_estimate(task.deadline.date())
    task.lead_unit_id = unit.id
    task.co_unit_ids = [i for i in task.co_unit_ids if i != unit.id]
    task.cycle, task.cycle_started_at = task.cycle + 1, now
    task.status, task.acknowledged_at, task.reported_done_at = TaskStatus.ASSIGNED, None, None
    session.add(task)
    for request in session.exec(select(ExtensionRequest).where(  # the old unit's request: moot now
            ExtensionRequest.task_id == task.id, ExtensionRequest.status == ExtensionStatus.PENDING)):
        request.status, request.decided_by, request.decided_at = ExtensionStatus.REJECTED, actor, now
        request.decision_note = "事项已改派"
        session.add(request)
    esc.settle(session, task, now)  # old drafts become void; the new unit's clock starts
    audit.record(session, at=now, actor=actor, action="reassigned", task_id=task.id, old_unit_id=old_unit_id,
                 unit=unit.name, old_deadline=old_deadline, deadline=task.deadline)


def notify_unit(session: Session, task: Task, unit: Unit, old_unit: Unit, now: datetime,
                by: Person | None) -> None:
    """The new unit's head and liaisons are told, with the task's actions, as at 交办."""
    head = queries.unit_head(session, unit)
    liaisons = session.exec(select(Person).where(Person.unit_id == unit.id, Person.role == Role.LIAISON,
                                                 Person.active))
    for person in [head, *liaisons]:
        if person:
            reply = render("task_reassigned_dm", actions=task_actions(task), task=task, unit=unit,
                           old_unit=old_unit, by=by, now=now)
            enqueue(session, reply, target="user", recipient=person.user_id, deliver_after=now, now=now,
                    task_id=task.id)
