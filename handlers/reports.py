"""Bulletins on request: 通报 (the monthly bulletin, now) and 台账 导出 (the Excel 台账)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from sqlmodel import select

from bot.render import render
from handlers.queries import LEDGER_LIMIT, ledger_rows
from handlers.registry import Context, command
from reminders.ledger_export import write_ledger
from reminders.reports import issue_monthly
from storage.models import OPEN_STATUSES, Role, Task


@command("通报", roles=frozenset({Role.SUPERVISOR}), aliases=("bulletin",), summary="立即发出上月督办通报和积分图",
         usage="通报", example="通报")
def bulletin(ctx: Context, args: str) -> None:
    reply = issue_monthly(ctx.session, ctx.now, ctx.services.settings, ctx.services.calendar, force=True,
                          actor=ctx.sender.user_id)
    ctx.replies.append(reply)  # the sender sees exactly what the all-units group gets


def export_ledger(ctx: Context) -> None:
    """台账 导出: the open-task 台账 as the reply, with the Excel file attached, and the same
    message through the outbox so the sender also gets the file as a DingTalk direct message."""
    out = Path(tempfile.mkdtemp(prefix="duban-ledger-")) / f"督办台账-{ctx.now:%Y%m%d-%H%M}.xlsx"
    write_ledger(ctx, out)
    rows = ledger_rows(ctx, list(ctx.session.exec(
        select(Task).where(Task.status.in_(OPEN_STATUSES)).order_by(Task.deadline))))
    reply = render("ledger", rows=rows[:LEDGER_LIMIT], total=len(rows), unit=None, colour=None,
                   overdue_only=False, limit=LEDGER_LIMIT, now=ctx.now)
    reply = replace(reply, file_path=str(out))
    ctx.replies.append(reply)
    ctx.send(ctx.sender.user_id, reply)
