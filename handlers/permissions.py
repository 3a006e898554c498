"""Who may act on which task: the checks that need the task, not just the sender's role."""

from __future__ import annotations

from handlers.registry import Context, UserError
from reminders.notices import SIGNER_ROLE
from storage import queries
from storage.models import Notice, NoticeKind, Role, Task

# 第八条: the approver of an extension follows the task's colour
APPROVER_FOR = {None: Role.OFFICE_DIRECTOR, NoticeKind.BLUE: Role.OFFICE_DIRECTOR,
                NoticeKind.YELLOW: Role.EXECUTIVE_DEPUTY, NoticeKind.RED: Role.COUNTY_HEAD}
RANK = {Role.OFFICE_DIRECTOR: 1, Role.EXECUTIVE_DEPUTY: 2, Role.COUNTY_HEAD: 3}


def require_own_unit(ctx: Context, task: Task) -> None:
    if ctx.sender is None or ctx.sender.unit_id != task.lead_unit_id:
        raise UserError("not_your_unit", code=task.code)


def require_assigner_or_office(ctx: Context, task: Task) -> None:
    if ctx.sender.user_id != task.assigner_id and ctx.sender.role is not Role.SUPERVISOR:
        raise UserError("not_assigner", code=task.code)


def require_assigner(ctx: Context, task: Task) -> None:
    if ctx.sender.user_id != task.assigner_id:
        raise UserError("not_assigner_only", code=task.code)


def require_approver(ctx: Context, task: Task) -> Role:
    needed = APPROVER_FOR[queries.task_colour(ctx.session, task.id)]
    if ctx.sender.role not in RANK or RANK[ctx.sender.role] < RANK[needed]:
        raise UserError("not_approver", code=task.code, needed=needed)
    return needed


def require_signer(ctx: Context, notice: Notice) -> None:
    needed = SIGNER_ROLE[notice.kind]
    if ctx.sender.role not in RANK or RANK[ctx.sender.role] < RANK[needed]:
        raise UserError("not_signer", code=notice.code, needed=needed)

