"""看板: a personal, single-use sign-in link to the 督查室 dashboard, sent as a direct message.

Leaders and the 督查室 ask for their own link. The 督查室 may also send one to a unit's head
(`看板 县住建局`): that person sees their own unit only (the dashboard scopes by the role of whoever
signs in, not by the link). The link goes through the outbox like every DM; the token in it is
stored only as a hash, works once, and expires in a quarter of an hour.
"""

from __future__ import annotations

from handlers.parsing import find_unit, unit_names
from handlers.registry import LEADERS, Context, UserError, command
from storage import queries
from storage.dashboard import LINK_LIFETIME, issue_link
from storage.models import Role

SIGNIN_PATH = "/board/signin"


@command("看板", roles=LEADERS | {Role.SUPERVISOR}, aliases=("dashboard",),
         summary="私信发送督查看板的登录链接（一次有效）", usage="看板｜看板 单位（督查室发给该单位负责人）",
         example="看板")
def dashboard(ctx: Context, args: str) -> None:
    person = ctx.sender
    if args:
        if ctx.sender.role is not Role.SUPERVISOR:
            raise UserError("dashboard_others")
        unit = find_unit(ctx.session, args)
        if unit is None:
            raise UserError("unknown_unit", word=args, units=unit_names(ctx.session))
        person = queries.unit_head(ctx.session, unit)
        if person is None or queries.member(ctx.session, person.user_id) is None:
            raise UserError("dashboard_no_head", unit=unit.name)
    token = issue_link(ctx.session, person.user_id, ctx.now)
    base = ctx.services.settings.dashboard_url.rstrip("/")
    minutes = int(LINK_LIFETIME.total_seconds() // 60)
    ctx.notify_user(person.user_id, "dashboard_link", url=f"{base}{SIGNIN_PATH}?t={token}", minutes=minutes,
                    sender=ctx.sender, own=person.user_id == ctx.sender.user_id)
    ctx.audit("dashboard_link", user=person.user_id)
    ctx.reply("dashboard_sent", person=person, own=person.user_id == ctx.sender.user_id, minutes=minutes)
