"""第七条 sign-off: a yellow or red notice is drafted, then 签发 (issued) or 暂缓 (held) by its signer."""

from __future__ import annotations

from sqlmodel import select

from handlers.parsing import require_notice
from handlers.permissions import require_signer
from handlers.registry import SIGNERS, Context, UserError, command
from handlers.tasks import settle
from reminders import notices
from storage import queries
from storage.models import AuditEvent, Notice, NoticeStatus, Role, Unit


def _waiting(ctx: Context, args: str, word: str):
    notice, task, rest = require_notice(ctx.session, args, word)
    if notice.status is NoticeStatus.ISSUED:
        raise UserError("notice_already_issued", code=notice.code, at=notice.issued_at)
    if notice.status is NoticeStatus.VOID:
        raise UserError("notice_void", code=notice.code)
    if notice.kind not in notices.SIGNER_ROLE:
        raise UserError("notice_not_signable", code=notice.code)
    require_signer(ctx, notice)
    return notice, task, rest


def _held_since_sent(ctx: Context, notice: Notice) -> bool:
    """Held after this 签发 reached the bot: its sender could not have seen the hold, so the hold
    stands (a 签发 sent once the hold is known issues the notice, as the hold reply invites)."""
    sent = ctx.incoming.received_at
    if notice.status is not NoticeStatus.HELD or sent is None:
        return False
    holds = ctx.session.exec(select(AuditEvent.at).where(
        AuditEvent.task_id == notice.task_id, AuditEvent.action == "notice_held",
        AuditEvent.detail["notice"].as_string() == notice.code)).all()
    return any(at >= sent for at in holds)


@command("签发", roles=SIGNERS, aliases=("sign",), summary="签发待签的黄色/红色督办单",
         usage="签发 督办单号", example="签发 DB-2026-0042-Y1")
def sign(ctx: Context, args: str) -> None:
    notice, task, _ = _waiting(ctx, args, "签发")
    if _held_since_sent(ctx, notice):
        raise UserError("notice_already_held", code=notice.code)
    notices.issue(ctx.session, task, notice, ctx.now, ctx.services.escalation.policy, signed_by=ctx.sender.user_id)
    settle(ctx, task)  # the next colour counts from this issue time
    ctx.reply("notice_signed", notice=notice, task=task, unit=ctx.session.get(Unit, task.lead_unit_id))


@command("暂缓", roles=SIGNERS, aliases=("hold",), summary="暂缓签发督办单，须写明理由",
         usage="暂缓 督办单号 理由", example="暂缓 DB-2026-0042-Y1 已当面督促，待周五再看")
def hold(ctx: Context, args: str) -> None:
    notice, task, reason = _waiting(ctx, args, "暂缓")
    if notice.status is NoticeStatus.HELD:
        raise UserError("notice_already_held", code=notice.code)
    if not reason:
        raise UserError("reason_required", command="暂缓", code=notice.code)
    notice.status, notice.hold_reason = NoticeStatus.HELD, reason
    ctx.session.add(notice)
    settle(ctx, task)
    ctx.audit("notice_held", task.id, notice=notice.code, reason=reason)
    for office in queries.people_with_role(ctx.session, Role.SUPERVISOR):
        ctx.notify_user(office.user_id, "notice_held_dm", task_id=task.id, notice=notice, task=task,
                        signer=ctx.sender, reason=reason)
    ctx.reply("notice_held", notice=notice, task=task)
