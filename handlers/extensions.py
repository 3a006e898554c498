"""第八条 extensions: 延期 (the unit applies before the deadline), 同意延期 / 驳回延期 (by colour)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from handlers.deadlines import DeadlineError, parse_deadline
from handlers.parsing import require_task, split_first
from handlers.permissions import APPROVER_FOR, require_approver, require_own_unit
from handlers.registry import APPROVERS, UNIT_STAFF, Context, UserError, command
from handlers.tasks import open_task, require_open, settle
from message_templates.render import render
from message_templates.reply import Action
from storage import audit, queries
from storage.models import (
    OPEN_STATUSES,
    ExtensionRequest,
    ExtensionStatus,
    Person,
    Role,
    Task,
    TaskStatus,
    Unit,
)
from storage.outbox import enqueue


def pending_request(ctx: Context, task: Task) -> ExtensionRequest | None:
    return ctx.session.exec(select(ExtensionRequest).where(
        ExtensionRequest.task_id == task.id, ExtensionRequest.status == ExtensionStatus.PENDING)).first()


@command("延期", roles=UNIT_STAFF, aliases=("extend",), summary="期限内申请延期，须写明新期限和理由",
         usage="延期 事项编号 新期限 理由", example="延期 DB-2026-0042 12月20日 乡镇管网图纸未移交，需补测")
def request_extension(ctx: Context, args: str) -> None:
    task, rest = open_task(ctx, args, "延期", require_own_unit)
    if ctx.now >= task.deadline:  # 第八条: 应在规定完成时限内 … 申请延期
        raise UserError("extension_late", code=task.code, deadline=task.deadline)
    if pending_request(ctx, task):
        raise UserError("extension_pending", code=task.code)
    when, reason = split_first(rest)
    if not when:
        raise UserError("extension_usage", code=task.code)
    try:
        new = parse_deadline(when, ctx.now, ctx.services.calendar, ctx.rules)
    except DeadlineError as exc:
        raise UserError(f"deadline_{exc.kind}", expression=exc.expression) from exc
    if new.at <= task.deadline:
        raise UserError("extension_not_later", code=task.code, deadline=task.deadline)
    if not reason:
        raise UserError("reason_required", command="延期", code=task.code)
    request = ExtensionRequest(task_id=task.id, requester_id=ctx.sender.user_id, requested_at=ctx.now,
                               new_deadline=new.at, reason=reason)
    ctx.session.add(request)
    ctx.session.flush()
    approver = queries.first_with_role(ctx.session, APPROVER_FOR[queries.task_colour(ctx.session, task.id)])
    unit = ctx.session.get(Unit, task.lead_unit_id)
    ctx.notify_user(approver.user_id if approver else None, "extension_requested_dm", task_id=task.id,
                    actions=_decide_actions(task), task=task, unit=unit, request=request, requester=ctx.sender,
                    previous=None)
    ctx.audit("extension_requested", task.id, new_deadline=new.at, reason=reason)
    ctx.services.escalation.refresh_cards(ctx.session, task, ctx.now)  # no second 申请延期 while this one waits
    ctx.reply("extension_requested", task=task, request=request, approver=approver, moved_from=new.moved_from)


def _decide_actions(task: Task) -> tuple[Action, ...]:
    return Action("同意", f"同意延期 {task.code}"), Action("驳回", f"驳回延期 {task.code} ")


def approvers(session: Session) -> dict[Role, str | None]:
    """Who holds each approving role now (by user id): taken before and after a roster change."""
    return {role: (p.user_id if (p := queries.first_with_role(session, role)) else None)
            for role in set(APPROVER_FOR.values())}


def move_extension_requests(session: Session, before: dict[Role, str | None],
                            now: datetime) -> list[tuple[ExtensionRequest, Task, Person]]:
    """After a roster change: a waiting 延期 request whose approving role changed hands is sent to the
    new holder (the old one could no longer decide it, and the unit would wait past its deadline)."""
    moved = []
    waiting = session.exec(select(ExtensionRequest, Task).join(Task, Task.id == ExtensionRequest.task_id).where(
        ExtensionRequest.status == ExtensionStatus.PENDING, Task.status.in_(OPEN_STATUSES))
        .order_by(ExtensionRequest.id))
    for request, task in list(waiting):
        role = APPROVER_FOR[queries.task_colour(session, task.id)]
        new = queries.first_with_role(session, role)
        if new is None or new.user_id == before.get(role):
            continue
        previous = queries.person(session, before[role] or "") if before.get(role) else None
        reply = render("extension_requested_dm", actions=_decide_actions(task), now=now, task=task,
                       unit=session.get(Unit, task.lead_unit_id), request=request, previous=previous,
                       requester=queries.person(session, request.requester_id))
        enqueue(session, reply, target="user", recipient=new.user_id, deliver_after=now, now=now, task_id=task.id)
        audit.record(session, at=now, actor=audit.SYSTEM, action="extension_approver_changed", task_id=task.id,
                     old=before.get(role), new=new.user_id, new_name=new.name)
        moved.append((request, task, new))
    return moved


def _decide(ctx: Context, args: str, command_word: str) -> tuple[Task, ExtensionRequest, str]:
    task, note = require_task(ctx.session, args, command_word)
    require_open(task)
    request = pending_request(ctx, task)
    if request is None:
        raise UserError("no_pending_extension", code=task.code)
    if request.requester_id == ctx.sender.user_id:
        raise UserError("own_extension", code=task.code)
    require_approver(ctx, task)
    return task, request, note


@command("同意延期", roles=APPROVERS, aliases=("approve",), summary="同意单位的延期申请，按新期限重新计时",
         usage="同意延期 事项编号", example="同意延期 DB-2026-0042")
def approve_extension(ctx: Context, args: str) -> None:
    task, request, note = _decide(ctx, args, "同意延期")
    if request.new_deadline <= ctx.now:
        raise UserError("extension_expired", code=task.code, deadline=request.new_deadline)
    request.status, request.decided_by, request.decided_at = ExtensionStatus.APPROVED, ctx.sender.user_id, ctx.now
    request.decision_note = note
    old = task.deadline
    task.deadline, task.cycle, task.cycle_started_at = request.new_deadline, task.cycle + 1, ctx.now
    task.deadline_is_estimate = ctx.services.calendar.is_estimate(request.new_deadline.date())
    if task.status is TaskStatus.REPORTED_DONE:
        task.status = TaskStatus.IN_PROGRESS
    ctx.session.add_all([request, task])
    settle(ctx, task)  # drafts of the old clock become void; the new clock starts
    ctx.audit("extension_approved", task.id, old_deadline=old, new_deadline=task.deadline, note=note)
    unit = ctx.session.get(Unit, task.lead_unit_id)
    ctx.notify_user(request.requester_id, "extension_approved_dm", task_id=task.id, task=task, old=old,
                    approver=ctx.sender)
    if unit.head_user_id != request.requester_id:
        ctx.notify_user(unit.head_user_id, "extension_approved_dm", task_id=task.id, task=task, old=old,
                        approver=ctx.sender)
    ctx.reply("extension_approved", task=task, old=old, unit=unit)


@command("驳回延期", roles=APPROVERS, aliases=("deny",), summary="驳回延期申请，须写明理由",
         usage="驳回延期 事项编号 理由", example="驳回延期 DB-2026-0042 图纸可向县自然资源局调取，请按期办结")
def reject_extension(ctx: Context, args: str) -> None:
    task, request, reason = _decide(ctx, args, "驳回延期")
    if not reason:
        raise UserError("reason_required", command="驳回延期", code=task.code)
    request.status, request.decided_by, request.decided_at = ExtensionStatus.REJECTED, ctx.sender.user_id, ctx.now
    request.decision_note = reason
    ctx.session.add(request)
    ctx.audit("extension_rejected", task.id, reason=reason)
    ctx.services.escalation.refresh_cards(ctx.session, task, ctx.now)
    ctx.notify_user(request.requester_id, "extension_rejected_dm", task_id=task.id, task=task, reason=reason,
                    approver=ctx.sender)
    ctx.reply("extension_rejected", task=task)

