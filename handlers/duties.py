"""Duties from the other documents: 部署 (布置落实) and 难以执行反馈 with its three answers.

- 部署 (湖北 (七) 3个工作日内布置落实; 鄂托克前旗 措施8 2个工作日): the unit states how it will carry the
  task out. Where the profile asks for it, a missing statement N working days after 签收 brings a
  reminder (reminders/policy.py); the command works in every profile.
- 难以执行 (湖北 (六)): within 5 working days of assignment the unit may report a task hard to carry
  out; the assigner or the 督查室 answers within 3 working days: 继续执行 (nothing changes), 暂缓执行
  (the task waits until a new deadline) or 调整要求 (a new requirement and a new deadline). The last
  two move the deadline as an approved extension does: a new cycle, issued notices stay. While the
  answer waits, the task's own clock keeps running and a late answer is reminded (policy).
"""

from __future__ import annotations

from sqlmodel import select

from handlers.deadlines import DeadlineError, parse_deadline
from handlers.parsing import require_task, split_first
from handlers.permissions import require_assigner_or_office, require_own_unit
from handlers.registry import ASSIGNERS, UNIT_STAFF, Context, UserError, command
from handlers.tasks import changed, open_task, require_open
from reminders.notices import hard_actions
from storage import queries
from storage.models import HardReport, Role, Task, TaskStatus, Unit

ANSWERS = {"继续执行": "continue", "暂缓执行": "postpone", "调整要求": "adjust"}


@command("部署", roles=UNIT_STAFF, aliases=("deploy",), summary="签收后报送布置落实情况（怎么办、谁负责、何时完成）",
         usage="部署 事项编号 落实措施", example="部署 DB-2026-0042 已成立专班，由分管副局长牵头，本周内完成城区排查")
def deploy(ctx: Context, args: str) -> None:
    task, plan = open_task(ctx, args, "部署", require_own_unit)
    if not plan:
        raise UserError("deploy_no_text", code=task.code)
    if task.acknowledged_at is None:  # stating the plan is acknowledging
        task.acknowledged_at, task.status = ctx.now, TaskStatus.IN_PROGRESS
    task.deployed_at, task.deploy_plan = task.deployed_at or ctx.now, plan
    changed(ctx, task, "deployed", plan=plan)
    ctx.reply("task_deployed", task=task, plan=plan)


def pending_hard(ctx: Context, task: Task) -> HardReport | None:
    return ctx.session.exec(select(HardReport).where(HardReport.task_id == task.id,
                                                     HardReport.answer.is_(None))).first()


@command("难以执行", roles=UNIT_STAFF, aliases=("hard",), summary="交办5个工作日内反馈难以执行，须写明理由",
         usage="难以执行 事项编号 理由", example="难以执行 DB-2026-0042 管网图纸缺失，需县自然资源局先行补测")
def report_hard(ctx: Context, args: str) -> None:
    task, reason = open_task(ctx, args, "难以执行", require_own_unit)
    policy, rules = ctx.services.escalation.policy, ctx.rules
    last = policy.after_workdays(task.assigned_at, rules.hard_report_workdays)
    if ctx.now > last:
        raise UserError("hard_late", code=task.code, last=last, days=rules.hard_report_workdays)
    if pending_hard(ctx, task):
        raise UserError("hard_pending", code=task.code)
    if not reason:
        raise UserError("reason_required", command="难以执行", code=task.code)
    report = HardReport(task_id=task.id, reporter_id=ctx.sender.user_id, reported_at=ctx.now, reason=reason,
                        answer_due_at=policy.after_workdays(ctx.now, rules.hard_answer_workdays))
    ctx.session.add(report)
    ctx.session.flush()
    changed(ctx, task, "hard_reported", reason=reason, answer_due_at=report.answer_due_at)
    unit = ctx.session.get(Unit, task.lead_unit_id)
    for user_id in dict.fromkeys([task.assigner_id, *(p.user_id for p in queries.people_with_role(
            ctx.session, Role.SUPERVISOR))]):
        ctx.notify_user(user_id, "hard_reported_dm", task_id=task.id, actions=hard_actions(task), task=task,
                        unit=unit, report=report, reporter=ctx.sender)
    ctx.reply("hard_reported", task=task, report=report)


def _answer(ctx: Context, args: str, word: str) -> None:
    task, rest = require_task(ctx.session, args, word)
    require_assigner_or_office(ctx, task)
    require_open(task)
    report = pending_hard(ctx, task)
    if report is None:
        raise UserError("no_pending_hard", code=task.code)
    answer, old, note = ANSWERS[word], task.deadline, rest
    if answer != "continue":
        when, note = split_first(rest)
        if not when:
            raise UserError("hard_answer_usage", code=task.code, word=word)
        try:
            new = parse_deadline(when, ctx.now, ctx.services.calendar, ctx.rules)
        except DeadlineError as exc:
            raise UserError(f"deadline_{exc.kind}", expression=exc.expression) from exc
        if not note:
            raise UserError("reason_required", command=word, code=task.code)
        if new.at <= task.deadline:
            raise UserError("hard_not_later", code=task.code, deadline=task.deadline, word=word)
        task.deadline, task.cycle, task.cycle_started_at = new.at, task.cycle + 1, ctx.now
        task.deadline_is_estimate = ctx.services.calendar.is_estimate(new.at.date())
        if task.status is TaskStatus.REPORTED_DONE:  # a new requirement reopens the work, as an extension does
            task.status = TaskStatus.IN_PROGRESS
        report.new_deadline = new.at
    report.answer, report.answered_by, report.answered_at, report.note = answer, ctx.sender.user_id, ctx.now, note
    ctx.session.add(report)
    changed(ctx, task, "hard_answered", answer=answer, note=note, old_deadline=old, new_deadline=report.new_deadline)
    unit = ctx.session.get(Unit, task.lead_unit_id)
    data = {"task": task, "unit": unit, "report": report, "word": word, "old": old, "answerer": ctx.sender}
    for user_id in dict.fromkeys([report.reporter_id, unit.head_user_id]):
        ctx.notify_user(user_id, "hard_answered_dm", task_id=task.id, **data)
    ctx.reply("hard_answered", **data)


@command("继续执行", roles=ASSIGNERS, summary="答复难以执行反馈：按原要求、原期限继续执行",
         usage="继续执行 事项编号 [说明]", example="继续执行 DB-2026-0042 图纸可向县自然资源局调取")
def answer_continue(ctx: Context, args: str) -> None:
    _answer(ctx, args, "继续执行")


@command("暂缓执行", roles=ASSIGNERS, summary="答复难以执行反馈：暂缓，按新期限重新计时",
         usage="暂缓执行 事项编号 新期限 理由", example="暂缓执行 DB-2026-0042 1月15日 待省里政策明确后再推进")
def answer_postpone(ctx: Context, args: str) -> None:
    _answer(ctx, args, "暂缓执行")


@command("调整要求", roles=ASSIGNERS, summary="答复难以执行反馈：调整要求和期限",
         usage="调整要求 事项编号 新期限 新要求", example="调整要求 DB-2026-0042 12月31日 先完成城区部分，乡镇部分纳入明年计划")
def answer_adjust(ctx: Context, args: str) -> None:
    _answer(ctx, args, "调整要求")
