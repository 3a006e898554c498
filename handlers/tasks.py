"""A task's life in chat: 交办, 签收, 进展, 办结, 销号, 退回, 撤销."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import text
from sqlmodel import select

from handlers.deadlines import DeadlineError, extract_deadline
from handlers.parsing import LIST_SEPARATORS, find_unit, require_task, split_first, take_percent, unit_names
from handlers.permissions import require_assigner, require_assigner_or_office, require_own_unit
from handlers.registry import ASSIGNERS, UNIT_STAFF, Context, UserError, command
from message_templates.reply import Action
from reminders.notices import task_actions
from storage import queries
from storage.models import OPEN_STATUSES, Person, ProgressReport, Role, Task, TaskStatus, Unit

CATEGORIES = ("重大决策部署", "政府工作报告目标任务", "县长批示件", "会议交办", "其他")
URGENT_WORDS = ("特急", "紧急", "加急")
REPORT_DUTY = re.compile(r"每\s*(\d{1,2})\s*天(?:报送|报告|汇报)(?:一次)?(?:进展)?")
MONTHLY_DUTY = "每月报送"  # 华容 措施九: 月初有计划、月中有进展、月底有成效
MAX_TITLE = 200
_NEW_PROGRESS = ProgressReport.__table__.insert()


def require_open(task: Task) -> None:
    if task.status not in OPEN_STATUSES:
        raise UserError("task_finished", code=task.code, status=task.status)


def settle(ctx: Context, task: Task) -> None:
    """Re-plan the task's reminders now that it changed (voids drafts of a closed task at once)."""
    ctx.services.escalation.settle(ctx.session, task, ctx.now)


def changed(ctx: Context, task: Task, action: str, **detail: object) -> None:
    """Record a change to `task`: re-plan its reminders and add the audit event."""
    ctx.session.add(task)
    settle(ctx, task)
    ctx.audit(action, task.id, **detail)


def open_task(ctx: Context, args: str, word: str, allowed: Callable[[Context, Task], None]) -> tuple[Task, str]:
    """The open task named first in `args` that the sender may act on, and the rest of the text."""
    task, rest = require_task(ctx.session, args, word)
    allowed(ctx, task)
    require_open(task)
    return task, rest


def next_code(ctx: Context) -> str:
    prefix, year = ctx.services.settings.code_prefix, ctx.now.year
    # one statement that both SQLite (≥ 3.35) and PostgreSQL run atomically: no two tasks share a code
    last = ctx.session.execute(text(
        "INSERT INTO codecounter (prefix, year, last) VALUES (:p, :y, 1) "
        "ON CONFLICT (prefix, year) DO UPDATE SET last = codecounter.last + 1 RETURNING last"
    ), {"p": prefix, "y": year}).scalar_one()
    return f"{prefix}-{year}-{last:04d}"


# ---- 交办 ------------------------------------------------------------------------------------------
def _lead_unit(ctx: Context, words: str) -> tuple[Unit, str, Person | None]:
    """The lead unit, named by the first word only: a unit name, or an @-mention of a unit's head or
    liaison there (with the person mentioned). An @-mention later in the text is not the target."""
    word, rest = split_first(words)
    if word.startswith("@") and ctx.incoming.at_user_ids:
        person = _leading_mention(ctx, word[1:])
        if person is not None:
            if person.unit_id is None:
                raise UserError("mention_not_unit", mention=word[1:])
            return ctx.session.get(Unit, person.unit_id), rest, person
    unit = find_unit(ctx.session, word.lstrip("@"))
    if unit is None:
        raise UserError("unknown_unit", word=word, units=unit_names(ctx.session))
    return unit, rest, None


