"""The tables. The database is the bot's only memory: schedules, deliveries and history live here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import AwareDateTime


def _at(nullable: bool = False, index: bool = False) -> Column:
    return Column(AwareDateTime(), nullable=nullable, index=index)


def _empty_list() -> list:
    """`default_factory=_empty_list` made every row cost two inspect.signature(list) calls (pydantic parses
    the builtin's text signature, ~0.2 ms each): an Outbox row took 0.7 ms to construct."""
    return []


class Role(StrEnum):
    COUNTY_HEAD = "county_head"  # 县长: signs red, approves extensions at red
    EXECUTIVE_DEPUTY = "executive_deputy"  # 常务副县长: signs yellow, approves at yellow
    DEPUTY = "deputy"  # 副县长
    OFFICE_DIRECTOR = "office_director"  # 县政府办主任: approves extensions before yellow
    SUPERVISOR = "supervisor"  # 督查室
    UNIT_HEAD = "unit_head"  # 责任单位主要负责人
    LIAISON = "liaison"  # 联络员


class TaskStatus(StrEnum):
    ASSIGNED = "assigned"  # 待签收
    IN_PROGRESS = "in_progress"  # 办理中
    REPORTED_DONE = "reported_done"  # 待销号
    CLOSED = "closed"  # 已销号
    CANCELLED = "cancelled"  # 已撤销


OPEN_STATUSES = (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS, TaskStatus.REPORTED_DONE)


class NoticeKind(StrEnum):
    ACK_REMINDER = "ack_reminder"  # 签收提醒
    COURTESY = "courtesy"  # 临期提醒
    REPORT_REMINDER = "report_reminder"  # 定期进展提醒
    BLUE = "blue"
    YELLOW = "yellow"
    RED = "red"
    SIGN_REMINDER = "sign_reminder"  # 签发提醒 to a signer whose draft waits
    DEPLOY_REMINDER = "deploy_reminder"  # 布置落实提醒: no 部署 stated after 签收
    MONTH_REMINDER = "month_reminder"  # 每月报送: a plan, progress or results missing
    HARD_REMINDER = "hard_reminder"  # 难以执行 not answered in time: to the 督查室


COLOURS = (NoticeKind.BLUE, NoticeKind.YELLOW, NoticeKind.RED)


def highest_colour(kinds: Iterable[NoticeKind]) -> NoticeKind | None:
    """The highest colour among `kinds` (red over yellow over blue), or None when there is none."""
    kinds = set(kinds)
    return next((k for k in reversed(COLOURS) if k in kinds), None)


class NoticeStatus(StrEnum):
    DRAFT = "draft"  # 待签发
    HELD = "held"  # 暂缓
    ISSUED = "issued"
    VOID = "void"  # the task was closed or extended before the draft was signed


class ExtensionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


class Unit(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)  # 县住建局
    aliases: list[str] = Field(default_factory=_empty_list, sa_column=Column(JSON, nullable=False))
    head_user_id: str | None = None
    active: bool = True  # False once it left the roster: kept for its tasks' history, never assigned


class Person(SQLModel, table=True):
    user_id: str = Field(primary_key=True)  # DingTalk userId
    name: str
    title: str = ""
    role: Role
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    active: bool = True  # False once they left the roster: a stranger to the bot, kept as a name in history
    union_id: str | None = None  # DingTalk unionId (topapi/v2/user/get): whose 待办 list a task goes to


class ChatGroup(SQLModel, table=True):
    key: str = Field(primary_key=True)  # leaders / all_units / …
    name: str
    conversation_id: str = Field(unique=True)  # openConversationId


class CodeCounter(SQLModel, table=True):
    """Allocates DB-2026-0042 style codes: one row per (prefix, year), bumped atomically."""

    prefix: str = Field(primary_key=True)
    year: int = Field(primary_key=True)
    last: int = 0


class Task(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True)
    title: str
    lead_unit_id: int = Field(foreign_key="unit.id", index=True)
    co_unit_ids: list[int] = Field(default_factory=_empty_list, sa_column=Column(JSON, nullable=False))
    category: str = "其他"
    urgent: bool = False
    assigner_id: str = Field(foreign_key="person.user_id")
    conversation_id: str = ""  # where it was assigned; its confirmations and notices go there
    assigned_at: datetime = Field(sa_column=_at())
    original_deadline: datetime = Field(sa_column=_at())
    deadline: datetime = Field(sa_column=_at())  # current D, after any approved extension
    deadline_is_estimate: bool = False
    cycle: int = 0  # bumped by each approved extension: the escalation clock restarts
    cycle_started_at: datetime = Field(sa_column=_at())  # assignment, or the last approved extension
    status: TaskStatus = Field(default=TaskStatus.ASSIGNED, index=True)
    acknowledged_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    last_progress_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    progress_percent: int | None = None
    report_every_days: int | None = None  # periodic progress duty, if any
    monthly_report: bool = False  # 每月报送: 月初有计划、月中有进展、月底有成效 (华容 措施九)
    deployed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))  # 部署 stated (布置落实)
    deploy_plan: str = ""
    reported_done_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    next_check_at: datetime | None = Field(default=None, sa_column=_at(nullable=True, index=True))


