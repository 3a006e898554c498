"""What the dashboard pages show, built from the same functions as the bulletins and the chat queries.

Scores, ranks and the month's tallies are the bulletin's table, `reminders.reports.ranked_units` (which
`build_bulletin` builds its `units` with) — for a past month exactly the table `duban report monthly`
prints (build_monthly), for the current month the same table over the month to date; the bulletin's
criticism, praise and 措施10 list are not shown here, so not built. Waiting drafts are the weekly
summary's (`waiting_drafts`); colours and open/closed are the reports' aggregate queries
(storage/report_queries.py) at the same cut-off; the forecast is the policy's `upcoming` (as 预警),
once per task over the fortnight; a unit's task rows are the 台账's `ledger_rows` (reminders/ledger.py).
Nothing here counts a second way, and nothing reads the whole history: every page is counted afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from bot.settings import Settings
from reminders.calendar import WorkCalendar
from reminders.engine import notice_state, task_state
from reminders.ledger import ledger_rows
from reminders.policy import NoticeState, Policy
from reminders.reports import (
    DraftRow,
    Period,
    month_before,
    ranked_units,
    waiting_drafts,
)
from storage import report_queries
from storage.models import (
    COLOURS,
    OPEN_STATUSES,
    AuditEvent,
    Notice,
    NoticeKind,
    NoticeStatus,
    Person,
    ProgressReport,
    Role,
    ScoreEvent,
    Task,
    Unit,
)
from storage.tz import SHANGHAI, to_shanghai

FORECAST_DAYS = 14
NOTICE_STATE_COLUMNS = (Notice.id, Notice.kind, Notice.seq, Notice.cycle, Notice.status, Notice.due_at,
                        Notice.created_at, Notice.issued_at, Notice.ref_notice_id)
TREND_WEEKS = 12
UNIT_STAFF = (Role.UNIT_HEAD, Role.LIAISON)


@dataclass(frozen=True)
class Scope:
    """Who is looking: the whole county, or one unit (a unit head or liaison)."""

    person: Person

    @property
    def unit_id(self) -> int | None:
        return self.person.unit_id if self.person.role in UNIT_STAFF else None

    def sees_unit(self, unit_id: int) -> bool:
        return self.unit_id is None or self.unit_id == unit_id


@dataclass(frozen=True)
class Filters:
    unit_id: int | None = None
    colour: NoticeKind | None = None
    category: str | None = None
    period: str = ""  # "" — this month to date; "2026-11" — that month's bulletin


@dataclass
class UnitRow:
    rank: int
    unit: Unit
    score: int
    year: dict[str, int]  # colour → notices received this year
    month: dict[str, int]  # … in the period
    due: int
    on_time: int
    open: int = 0
    colours: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLOURS, 0))  # open tasks by colour
    drafts: int = 0
    overdue: int = 0


@dataclass(frozen=True)
class HeatDay:
    day: date
    units: dict[str, list[str]]  # colour → unit names that will receive it that day

    @property
    def top(self) -> str | None:
        return next((k.value for k in reversed(COLOURS) if self.units.get(k)), None)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.units.values())


@dataclass(frozen=True)
class WeekBar:
    start: date
    counts: dict[str, int]


@dataclass
class Overview:
    cutoff: datetime
    live: bool
    period: Period
    rows: list[UnitRow]
    heat: list[HeatDay]
    trend: list[WeekBar]
    categories: list[str]
    periods: list[str]


def period_of(filters: Filters, now: datetime) -> Period:
    """The bulletin period a page shows: a past month (exactly `duban report monthly`'s), or this
    month to now. Its end is the page's cut-off."""
    if not filters.period:
        start = datetime(now.year, now.month, 1, tzinfo=SHANGHAI)
        return Period(start, now, f"{start:%Y-%m}")
    year, month = (int(p) for p in filters.period.split("-"))
    return month_before(datetime(year + month // 12, month % 12 + 1, 1, tzinfo=SHANGHAI))


def recent_periods(now: datetime, count: int = 12) -> list[str]:
    out, at = [], now
    for _ in range(count):
        period = month_before(at)
        out.append(period.key)
        at = period.start
    return out


def overview(session: Session, now: datetime, settings: Settings, calendar: WorkCalendar, scope: Scope,
             filters: Filters) -> Overview:
    period = period_of(filters, now)
    cutoff = period.end
    rows = {u.unit.id: UnitRow(rank=u.rank, unit=u.unit, score=u.year.total, year=u.year.count, month=u.month.count,
                               due=u.due, on_time=u.on_time) for u in ranked_units(session, period)}
    # open at the cut-off as the weekly summary counts them
    for unit_id, counts in report_queries.open_by_unit(session, cutoff, scope.unit_id, filters.category).items():
        row = rows[unit_id]
        row.open, row.overdue, row.colours = counts["open"], counts["overdue"], counts["colours"]
    for draft in waiting_drafts(session, cutoff, settings.rules, calendar):
        if draft.unit.id in rows and (filters.category is None or draft.task.category == filters.category):
            rows[draft.unit.id].drafts += 1
    shown = [r for r in rows.values() if scope.sees_unit(r.unit.id)
             and (filters.unit_id is None or r.unit.id == filters.unit_id)
             and (filters.colour is None or r.colours[filters.colour] > 0)
             and (r.unit.active or r.open)]
    return Overview(
        cutoff=cutoff, live=not filters.period, period=period, rows=shown,
        heat=heat_strip(session, now, settings, calendar, scope, filters) if not filters.period else [],
        trend=trend(session, cutoff, scope, filters),
        categories=report_queries.categories(session, cutoff), periods=recent_periods(now))


def data_version(session: Session) -> tuple:
    """Changes whenever anything an overview reads may have changed. Every insert into its tables moves
    a maximum id; every command that changes a task or a notice writes an audit event (handlers'
    ctx.audit, the void / held marks); and, not to rest on that alone, the counts a 销号 / 撤销, an
    issue, a void or an extension move (open tasks, issued and void notices, the sum of cycles) and
    the whole roster (names, heads, active flags: a few hundred short rows) are part of it."""
    def top(column: object) -> object:
        return select(func.coalesce(func.max(column), 0)).scalar_subquery()

    def counted(model: type, *where: object) -> object:
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    row = session.exec(select(
        top(AuditEvent.id), top(Notice.id), top(ScoreEvent.id), top(Task.id), top(ProgressReport.id),
        counted(Task, Task.closed_at.is_(None)), select(func.coalesce(func.sum(Task.cycle), 0)).scalar_subquery(),
        counted(Notice, Notice.issued_at.is_not(None)), counted(Notice, Notice.status == NoticeStatus.VOID))).one()
    roster = (tuple(session.exec(select(Unit.id, Unit.name, Unit.head_user_id, Unit.active).order_by(Unit.id))),
              tuple(session.exec(select(Person.user_id, Person.name, Person.title, Person.role, Person.unit_id,
                                        Person.active).order_by(Person.user_id))))
    return tuple(row), hash(roster)


DATED = (Task.assigned_at, Task.closed_at, ScoreEvent.at, ProgressReport.at, AuditEvent.at, Notice.created_at,
         Notice.issued_at)  # every column the overview compares with its cut-off


def _dated_from(session: Session, moment: datetime) -> bool:
    """Whether any row the overview reads is dated at or after `moment`: one built at `moment` left it
    out, and one built a second later would not."""
    return any(session.exec(select(*(select(column).where(column >= moment).exists() for column in DATED))).one())


class Overviews:
    """Reuses an overview while nothing it depends on can have changed: the same scope and filters, the
    same data version (data_version) and the same minute of the clock. Everything clock-dependent on
    the page (month to date, overdue, drafts late, the forecast) is then as of the first look in that
    minute — as if the page had been loaded then, which a page refreshed each minute is anyway. A new
    minute or any change to the data builds afresh (a clock set back gives another minute: no reuse
    across it); an overview is not kept at all if a row is dated at or after its moment (written at
    that very instant, or by an instance whose clock is ahead), since a later look would count it."""

    SIZE = 32

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple, tuple[datetime, Overview]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, now: datetime, settings: Settings, calendar: WorkCalendar, scope: Scope,
            filters: Filters) -> tuple[datetime, Overview]:
        """(the moment it was built at, the overview)."""
        key = (scope.unit_id, filters, now.replace(second=0, microsecond=0), data_version(session))
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        made = (now, overview(session, now, settings, calendar, scope, filters))
        if _dated_from(session, now):
            return made  # rows at or after its moment (the same instant, or a clock ahead): not reusable
        with self._lock:
            self._kept[key] = made
            while len(self._kept) > self.SIZE:
                self._kept.popitem(last=False)
        return made


def heat_strip(session: Session, now: datetime, settings: Settings, calendar: WorkCalendar, scope: Scope,
               filters: Filters) -> list[HeatDay]:
    """Per day of the next fortnight, which units will receive which colour if nothing changes (预警):
    Policy.upcoming over the tasks and notices that can decide it (report_queries.forecast_inputs)."""
    until = now + timedelta(days=FORECAST_DAYS)
    tasks, rows = report_queries.forecast_inputs(session, now, until, NOTICE_STATE_COLUMNS, scope.unit_id,
                                                 filters.category)
    policy = Policy(calendar, settings.rules)
    notices: dict[int, list[NoticeState]] = defaultdict(list)
    for row in rows:
        notices[row.task_id].append(notice_state(row))  # type: ignore[arg-type]
    unit_names = dict(session.exec(select(Unit.id, Unit.name)).all())
    days: dict[date, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for task in tasks:
        for due in policy.upcoming(task_state(task), notices[task.id], now, until):  # type: ignore[arg-type]
            days[to_shanghai(due.send_at).date()][due.kind].add(unit_names[task.lead_unit_id])
    first = now.date() + timedelta(days=1)
    return [HeatDay(day, {k: sorted(days[day][k]) for k in COLOURS if days[day][k]})
            for day in (first + timedelta(days=i) for i in range(FORECAST_DAYS))]


def trend(session: Session, cutoff: datetime, scope: Scope, filters: Filters) -> list[WeekBar]:
    """Colour notices issued per week (Monday to Sunday), the last TREND_WEEKS weeks to the cut-off."""
    last_monday = (cutoff - timedelta(microseconds=1)).date()
    last_monday -= timedelta(days=last_monday.weekday())
    weeks = [last_monday - timedelta(weeks=i) for i in reversed(range(TREND_WEEKS))]
    counts = {w: dict.fromkeys(COLOURS, 0) for w in weeks}
    unit_id = filters.unit_id if scope.unit_id is None else scope.unit_id
    if filters.unit_id is not None and filters.unit_id != unit_id:
        return [WeekBar(w, counts[w]) for w in weeks]  # a unit's staff filtering on another unit: nothing
    starts = [datetime.combine(w, time(), tzinfo=SHANGHAI) for w in weeks]
    for (week, kind), count in report_queries.scored_by_span(session, starts, cutoff, unit_id, filters.category).items():
        counts[weeks[week]][kind] = count
    return [WeekBar(w, counts[w]) for w in weeks]


def drafts(session: Session, now: datetime, settings: Settings, calendar: WorkCalendar,
           scope: Scope) -> dict[str, list[DraftRow]]:
    """Drafts waiting for a signature, per signer's name, oldest first."""
    out: dict[str, list[DraftRow]] = defaultdict(list)
    for row in waiting_drafts(session, now, settings.rules, calendar):
        if scope.sees_unit(row.unit.id):
            out[row.signer.name if row.signer else "（未指定签发人）"].append(row)
    return dict(out)


def unit_tasks(session: Session, now: datetime, unit: Unit, filters: Filters, show_closed: bool) -> list[dict]:
    """The unit's tasks as the 台账 shows them, with each task's audit trail."""
    query = select(Task).where(Task.lead_unit_id == unit.id).order_by(Task.deadline)
    if not show_closed:
        query = query.where(Task.status.in_(OPEN_STATUSES))
    if filters.category:
        query = query.where(Task.category == filters.category)
    rows = [_finished(row) for row in ledger_rows(session, now, list(session.exec(query)))]
    if filters.colour:
        rows = [r for r in rows if r["colour"] is filters.colour]
    events = trails(session, [r["task"].id for r in rows])
    for row in rows:
        row["events"] = events.get(row["task"].id, [])
    return rows


def _finished(row: dict) -> dict:
    """A finished task's overdue days stop at its 销号 / 撤销 (as in the Excel 台账), not run on to now."""
    task = row["task"]
    if task.closed_at is not None:
        row["overdue"] = max((task.closed_at.date() - task.deadline.date()).days, 0) if task.closed_at > task.deadline else 0
    return row


def trails(session: Session, task_ids: list[int]) -> dict[int, list[AuditEvent]]:
    out: dict[int, list[AuditEvent]] = defaultdict(list)
    for chunk in range(0, len(task_ids), 900):
        for event in session.exec(select(AuditEvent).where(AuditEvent.task_id.in_(task_ids[chunk:chunk + 900]))
                                  .order_by(AuditEvent.at, AuditEvent.id)):
            out[event.task_id].append(event)
    return out


def task_detail(session: Session, now: datetime, task: Task) -> dict:
    row = _finished(ledger_rows(session, now, [task])[0])
    row["events"] = trails(session, [task.id]).get(task.id, [])
    row["notices"] = list(session.exec(select(Notice).where(Notice.task_id == task.id)
                                       .order_by(Notice.created_at, Notice.id)))
    return row


def names(session: Session) -> dict[str, str]:
    found = {p.user_id: p.name for p in session.exec(select(Person))}
    found["system"] = "督办助手"
    return found