def _leading_mention(ctx: Context, name: str) -> Person | None:
    """The person an "@name" written first refers to. DingTalk gives the mentions' userIds but not
    where each stands in the text, so the name decides; a lone mention needs no name (the display
    name may differ from the roster's); a unit name written after "@" is left to find_unit (None).
    Several mentions and no name that fits: a question listing them, never a guess."""
    ids = tuple(dict.fromkeys(ctx.incoming.at_user_ids))
    mentioned = [p for uid in ids if (p := ctx.session.get(Person, uid))]
    named = [p for p in mentioned if p.name == name] or [p for p in mentioned if name.startswith(p.name)]
    if len(named) == 1:
        return named[0]
    if not named:
        if find_unit(ctx.session, name) is not None:
            return None
        if not mentioned:
            raise UserError("mention_not_unit", mention=name)
        if len(ids) == 1:
            return mentioned[0]
    choices = [f"{p.name}（{u.name}）" if (u := ctx.session.get(Unit, p.unit_id or -1)) else p.name
               for p in (named or mentioned)]
    raise UserError("ambiguous_mention", mention=name, choices=choices)


def _options(ctx: Context, rest: str) -> tuple[list[Unit], str, bool, int | None, bool, str]:
    """协办 A,B / 类别 X / 特急 / 每N天报送 / 每月报送, in any order before the title."""
    co_units: list[Unit] = []
    category, urgent, report_every, monthly = "其他", False, None, False
    while True:
        word, after = split_first(rest)
        if word == "协办":
            names, after = split_first(after)
            while LIST_SEPARATORS.fullmatch(names[-1:]) and find_unit(
                    ctx.session, LIST_SEPARATORS.split(split_first(after)[0])[0]):
                more, after = split_first(after)  # 「协办 县应急局, 县市场监管局」: the list goes on
                names += more
            for name in filter(None, LIST_SEPARATORS.split(names)):
                unit = find_unit(ctx.session, name)
                if unit is None:
                    raise UserError("unknown_unit", word=name, units=unit_names(ctx.session))
                co_units.append(unit)
        elif word == "类别":
            category, after = split_first(after)
            if category not in CATEGORIES:
                raise UserError("unknown_category", word=category, categories=CATEGORIES)
        elif word in URGENT_WORDS:
            urgent = True
        elif m := REPORT_DUTY.fullmatch(word):
            report_every = int(m[1])
        elif word == MONTHLY_DUTY:
            monthly = True
        else:
            return co_units, category, urgent, report_every, monthly, rest
        rest = after


@command("交办", roles=ASSIGNERS, aliases=("assign",), summary="交办一项督办事项",
         usage="交办 @单位负责人或单位名称 [协办 单位,单位] [类别 类别名] [特急] [每N天报送|每月报送] 事项内容 [期限]",
         example="交办 县住建局 燃气管道隐患排查并报送整改清单 截止12月10日")
