"""The reports as they were built before the SQL aggregation: every task, colour notice and progress
report of the history read into objects and counted in Python (the old reminders.reports.History).
Kept in tests only, as the oracle the SQL path (reminders/reports.py over storage/report_queries.py)
must agree with, number for number (tests/reminders/test_reports_sql.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, select

from reminders.calendar import WorkCalendar
from reminders.policy import Policy
from reminders.reports import (
    SIGNED,
    AnnualReport,
    Consequence,
    DraftRow,
    MonthlyBulletin,
    OverdueRow,
    Period,
    StalledTask,
    Star,
    Tally,
    UnitMonth,
    UnitYear,
    WeeklySummary,
    _unit_year,
    competition_ranks,
    month_before,
    praised,
    week_ending,
    year_until,
)
from reminders.rules import Rules
from storage import queries
from storage.models import (
    AuditEvent,
    Notice,
    NoticeKind,
    Outbox,
    OutboxStatus,
    Person,
    ProgressReport,
    ScoreEvent,
    Task,
    TaskStatus,
    Unit,
    highest_colour,
)
from storage.receipts import undeliverable
from storage.tz import SHANGHAI


class History:
    """The database as it stood at `cutoff`: tasks assigned, colour notices issued, progress reported."""

    def __init__(self, session: Session, cutoff: datetime) -> None:
        self.session = session
        self.cutoff = cutoff
        self.units = list(session.exec(select(Unit).order_by(Unit.id)))
        self.unit_by_id = {u.id: u for u in self.units}
        self.tasks = {t.id: t for t in session.exec(select(Task).where(Task.assigned_at < cutoff).order_by(Task.id))}
        scored = session.exec(select(ScoreEvent, Notice).join(Notice, Notice.id == ScoreEvent.notice_id)
                              .where(ScoreEvent.at < cutoff))
        self.scored: list[tuple[ScoreEvent, Notice]] = sorted(scored, key=lambda r: (r[0].at, r[0].id))
        self._urges: dict[int, list[Notice]] = defaultdict(list)
        for _, notice in self.scored:
            self._urges[notice.task_id].append(notice)
        self.progress: dict[int, list[datetime]] = defaultdict(list)
        for task_id, at in session.exec(select(ProgressReport.task_id, ProgressReport.at)
                                        .where(ProgressReport.at < cutoff)):
            self.progress[task_id].append(at)

    def is_open(self, task: Task) -> bool:
        return task.closed_at is None or task.closed_at >= self.cutoff

    def cancelled(self, task: Task) -> bool:
        return task.status is TaskStatus.CANCELLED and not self.is_open(task)

    def urges(self, task_id: int) -> list[Notice]:
        """The colour notices issued on a task, in order."""
        return self._urges.get(task_id, [])

    def colour(self, task_id: int) -> NoticeKind | None:
        return highest_colour(n.kind for n in self.urges(task_id))

    def tallies(self, since: datetime, year: int | None = None) -> dict[int, Tally]:
        """Per unit id: the colour notices received from `since` to the cut-off (in `year` if given)."""
        out = {u.id: Tally() for u in self.units}
        for event, notice in self.scored:
            if event.at >= since and (year is None or event.year == year):
                out[event.unit_id].add(notice.kind, event.points)
        return out

    def issued_since(self, since: datetime) -> Tally:
        """All colour notices issued from `since` to the cut-off, whoever received them."""
        tally = Tally()
        for event, notice in self.scored:
            if event.at >= since:
                tally.add(notice.kind, event.points)
        return tally

    def head(self, unit: Unit) -> Person | None:
        return queries.unit_head(self.session, unit)

    def on_time(self, task: Task) -> bool:
        """Closed (销号) by the cut-off, on or before its current deadline."""
        return task.status is TaskStatus.CLOSED and not self.is_open(task) and task.closed_at <= task.deadline


def red_marks(history: History, year: int, threshold: int) -> dict[int, datetime]:
    """unit id → when it reached `threshold` reds: in the year in total, or on one task (第十条)."""
    reds_by_unit: dict[int, list[ScoreEvent]] = defaultdict(list)
    for event, notice in history.scored:
        if notice.kind is NoticeKind.RED:
            reds_by_unit[event.unit_id].append(event)
    marks = {}
    for unit_id, reds in reds_by_unit.items():
        this_year = [e for e in reds if e.year == year]
        candidates = [this_year[threshold - 1].at] if len(this_year) >= threshold else []
        per_task: dict[int, list[ScoreEvent]] = defaultdict(list)
        for event in reds:
            per_task[event.task_id].append(event)
        candidates += [events[threshold - 1].at for events in per_task.values()
                       if len(events) >= threshold and events[threshold - 1].year == year]
        if candidates:
            marks[unit_id] = min(candidates)
    return marks


def consequences(history: History, year: int, threshold: int, within: Period | None = None) -> list[Consequence]:
    """Units that reached `threshold` reds (in `within`, if given), in the order they reached it."""
    out = []
    for unit_id, at in sorted(red_marks(history, year, threshold).items(), key=lambda kv: (kv[1], kv[0])):
        if within and not within.start <= at < within.end:
            continue
        reds = [e for e, n in history.scored if n.kind is NoticeKind.RED and e.unit_id == unit_id]
        on_task = Counter(e.task_id for e in reds)
        this_year = dict.fromkeys(e.task_id for e in reds if e.year == year)  # in order, each task once
        unit = history.unit_by_id[unit_id]
        out.append(Consequence(unit=unit, head=history.head(unit), reds=sum(e.year == year for e in reds),
                               tasks=[(history.tasks[t].code, on_task[t]) for t in this_year], at=at))
    return out


def build_weekly(session: Session, at: datetime, rules: Rules, calendar: WorkCalendar) -> WeeklySummary:
    period = week_ending(at, rules)
    history = History(session, period.end)
    tasks = list(history.tasks.values())
    overdue = [OverdueRow(t, history.unit_by_id[t.lead_unit_id], history.colour(t.id),
                          (period.end.date() - t.deadline.date()).days)
               for t in tasks if history.is_open(t) and t.deadline < period.end]
    overdue.sort(key=lambda r: (-r.days, r.task.id))
    dead = session.exec(select(func.count()).select_from(Outbox).where(
        Outbox.status == OutboxStatus.DEAD, Outbox.deliver_after >= period.start,
        Outbox.deliver_after < period.end)).one()
    return WeeklySummary(
        period=period,
        new=sum(1 for t in tasks if t.assigned_at >= period.start),
        closed=sum(1 for t in tasks if t.status is TaskStatus.CLOSED and not history.is_open(t)
                   and t.closed_at >= period.start),
        overdue=overdue, overdue_total=len(overdue), issued=history.issued_since(period.start), drafts=waiting_drafts(history, rules, calendar),
        dead=dead, undeliverable=tuple(
            (person.name if (person := session.get(Person, u.user_id)) else u.user_id)
            for u in undeliverable(session, period.start) if u.first_at < period.end))


def waiting_drafts(history: History, rules: Rules, calendar: WorkCalendar) -> list[DraftRow]:
    """Yellow and red drafts that, at the cut-off, were drafted and neither issued nor void (the weekly
    summary's list, and the dashboard's 待签发)."""
    session, cutoff = history.session, history.cutoff
    marked: dict[str, set[str]] = defaultdict(set)  # audit action → notice codes, before the cut-off
    for action, detail in session.exec(select(AuditEvent.action, AuditEvent.detail).where(
            AuditEvent.action.in_(("notice_void", "notice_held")), AuditEvent.at < cutoff)):
        marked[action].add(detail.get("notice"))
    drafts = session.exec(select(Notice).where(  # those issued before the cut-off are not read at all
        Notice.kind.in_(SIGNED), Notice.created_at < cutoff, or_(Notice.issued_at.is_(None), Notice.issued_at >= cutoff))
        .order_by(Notice.created_at, Notice.id))
    policy = Policy(calendar, rules)
    rows = []
    for notice in drafts:
        if (notice.issued_at is not None and notice.issued_at < cutoff) or notice.code in marked["notice_void"]:
            continue
        task = history.tasks[notice.task_id]
        rows.append(DraftRow(
            notice=notice, task=task, unit=history.unit_by_id[task.lead_unit_id],
            signer=queries.person(session, notice.signer_id or ""), held=notice.code in marked["notice_held"],
            late=policy.after_workdays(notice.created_at, rules.signer_reminder_workdays) <= cutoff))
    return rows


def build_bulletin(session: Session, period: Period, rules: Rules, history: History | None = None) -> MonthlyBulletin:
    """A bulletin over any period of whole months in one year (a month, a quarter, a half-year):
    ranking by the year's score to its end, colours, praise and criticism within it. The dashboard
    also builds one over the month to date, passing the History it reads too (cut-off: the period's end)."""
    history = history or History(session, period.end)
    year = period.start.year
    month = history.tallies(period.start)
    to_date = history.tallies(datetime(year, 1, 1, tzinfo=SHANGHAI), year)
    due: dict[int, list[Task]] = defaultdict(list)
    for task in history.tasks.values():
        if period.start <= task.deadline < period.end and not history.cancelled(task):
            due[task.lead_unit_id].append(task)
    order = sorted(history.units, key=lambda u: (-to_date[u.id].total, u.id))
    ranks = competition_ranks([to_date[u.id].total for u in order])
    units = [UnitMonth(rank=rank, unit=u, due=len(due[u.id]), on_time=sum(history.on_time(t) for t in due[u.id]),
                       month=month[u.id], year=to_date[u.id])
             for rank, u in zip(ranks, order, strict=True)]
    return MonthlyBulletin(
        period=period, year=year, units=units,
        criticised=consequences(history, year, rules.criticism_reds, period),
        admonished=consequences(history, year, rules.admonition_reds, period),
        stalled=stalled(history, rules), issued=history.issued_since(period.start),
        praised=praised(units) if rules.praise_list else [],
        titles={t.code: t.title for t in history.tasks.values()})


def stalled(history: History, rules: Rules) -> list[StalledTask]:
    """措施10: open tasks urged `stalled_urges` times or more with no progress report since the first urging."""
    out = []
    for task in history.tasks.values():
        urges = history.urges(task.id)
        if not history.is_open(task) or len(urges) < rules.stalled_urges:
            continue
        if any(at >= urges[0].issued_at for at in history.progress.get(task.id, ())):
            continue
        unit = history.unit_by_id[task.lead_unit_id]
        out.append(StalledTask(task, unit, history.head(unit), urges, history.colour(task.id)))
    return sorted(out, key=lambda s: (s.urges[0].issued_at, s.task.id))


def build_annual(session: Session, year: int, at: datetime, rules: Rules) -> AnnualReport:
    period = year_until(year, at)
    history = History(session, period.end)
    tallies = history.tallies(period.start, year)
    counts: dict[int, int] = defaultdict(int)
    for task in history.tasks.values():
        if task.assigned_at >= period.start and not history.cancelled(task):
            counts[task.lead_unit_id] += 1
    rows = [_unit_year(u, counts[u.id], tallies[u.id], rules) for u in history.units]
    rows.sort(key=lambda r: (-r.final, -r.tasks, r.unit.id))
    rows = [replace(r, rank=rank) for rank, r in zip(competition_ranks([r.final for r in rows]), rows, strict=True)]
    criticised = consequences(history, year, rules.criticism_reds)
    admonished = consequences(history, year, rules.admonition_reds)
    on_time: dict[int, int] = defaultdict(int)
    for task in history.tasks.values():
        if task.assigned_at >= period.start and not history.cancelled(task) and history.on_time(task):
            on_time[task.lead_unit_id] += 1
    return AnnualReport(period=period, units=rows, stars=stars(history, rows, on_time, criticised + admonished, rules),
                        criticised=criticised, admonished=admonished)


def stars(history: History, rows: list[UnitYear], on_time: dict[int, int], consequences: list[Consequence],
          rules: Rules) -> list[Star]:
    """十大效能之星: heads of units in good standing, by final score, then on-time rate."""
    named = {c.unit.id for c in consequences}
    out = []
    for row in rows:
        head = history.head(row.unit)
        if (row.tasks and row.final > 0 and row.tally.count[NoticeKind.RED] == 0 and row.unit.id not in named
                and head is not None and head.active):
            out.append(Star(head=head, unit=row.unit, row=row, on_time=on_time[row.unit.id]))
    out.sort(key=lambda s: (-s.row.final, -s.rate, s.unit.id))
    return out[:rules.stars]


def build_monthly(session: Session, at: datetime, rules: Rules) -> MonthlyBulletin:
    return build_bulletin(session, month_before(at), rules)


# ---- the dashboard's counts, as bot/dashboard/data.py made them from a History ----------------------
def open_by_unit(history: History, cutoff: datetime, unit_id: int | None, category: str | None,
                 ) -> dict[int, tuple[int, int, dict[str, int]]]:
    """lead unit id → (open tasks, overdue among them, open tasks by colour)."""
    out: dict[int, tuple[int, int, dict[str, int]]] = {}
    for task in history.tasks.values():
        if (unit_id is not None and task.lead_unit_id != unit_id or category is not None and task.category != category
                or not history.is_open(task)):
            continue
        count, overdue, colours = out.get(task.lead_unit_id, (0, 0, {k: 0 for k in ("blue", "yellow", "red")}))
        if (colour := history.colour(task.id)) is not None:
            colours[colour] += 1
        out[task.lead_unit_id] = (count + 1, overdue + (task.deadline < cutoff), colours)
    return out


def scored_between(history: History, since: datetime, unit_id: int | None, category: str | None,
                   ) -> list[tuple[datetime, NoticeKind]]:
    out = []
    for event, notice in history.scored:
        task = history.tasks.get(event.task_id)
        if event.at >= since and (unit_id is None or event.unit_id == unit_id) and (
                category is None or task is not None and task.category == category):
            out.append((event.at, notice.kind))
    return out


def categories(history: History) -> list[str]:
    return sorted({t.category for t in history.tasks.values()})
