"""Questions people ask: 台账, 我的, 查询, 积分, 帮助. They read; they never change anything."""

from __future__ import annotations

import re
from datetime import timedelta
from difflib import SequenceMatcher

from sqlmodel import select

from handlers.parsing import find_unit, require_task, split_first, unit_names
from handlers.registry import (
    EVERYONE,
    STRANGERS_TOO,
    Context,
    UserError,
    command,
    lookup,
    may_use,
    primary_commands,
)
from message_templates.reply import Reply
from reminders.engine import notice_state, task_state
from reminders.ledger import ledger_rows, unit_scores
from reminders.ledger_export import forget_sent_ledgers, ledger_file, write_ledger
from storage import report_queries
from storage.models import (
    OPEN_STATUSES,
    AuditEvent,
    Notice,
    NoticeKind,
    Person,
    Task,
    Unit,
)

COLOUR_WORDS = {"蓝": NoticeKind.BLUE, "蓝色": NoticeKind.BLUE, "黄": NoticeKind.YELLOW, "黄色": NoticeKind.YELLOW,
                "红": NoticeKind.RED, "红色": NoticeKind.RED}
LEDGER_LIMIT = 30


@command("台账", roles=EVERYONE, aliases=("ledger",), mutates=False, summary="查看在办事项台账，可按单位、颜色、逾期筛选，或导出Excel",
         usage="台账 [单位] [蓝/黄/红] [逾期]｜台账 导出", example="台账 县住建局 红")
def ledger(ctx: Context, args: str) -> None:
    if split_first(args)[0] == "导出":
        export_ledger(ctx)
        return
    unit, colour, overdue_only = None, None, False
    for word in args.split():
        if word in COLOUR_WORDS:
            colour = COLOUR_WORDS[word]
        elif word == "逾期":
            overdue_only = True
        elif (found := find_unit(ctx.session, word)) is not None:
            unit = found
        else:
            raise UserError("ledger_filter", word=word, units=unit_names(ctx.session))
    query = select(Task).where(Task.status.in_(OPEN_STATUSES)).order_by(Task.deadline)
    if unit:
        query = query.where(Task.lead_unit_id == unit.id)
    tasks = list(ctx.session.exec(query))
    if colour:
        colours = report_queries.issued_colours(ctx.session, [t.id for t in tasks])
        tasks = [t for t in tasks if colours.get(t.id) is colour]
    if overdue_only:
        tasks = [t for t in tasks if ctx.now > t.deadline]
    ctx.reply("ledger", rows=ledger_rows(ctx.session, ctx.now, tasks[:LEDGER_LIMIT]), total=len(tasks), unit=unit,
              colour=colour, overdue_only=overdue_only, limit=LEDGER_LIMIT)  # rows built only for those listed


def export_ledger(ctx: Context) -> None:
    """台账 导出: the open-task 台账 as the reply, and the Excel file once, as a direct message to the
    sender through the outbox (durable, and a session webhook cannot carry a file). In a one-to-one
    chat both land in the same window: the file is not attached to the reply too."""
    out = ledger_file(ctx.services.settings.reports_dir, ctx.now)
    forget_sent_ledgers(ctx.session, out.parent.parent, ctx.now)
    write_ledger(ctx.session, ctx.now, out)
    tasks = list(ctx.session.exec(select(Task).where(Task.status.in_(OPEN_STATUSES)).order_by(Task.deadline)))
    ctx.reply("ledger", rows=ledger_rows(ctx.session, ctx.now, tasks[:LEDGER_LIMIT]), total=len(tasks), unit=None, colour=None, overdue_only=False,
              limit=LEDGER_LIMIT, exported=True)
    ctx.send(ctx.sender.user_id, Reply(title=out.stem, text="", file_path=str(out)))


@command("我的", roles=EVERYONE, aliases=("mine",), mutates=False, summary="本单位（或我交办）的在办事项",
         usage="我的", example="我的")
def mine(ctx: Context, args: str) -> None:
    query = select(Task).where(Task.status.in_(OPEN_STATUSES)).order_by(Task.deadline)
    if ctx.sender.unit_id is not None:
        query = query.where(Task.lead_unit_id == ctx.sender.unit_id)
    else:
        query = query.where(Task.assigner_id == ctx.sender.user_id)
    tasks = list(ctx.session.exec(query))
    ctx.reply("mine", rows=ledger_rows(ctx.session, ctx.now, tasks[:LEDGER_LIMIT]), total=len(tasks), limit=LEDGER_LIMIT,
              unit=ctx.session.get(Unit, ctx.sender.unit_id) if ctx.sender.unit_id else None)


@command("查询", roles=EVERYONE, aliases=("show",), mutates=False, summary="查看一个事项的全部经过",
         usage="查询 事项编号", example="查询 DB-2026-0042")