def assign(ctx: Context, args: str) -> None:
    if not args:
        raise UserError("assign_usage")
    unit, rest, lead_person = _lead_unit(ctx, args)
    co_units, category, urgent, report_every, monthly, rest = _options(ctx, rest)
    try:
        deadline, title = extract_deadline(rest, ctx.now, ctx.services.calendar, ctx.rules, urgent=urgent)
    except DeadlineError as exc:
        raise UserError(f"deadline_{exc.kind}", expression=exc.expression) from exc
    if not title:
        raise UserError("assign_no_title")
    if len(title) > MAX_TITLE:
        raise UserError("title_too_long", limit=MAX_TITLE)
    if deadline is None:  # 第三条: no time limit given ⇒ 7 working days
        day = ctx.services.calendar.add_workdays(ctx.now.date(), ctx.rules.default_deadline_workdays)
        due = datetime.combine(day, ctx.rules.due_time, tzinfo=ctx.now.tzinfo)
        defaulted = True
    else:
        due, defaulted = deadline.at, False
    task = Task(
        code=next_code(ctx), title=title, lead_unit_id=unit.id, co_unit_ids=[u.id for u in co_units],
        category=category, urgent=urgent, assigner_id=ctx.sender.user_id,
        conversation_id=ctx.incoming.conversation_id if ctx.incoming.is_group else "",
        assigned_at=ctx.now, original_deadline=due, deadline=due, cycle_started_at=ctx.now,
        deadline_is_estimate=ctx.services.calendar.is_estimate(due.date()), report_every_days=report_every,
        monthly_report=monthly,
    )
    ctx.session.add(task)
    ctx.session.flush()
    settle(ctx, task)
    head = queries.unit_head(ctx.session, unit)
    liaisons = list(ctx.session.exec(select(Person).where(Person.unit_id == unit.id, Person.role == Role.LIAISON)))
    data = {"task": task, "unit": unit, "head": head, "co_units": co_units, "assigner": ctx.sender,
            "defaulted": defaulted, "rules": ctx.rules}
    for person in [head, *liaisons]:
        if person:
            ctx.notify_user(person.user_id, "task_assigned_dm", task_id=task.id, actions=task_actions(task), **data)
    for co in co_units:
        co_head = queries.unit_head(ctx.session, co)
        if co_head:
            ctx.notify_user(co_head.user_id, "task_assigned_co", task_id=task.id, co_unit=co, **data)
    told = {ctx.sender.user_id, *(p.user_id for p in [head, *liaisons, lead_person] if p)}
    for user_id in dict.fromkeys(ctx.incoming.at_user_ids):  # people asked in the text to help
        if user_id not in told and ctx.session.get(Person, user_id):
            ctx.notify_user(user_id, "task_mentioned_dm", task_id=task.id, **data)
    ctx.audit("assigned", task.id, unit=unit.name, deadline=due, co_units=[u.name for u in co_units],
              category=category, urgent=urgent, title=title, **({"monthly_report": True} if monthly else {}))
    at = (head.user_id,) if head and ctx.incoming.is_group else ()
    ctx.reply("task_assigned", at_user_ids=at, **data)


# ---- the unit's side ----------------------------------------------------------------------------
@command("签收", roles=UNIT_STAFF, aliases=("ack",), summary="签收交办给本单位的事项",
         usage="签收 事项编号", example="签收 DB-2026-0042")
def acknowledge(ctx: Context, args: str) -> None:
    task, _ = open_task(ctx, args, "签收", require_own_unit)
    if task.acknowledged_at is not None:
        raise UserError("already_acknowledged", code=task.code, at=task.acknowledged_at)
    task.acknowledged_at, task.status = ctx.now, TaskStatus.IN_PROGRESS
    changed(ctx, task, "acknowledged")
    ctx.reply("task_acknowledged", task=task)


@command("进展", roles=UNIT_STAFF, aliases=("progress",), summary="报送办理进展，可带百分比",
         usage="进展 事项编号 进展情况 [百分比]", example="进展 DB-2026-0042 已完成城区排查，乡镇部分进行中 60%")
def progress(ctx: Context, args: str) -> None:
    task, rest = open_task(ctx, args, "进展", require_own_unit)
    note, percent = take_percent(rest)
    if not note:
        raise UserError("progress_no_text", code=task.code)
    # Core: the report is only read back by queries, never as this object
    ctx.session.execute(_NEW_PROGRESS, {"task_id": task.id, "author_id": ctx.sender.user_id, "at": ctx.now,
                                        "text": note, "percent": percent})
    if task.acknowledged_at is None:  # reporting progress is acknowledging
        task.acknowledged_at, task.status = ctx.now, TaskStatus.IN_PROGRESS
    task.last_progress_at = ctx.now
    task.progress_percent = percent if percent is not None else task.progress_percent
    changed(ctx, task, "progress", text=note, percent=percent)
    ctx.reply("task_progress", task=task, note=note, percent=percent)


@command("办结", roles=UNIT_STAFF, aliases=("done",), summary="报告事项已办结，等待销号",
         usage="办结 事项编号 办理结果", example="办结 DB-2026-0042 排查完毕，整改清单已报县政府办")
