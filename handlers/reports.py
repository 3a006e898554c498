"""Bulletins on request: 通报 (the monthly bulletin, now) and 台账 导出 (the Excel 台账)."""

from __future__ import annotations

from sqlmodel import select

from bot.channel import Reply
from handlers.queries import LEDGER_LIMIT, ledger_rows
from handlers.registry import Context, command
from reminders.ledger_export import forget_sent_ledgers, ledger_file, write_ledger
from reminders.reports import issue_monthly
from storage.models import OPEN_STATUSES, Role, Task


@command("通报", roles=frozenset({Role.SUPERVISOR}), aliases=("bulletin",), summary="立即发出上月督办通报和积分图",
         usage="通报", example="通报")
def bulletin(ctx: Context, args: str) -> None:
    reply = issue_monthly(ctx.session, ctx.now, ctx.services.settings, ctx.services.calendar, force=True,
                          actor=ctx.sender.user_id)
    ctx.replies.append(reply)  # the sender sees exactly what the all-units group gets


def export_ledger(ctx: Context) -> None:
    """台账 导出: the open-task 台账 as the reply, and the Excel file once, as a direct message to the
    sender through the outbox (durable, and a session webhook cannot carry a file). In a one-to-one
    chat both land in the same window: the file is not attached to the reply too."""
    out = ledger_file(ctx.services.settings.reports_dir, ctx.now)
    forget_sent_ledgers(ctx.session, out.parent.parent, ctx.now)
    write_ledger(ctx, out)
    rows = ledger_rows(ctx, list(ctx.session.exec(
        select(Task).where(Task.status.in_(OPEN_STATUSES)).order_by(Task.deadline))))
    ctx.reply("ledger", rows=rows[:LEDGER_LIMIT], total=len(rows), unit=None, colour=None, overdue_only=False,
              limit=LEDGER_LIMIT, exported=True)
    ctx.send(ctx.sender.user_id, Reply(title=out.stem, text="", file_path=str(out)))
