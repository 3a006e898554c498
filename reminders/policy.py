"""The 三色督办单 rules (湘阴县 附件 第三–第九条, SPEC §3) as one pure function. No I/O.

Given a task, the notices it already has, the calendar, the rules and `now`, `evaluate` says which
notices are due now, which waiting drafts are void, and when to look again.

Read it next to the seed:
- 第三条  no deadline given ⇒ 7 working days (applied at assignment, see handlers).
- SPEC §2.2  not acknowledged 1 working day after assignment ⇒ a reminder to the head.
- SPEC §3  1 working day before D ⇒ 临期提醒 (courtesy, no score).
- 第四条  at D, not closed ⇒ 蓝色督办单, issued at once (第七条: sent by the 督查室 as a message).
- 第五条  day 5 after D ⇒ 黄色督办单, drafted for the 常务副县长, issued when signed (第七条).
- 第六条  10 days after the yellow was *issued* ⇒ 红色督办单 drafted for the 县长; then again
          every 5 days after the previous red was issued, "直至该事项督办完成".
- 第八条  an approved extension moves D and restarts the clock (a new cycle); issued notices stay.
- SPEC §3  a draft waiting over 1 working day ⇒ a reminder to its signer, each working day.
- SPEC §3  everything is delivered in working hours: due at night, on a weekend or holiday ⇒
          09:00 of the next working day.
Only 销号 (closed) or 撤销 (cancelled) stops escalation; drafts still waiting then become void.

The duties of the other documents (each off unless the task or the profile asks for it):
- 布置落实 (湖北 (七), 鄂托克前旗 措施8): no 部署 stated N working days after 签收 ⇒ one reminder to
  the head (Rules.deploy_duty, deploy_workdays); no score.
- 每月报送 (华容 措施九 月初有计划、月中有进展、月底有成效): a task with the duty needs a report in each
  window — day 1–5, 6–15, 16–month end; a window that ends with none ⇒ a reminder to the head.
- 难以执行 (湖北 (六)): an answer not given by its due time ⇒ a reminder to the 督查室 and the
  assigner, then each working day until answered. The task's own clock does not stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from reminders.calendar import WorkCalendar
from reminders.rules import DayCounting, Rules
from storage.models import NoticeKind, NoticeStatus, TaskStatus

SIGNED_KINDS = (NoticeKind.YELLOW, NoticeKind.RED)
COLOUR_KINDS = (NoticeKind.BLUE, NoticeKind.YELLOW, NoticeKind.RED)
WAITING = (NoticeStatus.DRAFT, NoticeStatus.HELD)


@dataclass(frozen=True)
class TaskState:
    status: TaskStatus
    assigned_at: datetime
    deadline: datetime  # the current D
    cycle: int
    cycle_started_at: datetime
    acknowledged: bool
    last_progress_at: datetime | None = None
    report_every_days: int | None = None
    acknowledged_at: datetime | None = None
    deployed: bool = False  # 部署 stated
    monthly_report: bool = False  # 每月报送
    progress_times: tuple[datetime, ...] = ()  # every report (进展 / 办结): loaded for 每月报送 only
    hard_answer_due: datetime | None = None  # a 难以执行 report waiting for its answer


@dataclass(frozen=True)
class NoticeState:
    id: int
    kind: NoticeKind
    seq: int
    cycle: int
    status: NoticeStatus
    due_at: datetime
    created_at: datetime
    issued_at: datetime | None = None
    ref_notice_id: int | None = None


@dataclass(frozen=True)
class Due:
    kind: NoticeKind
    seq: int
    cycle: int
    due_at: datetime  # when the rule makes it due
    send_at: datetime  # due_at held to working hours
    draft: bool  # waits for a signature before it is issued
    ref_notice_id: int | None = None


@dataclass(frozen=True)
class Plan:
    due: tuple[Due, ...]  # act now, in this order
    void: tuple[int, ...]  # ids of drafts that must not be issued any more
    next_check_at: datetime | None  # None: nothing will ever fall due again


class Policy:
    def __init__(self, calendar: WorkCalendar, rules: Rules) -> None:
        self.cal = calendar
        self.rules = rules

    # -- time arithmetic -------------------------------------------------------------------------
    def after_days(self, moment: datetime, days: int) -> datetime:
        """`days` later: calendar days by default (第五、六条), working days if so configured."""
        if self.rules.day_counting is DayCounting.CALENDAR:
            return moment + timedelta(days=days)
        return self.after_workdays(moment, days)

    def after_workdays(self, moment: datetime, days: int) -> datetime:
        return datetime.combine(self.cal.add_workdays(moment.date(), days), moment.timetz())

    def send_time(self, moment: datetime) -> datetime:
        return self.cal.working_moment(moment, self.rules.work_start, self.rules.work_end)

    # -- the rules ---------------------------------------------------------------------------------
    def evaluate(self, task: TaskState, notices: Sequence[NoticeState], now: datetime) -> Plan:
        if task.status in (TaskStatus.CLOSED, TaskStatus.CANCELLED):
            return Plan((), tuple(n.id for n in notices if n.status in WAITING), None)

        stale = tuple(n.id for n in notices if n.status in WAITING and n.cycle != task.cycle)
        live = [n for n in notices if n.id not in stale]
        candidates = [c for c in self._candidates(task, live) if c is not None]
        due = tuple(sorted((c for c in candidates if c.send_at <= now), key=lambda c: (c.send_at, c.due_at)))
        future = [c.send_at for c in candidates if c.send_at > now]
        return Plan(due, stale, min(future, default=None))

    def upcoming(self, task: TaskState, notices: Sequence[NoticeState], now: datetime,
                 until: datetime) -> list[Due]:
        """The colour notices that will fall due after `now` and by `until` if nothing changes (预警)."""
        if task.status in (TaskStatus.CLOSED, TaskStatus.CANCELLED):
            return []
        live = [n for n in notices if not (n.status in WAITING and n.cycle != task.cycle)]
        # only _colours makes colour notices: the other candidates would be computed to be dropped
        return sorted((c for c in self._colours(task, live)
                       if c is not None and c.kind in COLOUR_KINDS and now < c.send_at <= until),
                      key=lambda c: c.send_at)

    def _candidates(self, task: TaskState, notices: list[NoticeState]) -> list[Due | None]:
        return [
            self._ack_reminder(task, notices),
            self._courtesy(task, notices),
            self._report_reminder(task, notices),
            self._deploy_reminder(task, notices),
            self._month_reminder(task, notices),
            *self._hard_reminder(task, notices),
            *self._colours(task, notices),
            *self._sign_reminders(task, notices),
        ]

    def _new(self, kind: NoticeKind, task: TaskState, notices: list[NoticeState], due_at: datetime,
             draft: bool = False, ref: int | None = None) -> Due:
        seq = 1 + max((n.seq for n in notices if n.kind is kind), default=0)
        return Due(kind, seq, task.cycle, due_at, self.send_time(due_at), draft, ref)

    def _ack_reminder(self, task: TaskState, notices: list[NoticeState]) -> Due | None:
        if task.acknowledged or task.status is not TaskStatus.ASSIGNED or _has(notices, NoticeKind.ACK_REMINDER):
            return None
        due_at = self.after_workdays(task.assigned_at, self.rules.ack_reminder_workdays)
        return self._new(NoticeKind.ACK_REMINDER, task, notices, due_at)

    def _courtesy(self, task: TaskState, notices: list[NoticeState]) -> Due | None:
        if task.status not in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS):
            return None
        if _has(notices, NoticeKind.COURTESY, task.cycle) or _has(notices, NoticeKind.BLUE, task.cycle):
            return None
        day = task.deadline.date()
        for _ in range(self.rules.courtesy_workdays_before):
            day = self.cal.previous_workday(day)
        due_at = datetime.combine(day, self.rules.work_start, tzinfo=task.deadline.tzinfo)
        # no "due tomorrow" ping for a task given less time than that, or once D has passed
        if due_at <= task.cycle_started_at or self.send_time(due_at) >= task.deadline:
            return None
        return self._new(NoticeKind.COURTESY, task, notices, due_at)

    def _report_reminder(self, task: TaskState, notices: list[NoticeState]) -> Due | None:
        every = task.report_every_days
        if not every or task.status not in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS):
            return None
        since = max(task.last_progress_at or task.assigned_at, task.assigned_at)
        sent = {n.due_at for n in notices if n.kind is NoticeKind.REPORT_REMINDER}
        due_at = since + timedelta(days=every)
        while due_at in sent:  # one reminder per missed period
            due_at += timedelta(days=every)
        return self._new(NoticeKind.REPORT_REMINDER, task, notices, due_at)

    def _deploy_reminder(self, task: TaskState, notices: list[NoticeState]) -> Due | None:
        if (not self.rules.deploy_duty or task.deployed or task.acknowledged_at is None
                or task.status not in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS)
                or _has(notices, NoticeKind.DEPLOY_REMINDER)):
            return None
        due_at = self.after_workdays(task.acknowledged_at, self.rules.deploy_workdays)
        return self._new(NoticeKind.DEPLOY_REMINDER, task, notices, due_at)

    def month_windows(self, month: date, tz: tzinfo | None) -> list[tuple[datetime, datetime]]:
        """The month's three windows [start, end): plan, progress, results (华容 措施九)."""
        first = datetime(month.year, month.month, 1, tzinfo=tz)
        nxt = (first + timedelta(days=32)).replace(day=1)
        plan = first + timedelta(days=self.rules.monthly_plan_day)
        progress = first + timedelta(days=self.rules.monthly_progress_day)
        return [(first, plan), (plan, progress), (progress, nxt)]

    def _month_reminder(self, task: TaskState, notices: list[NoticeState]) -> Due | None:
        """The first window since assignment that ended (or will end) with no report and no reminder."""
        if not task.monthly_report or task.status not in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS):
            return None
        reminded = {n.due_at for n in notices if n.kind is NoticeKind.MONTH_REMINDER}
        month = task.assigned_at.date().replace(day=1)
        while True:  # ends at the first window still to come: nothing can be reported in it yet
            for start, end in self.month_windows(month, task.assigned_at.tzinfo):
                if end <= task.assigned_at or end in reminded:
                    continue
                if not any(start <= at < end for at in task.progress_times):
                    return self._new(NoticeKind.MONTH_REMINDER, task, notices, end)
            month = (month + timedelta(days=32)).replace(day=1)

    def _hard_reminder(self, task: TaskState, notices: list[NoticeState]) -> list[Due]:
        if task.hard_answer_due is None:
            return []
        sent = sum(1 for n in notices if n.kind is NoticeKind.HARD_REMINDER and n.due_at >= task.hard_answer_due)
        due_at = self.after_workdays(task.hard_answer_due, sent)  # at the answer's due time, then daily
        return [self._new(NoticeKind.HARD_REMINDER, task, notices, due_at)]

    def _colours(self, task: TaskState, notices: list[NoticeState]) -> list[Due | None]:
        cycle = [n for n in notices if n.cycle == task.cycle]
        blue = _first(cycle, NoticeKind.BLUE)
        if blue is None:
            return [self._new(NoticeKind.BLUE, task, notices, task.deadline)]
        yellow = _first(cycle, NoticeKind.YELLOW)
        if yellow is None:
            due_at = self.after_days(task.deadline, self.rules.yellow_after_days)
            return [self._new(NoticeKind.YELLOW, task, notices, due_at, draft=not self.rules.auto_issue)]
        if yellow.issued_at is None:
            return []  # the red clock starts when the yellow is issued (第六条: 发出后10天)
        reds = sorted((n for n in cycle if n.kind is NoticeKind.RED), key=lambda n: n.seq)
        if not reds:
            due_at = self.after_days(yellow.issued_at, self.rules.red_after_yellow_days)
        elif reds[-1].issued_at is None:
            return []  # a red waits for the 县长's signature; the next counts from its issue
        else:
            due_at = self.after_days(reds[-1].issued_at, self.rules.red_repeat_days)
        return [self._new(NoticeKind.RED, task, notices, due_at, draft=not self.rules.auto_issue)]

    def _sign_reminders(self, task: TaskState, notices: list[NoticeState]) -> list[Due]:
        reminders = []
        for draft in notices:
            if draft.kind not in SIGNED_KINDS or draft.status is not NoticeStatus.DRAFT:
                continue
            sent = sum(1 for n in notices if n.kind is NoticeKind.SIGN_REMINDER and n.ref_notice_id == draft.id)
            waited = self.rules.signer_reminder_workdays + sent  # then once each further working day
            due_at = self.after_workdays(draft.created_at, waited)
            reminders.append(self._new(NoticeKind.SIGN_REMINDER, task, notices, due_at, ref=draft.id))
        return reminders


def _has(notices: list[NoticeState], kind: NoticeKind, cycle: int | None = None) -> bool:
    return any(n.kind is kind and (cycle is None or n.cycle == cycle) for n in notices)


def _first(notices: list[NoticeState], kind: NoticeKind) -> NoticeState | None:
    return min((n for n in notices if n.kind is kind), key=lambda n: n.seq, default=None)