class ProgressReport(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    author_id: str
    at: datetime = Field(sa_column=_at())
    text: str
    percent: int | None = None
    final: bool = False  # the 办结 summary


class ExtensionRequest(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    requester_id: str
    requested_at: datetime = Field(sa_column=_at())
    new_deadline: datetime = Field(sa_column=_at())
    reason: str
    status: ExtensionStatus = ExtensionStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    decision_note: str = ""


class HardReport(SQLModel, table=True):
    """难以执行反馈 (湖北 (六)): a unit says a task is hard to carry out; the assigner or the 督查室 answers
    继续执行 / 暂缓执行 / 调整要求 by `answer_due_at`. The task's own clock keeps running meanwhile."""

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    reporter_id: str
    reported_at: datetime = Field(sa_column=_at())
    reason: str
    answer_due_at: datetime = Field(sa_column=_at())
    answer: str | None = None  # continue / postpone / adjust; None while waiting
    answered_by: str | None = None
    answered_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    note: str = ""
    new_deadline: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class Notice(SQLModel, table=True):
    """Everything the schedule sends: reminders and the 三色督办单. One row per (task, kind, seq)."""

    __table_args__ = (UniqueConstraint("task_id", "kind", "seq", name="uq_notice_task_kind_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True)  # DB-2026-0042-Y1
    task_id: int = Field(foreign_key="task.id", index=True)
    kind: NoticeKind
    seq: int  # 1, 2, … per task and kind, across cycles
    cycle: int  # the task's cycle when it fell due
    ref_notice_id: int | None = None  # sign reminders: the draft they are about
    status: NoticeStatus
    due_at: datetime = Field(sa_column=_at())  # when the rules made it due (before working hours)
    created_at: datetime = Field(sa_column=_at())  # drafted, or issued at once
    issued_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    signer_id: str | None = None
    signed_by: str | None = None
    hold_reason: str = ""
    deadline_at_issue: datetime = Field(sa_column=_at())


class ScoreEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    task_id: int = Field(foreign_key="task.id")
    notice_id: int = Field(foreign_key="notice.id", unique=True)
    year: int = Field(index=True)
    points: int
    at: datetime = Field(sa_column=_at())


class Outbox(SQLModel, table=True):
    """A message to deliver. Written in the same transaction as the change that caused it."""

    __table_args__ = (Index("ix_outbox_due", "status", "deliver_after"),)

    id: int | None = Field(default=None, primary_key=True)
    target: str  # "user" or "group"
    recipient: str  # a userId, or an openConversationId
    at_user_ids: list[str] = Field(default_factory=_empty_list, sa_column=Column(JSON, nullable=False))
    title: str
    text: str  # DingTalk markdown
    actions: list[list[str]] = Field(default_factory=_empty_list, sa_column=Column(JSON, nullable=False))
    image_path: str | None = None
    file_path: str | None = None
    deliver_after: datetime = Field(sa_column=_at())
    created_at: datetime = Field(sa_column=_at())
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    claimed_until: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    claimed_by: str | None = None
    last_error: str = ""
    sent_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    task_id: int | None = Field(default=None, index=True)
    notice_id: int | None = Field(default=None, index=True)  # who got a notice (the 台账's read status)
    # interactive cards (storage/cards.py): what the card shows ("t.42": task 42 for its unit), the
    # card's outTrackId, and whether this row only updates that card in place
    card_key: str | None = Field(default=None, index=True)
    card_id: str | None = None
    card_update: bool = False
    # a chat message even when cards are on: a colour notice to a unit's head, because DingTalk reports
    # read status (processQueryKey) for robot messages and never for cards; the task's card beside it
    # is updated in place
    plain: bool = False

    # a DING, not a chat message: 1 in-app, 2 SMS, 3 phone (robot/ding/send remindType)
    ding_remind_type: int | None = None
    # what DingTalk answered to ask who read it: processQueryKey, or openDingId for a DING
    receipt_key: str | None = None


class PendingQuestion(SQLModel, table=True):
    """A card button that needs words (汇报进展, 申请延期 …) was tapped: the bot asked, and this
    person's next message in this chat, within minutes, is the rest of `command`."""

    user_id: str = Field(primary_key=True)
    conversation_id: str = Field(primary_key=True)  # "" for the one-to-one chat with the robot
    command: str  # the command so far: "进展 DB-2026-0042"
    asked_at: datetime = Field(sa_column=_at())


class ReadWatch(SQLModel, table=True):
    """A sent colour notice whose readers we still ask DingTalk about (storage/receipts.py)."""

    outbox_id: int = Field(primary_key=True, foreign_key="outbox.id")
    channel: str  # "user" (oToMessages/readStatus), "group" (groupMessages/query) or "ding"
    sent_at: datetime = Field(sa_column=_at())
    next_poll_at: datetime = Field(sa_column=_at())
    polls: int = 0
    done: bool = Field(default=False, index=True)


class ReadReceipt(SQLModel, table=True):
    """Evidence that a person read a notice: inserted once, never updated."""

    __table_args__ = (UniqueConstraint("outbox_id", "user_id", name="uq_readreceipt_outbox_user"),)

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", index=True)
    notice_id: int | None = Field(default=None, index=True)
    user_id: str
    read_at: datetime = Field(sa_column=_at())
    # True: DingTalk's own read time (one-to-one); False: the poll that first saw it (groups, DING)
    exact: bool
    recorded_at: datetime = Field(sa_column=_at())


class Undeliverable(SQLModel, table=True):
    """A person DingTalk refused to deliver to (invalidStaffIdList): the 督查室 is told once."""

    user_id: str = Field(primary_key=True)
    first_at: datetime = Field(sa_column=_at())
    last_at: datetime = Field(sa_column=_at())
    rows: int = 0


class TodoLink(SQLModel, table=True):
    """A task's DingTalk 待办 in one person's list (the lead unit's head; its liaisons too when
    DUBAN_DINGTALK_TODO_LIAISONS is on), as last synced (bot/todo_job.py). One who no longer holds
    the task (改派 to another unit, a new head on the roster) keeps the row, with the 待办 closed."""

    task_id: int = Field(primary_key=True, foreign_key="task.id")
    union_id: str = Field(primary_key=True)  # the owner and executor
    user_id: str = ""  # the owner's userId: whom a tick prompts
    todo_id: str | None = None  # DingTalk's id; None until created, or found again by sourceId
    synced_due: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    synced_done: bool = False
    synced_subject: str | None = None  # None: the subject it was created with
    ticked_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))  # owner ticked it done
    next_check_at: datetime = Field(sa_column=_at())


class StaleCard(SQLModel, table=True):
    """A task whose cards may no longer say what is current: written in the transaction that changed
    it, and taken by the sender, which renders the cards then (reminders/card_updates.py). A burst of
    changes to one task is one row, so one render a card instead of one a change."""

    task_id: int = Field(primary_key=True, foreign_key="task.id")
    since: datetime = Field(sa_column=_at())  # the first change not yet shown, for the order they are taken in
    # cards made in the transaction of the latest change: they already say what it did
    fresh: list[str] = Field(default_factory=_empty_list, sa_column=Column(JSON, nullable=False))


class ProcessedMessage(SQLModel, table=True):
    """Inbound DingTalk msgIds already acted on: a redelivered message changes nothing twice. The
    command's replies are kept with it, in its transaction, until they went out: a redelivered
    message whose reply was lost (the process died, or no route would take it) is answered then."""

    msg_id: str = Field(primary_key=True)
    at: datetime = Field(sa_column=_at())
    # the rendered replies (title, text, at_user_ids, actions, file_path); None on rows from
    # before replies were kept, which count as answered
    replies: list[dict] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    replied_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class AuditEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    task_id: int | None = Field(default=None, index=True)
    at: datetime = Field(sa_column=_at())
    actor_id: str  # a userId, or "system"
    action: str
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
