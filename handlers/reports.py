"""Bulletins on request: 通报 (the monthly bulletin, now). 台账 导出 is 台账's, in handlers/queries.py."""

from __future__ import annotations

from handlers.registry import Context, command
from reminders.reports import issue_monthly
from storage.models import Role


@command("通报", roles=frozenset({Role.SUPERVISOR}), aliases=("bulletin",), summary="立即发出上月督办通报和积分图",
         usage="通报", example="通报")
def bulletin(ctx: Context, args: str) -> None:
    reply = issue_monthly(ctx.session, ctx.now, ctx.services.settings, ctx.services.calendar, force=True,
                          actor=ctx.sender.user_id)
    ctx.replies.append(reply)  # the sender sees exactly what the all-units group gets