def show(ctx: Context, args: str) -> None:
    task, _ = require_task(ctx.session, args, "查询", lock=False)
    events = list(ctx.session.exec(select(AuditEvent).where(AuditEvent.task_id == task.id)
                                   .order_by(AuditEvent.at, AuditEvent.id)))
    names = {p.user_id: p.name for p in ctx.session.exec(select(Person))}
    names["system"] = "督办助手"
    row = ledger_rows(ctx.session, ctx.now, [task])[0]
    ctx.reply("task_history", events=events, names=names, **row)


WARNING_DAYS = 3
WARNING = re.compile(r"^(\d{1,2})\s*天?$")


@command("预警", roles=EVERYONE, aliases=("forecast",), mutates=False,
         summary="预先看哪些事项将在N天内变蓝、变黄、变红", usage="预警 [天数]", example="预警 7天")
def forecast(ctx: Context, args: str) -> None:
    days = WARNING_DAYS
    if args:
        m = WARNING.match(args.strip())
        if m is None or not 1 <= int(m[1]) <= 60:
            raise UserError("forecast_days", word=args)
        days = int(m[1])
    until = ctx.now + timedelta(days=days)
    policy = ctx.services.escalation.policy
    query = select(Task).where(Task.status.in_(OPEN_STATUSES)).order_by(Task.deadline)
    if ctx.sender.unit_id is not None:  # a unit sees its own; leaders and the office see all
        query = query.where(Task.lead_unit_id == ctx.sender.unit_id)
    rows = []
    for task in ctx.session.exec(query):
        notices = ctx.session.exec(select(Notice).where(Notice.task_id == task.id)).all()
        for due in policy.upcoming(task_state(task), [notice_state(n) for n in notices], ctx.now, until):
            rows.append({"task": task, "unit": ctx.session.get(Unit, task.lead_unit_id), "due": due})
    rows.sort(key=lambda r: r["due"].send_at)
    ctx.reply("forecast", rows=rows[:LEDGER_LIMIT], total=len(rows), days=days, limit=LEDGER_LIMIT)


@command("积分", roles=EVERYONE, aliases=("score",), mutates=False, summary="本年度各单位督办扣分",
         usage="积分 [单位]", example="积分 县住建局")
def scores(ctx: Context, args: str) -> None:
    rows = unit_scores(ctx.session, ctx.now.year)
    if args:
        unit = find_unit(ctx.session, args)
        if unit is None:
            raise UserError("unknown_unit", word=args, units=unit_names(ctx.session))
        rows = [r for r in rows if r["unit"].id == unit.id]
    ctx.reply("scores", rows=rows, year=ctx.now.year)


@command("帮助", roles=STRANGERS_TOO, aliases=("help", "?", "？"), mutates=False, summary="查看可用命令和示例",
         usage="帮助 [命令]", example="帮助 交办")
def help_(ctx: Context, args: str) -> None:
    word = split_first(args)[0]
    if word:
        cmd = lookup(word)
        if cmd is None:
            raise UserError("unknown_command", word=word, suggestion=suggest(word))
        ctx.reply("help_command", cmd=cmd)
        return
    usable = [c for c in primary_commands() if may_use(c, ctx.sender)]
    ctx.reply("help", commands=usable, known=ctx.sender is not None)


# Words clerks use for a command that share no character with it (or one with the wrong command).
SYNONYMS = {"汇报": "进展", "报送": "进展", "完成": "办结", "批准": "同意延期", "不同意": "驳回延期", "拒绝": "驳回延期"}


def suggest(word: str) -> str | None:
    """The nearest command for the unknown-command reply: 签手 → 签收, 转办 → 交办, assgin → 交办.

    English aliases count, a command glued to its text (签收DB-2026-1) is that command, and between
    equally near commands the one sharing characters in the same places wins (转办: 交办, not 办结).
    """
    low = word.lower()
    for start, name in SYNONYMS.items():
        if low.startswith(start):
            return name
    names = [c.name for c in primary_commands()]
    words = {w.lower(): c.name for c in primary_commands() for w in (c.name, *c.aliases)}
    glued = [w for w in words if len(w) >= 2 and low.startswith(w)]
    if glued:
        return words[max(glued, key=len)]

    def nearness(w: str) -> tuple[float, int]:
        in_place = sum(a == b for a, b in zip(low, w, strict=False))
        in_place += sum(a == b for a, b in zip(low[::-1], w[::-1], strict=False))
        return SequenceMatcher(None, low, w).ratio(), in_place

    nearest = max(words, key=nearness)
    if nearness(nearest)[0] >= (0.6 if low.isascii() else 0.4):  # one letter in common is no hint
        return words[nearest]
    same_start = [n for n in names if n[0] == word[:1] or n.endswith(word[-1:])]
    return same_start[0] if len(same_start) == 1 else None