def report_done(ctx: Context, args: str) -> None:
    task, summary = open_task(ctx, args, "办结", require_own_unit)
    if task.status is TaskStatus.REPORTED_DONE:
        raise UserError("already_reported_done", code=task.code)
    if not summary:
        raise UserError("done_no_summary", code=task.code)
    ctx.session.add(ProgressReport(task_id=task.id, author_id=ctx.sender.user_id, at=ctx.now, text=summary,
                                   percent=100, final=True))
    task.status, task.reported_done_at, task.last_progress_at = TaskStatus.REPORTED_DONE, ctx.now, ctx.now
    task.acknowledged_at = task.acknowledged_at or ctx.now
    task.progress_percent = 100
    changed(ctx, task, "reported_done", summary=summary)
    unit = ctx.session.get(Unit, task.lead_unit_id)
    actions = (Action("销号", f"销号 {task.code}"), Action("退回", f"退回 {task.code} "))
    for user_id in dict.fromkeys([task.assigner_id, *(p.user_id for p in queries.people_with_role(
            ctx.session, Role.SUPERVISOR))]):
        ctx.notify_user(user_id, "task_done_for_review", task_id=task.id, actions=actions, task=task, unit=unit,
                        summary=summary)
    ctx.reply("task_reported_done", task=task)


# ---- the assigner's side ------------------------------------------------------------------------
def _reported_done(ctx: Context, args: str, word: str, not_done_error: str) -> tuple[Task, str]:
    """A task the assigner (or the 督查室) reviews: it must have been reported done."""
    task, rest = open_task(ctx, args, word, require_assigner_or_office)
    if task.status is not TaskStatus.REPORTED_DONE:
        raise UserError(not_done_error, code=task.code)
    return task, rest


@command("销号", roles=ASSIGNERS, aliases=("close",), summary="核实办结后销号，停止督办",
         usage="销号 事项编号", example="销号 DB-2026-0042")
def close(ctx: Context, args: str) -> None:
    task, _ = _reported_done(ctx, args, "销号", "close_not_done")
    task.status, task.closed_at, task.next_check_at = TaskStatus.CLOSED, ctx.now, None
    changed(ctx, task, "closed")
    unit = ctx.session.get(Unit, task.lead_unit_id)
    ctx.notify_user(unit.head_user_id, "task_closed_dm", task_id=task.id, task=task, unit=unit)
    ctx.reply("task_closed", task=task, unit=unit)


@command("退回", roles=ASSIGNERS, aliases=("reject",), summary="办结不达标，退回重办（期限不变）",
         usage="退回 事项编号 理由", example="退回 DB-2026-0042 整改清单缺少乡镇部分")
def send_back(ctx: Context, args: str) -> None:
    task, reason = _reported_done(ctx, args, "退回", "send_back_not_done")
    if not reason:
        raise UserError("reason_required", command="退回", code=task.code)
    task.status, task.reported_done_at = TaskStatus.IN_PROGRESS, None
    changed(ctx, task, "sent_back", reason=reason)
    unit = ctx.session.get(Unit, task.lead_unit_id)
    ctx.notify_user(unit.head_user_id, "task_sent_back_dm", task_id=task.id, actions=task_actions(task),
                    task=task, reason=reason)
    ctx.reply("task_sent_back", task=task, unit=unit)


@command("撤销", roles=ASSIGNERS, aliases=("cancel",), summary="撤销自己交办的事项（不计分）",
         usage="撤销 事项编号 [理由]", example="撤销 DB-2026-0042 已并入全县安全生产大检查")
def cancel(ctx: Context, args: str) -> None:
    task, reason = open_task(ctx, args, "撤销", require_assigner)
    task.status, task.closed_at, task.next_check_at = TaskStatus.CANCELLED, ctx.now, None
    changed(ctx, task, "cancelled", reason=reason)
    unit = ctx.session.get(Unit, task.lead_unit_id)
    ctx.notify_user(unit.head_user_id, "task_cancelled_dm", task_id=task.id, task=task, reason=reason)
    ctx.reply("task_cancelled", task=task, unit=unit)
