"""Bulletins and reports (SPEC §5): 一周一汇总, 一月一通报 and the 年终 report.

Each builder reads the database as it stood at a cut-off (the end of the period, or the moment
of the report), so a report asked for later — `duban report monthly --at 2026-07-01` — says what
the one sent at the time said. The `issue_*` functions send a bulletin through the outbox at most
once per period: an AuditEvent ("bulletin_weekly" / "bulletin_monthly" / "bulletin_annual", with
the period key in its detail) is checked first and written in the same transaction.

Definitions (湘阴县 附件 第九、第十条; 鄂托克前旗 十五条措施 第10条):
- A unit's score for a year is the sum of the points of the colour notices it received that year
  (ScoreEvent, as issued: blue −1, yellow −2, red −5 by default). Bonuses count in the year-end
  report only.
- "Tasks that year" (第九条 承办N项): tasks assigned in that calendar year with that unit as the
  lead unit; a task cancelled (撤销) before the report does not count: it carries no score.
- Year-end bonuses: ≥5 tasks — no yellow all year +10, no red +5; ≥20 tasks — a further +20 for no
  yellow and +10 for no red, with the 3% / 2% 优岗比例 note. All numbers are `Rules` settings.
- 第十条: a unit's 2nd red of the year (or the 2nd red on one task, which may span two years)
  names it for criticism in that month's bulletin and asks its head for a written self-review;
  the 3rd prompts the county head to hold an admonition talk. Each happens once per threshold.
- 措施10: a task urged twice (Rules.stalled_urges colour notices issued) with no progress report since
  the first of them, and still open at the end of the month, is named in that month's bulletin.
- In the monthly bulletin a unit's tasks are those whose current deadline fell in the month; on
  time are those of them closed (销号) on or before that deadline.
- 华容 措施九 正反两面清单: beside the criticism, the bulletin praises the units that had tasks due in
  the month and closed every one of them on time; 措施十 通报必见人见事: criticism names the tasks,
  the unit and its head.
- 十大效能之星 (第十条; 实施方案 18 "在主要负责干部中评选", 每人1万元): people — the heads of lead
  units with a positive final score, no red notice that year and no 第十条 consequence — ranked by
  final score, then by on-time rate (tasks that year closed by their deadline ÷ tasks that year),
  at most Rules.stars of them; a unit with no head on the roster has nobody to name.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from message_templates.render import render
from message_templates.reply import Reply
from reminders.calendar import WorkCalendar
from reminders.policy import Policy
from reminders.rules import Rules
from storage import audit, queries, report_queries
from storage.models import (
    COLOURS,
    AuditEvent,
    Notice,
    NoticeKind,
    Outbox,
    OutboxStatus,
    Person,
    Role,
    ScoreEvent,
    Task,
    Unit,
    highest_colour,
)
from storage.outbox import enqueue
from storage.receipts import undeliverable
from storage.tz import SHANGHAI, to_shanghai

log = logging.getLogger(__name__)

SIGNED = (NoticeKind.YELLOW, NoticeKind.RED)
ANNUAL_CATCH_UP = timedelta(days=31)  # a year-end report missed while the bot was down still goes out


class ReportSettings(Protocol):
    """The few settings the reports read (bot.settings.Settings has them): no wider dependency."""

    rules: Rules
    reports_dir: Path
    year_end_report: str  # MM-DD


# ---- periods --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive, and the cut-off: nothing at or after it is counted
    key: str  # the bulletin's idempotency key: 2026-W23, 2026-05, 2026

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(microseconds=1)).date()


def week_ending(at: datetime, rules: Rules) -> Period:
    """The seven days that end at the latest Monday work_start (09:00) at or before `at`."""
    at = to_shanghai(at)
    monday = at.date() - timedelta(days=at.weekday())
    end = datetime.combine(monday, rules.work_start, tzinfo=SHANGHAI)
    if end > at:
        end -= timedelta(days=7)
    iso = end.isocalendar()
    return Period(end - timedelta(days=7), end, f"{iso.year}-W{iso.week:02d}")


def month_before(at: datetime) -> Period:
    at = to_shanghai(at)
    end = datetime(at.year, at.month, 1, tzinfo=SHANGHAI)
    start = (end - timedelta(days=1)).replace(day=1)
    return Period(start, end, f"{start:%Y-%m}")


def year_until(year: int, at: datetime) -> Period:
    start = datetime(year, 1, 1, tzinfo=SHANGHAI)
    return Period(start, min(to_shanghai(at), datetime(year + 1, 1, 1, tzinfo=SHANGHAI)), str(year))


def annual_slot(year: int, settings: ReportSettings) -> datetime:
    """When the year-end report of `year` falls due: Settings.year_end_report (MM-DD) at work_start."""
    try:
        month, day = (int(part) for part in settings.year_end_report.split("-"))
        return datetime.combine(date(year, month, day), settings.rules.work_start, tzinfo=SHANGHAI)
    except ValueError as exc:
        raise ValueError(f"year_end_report 应写成 月-日，例如 12-31（现为 {settings.year_end_report!r}）") from exc


def annual_year(at: datetime, settings: ReportSettings) -> int | None:
    """The year whose year-end report is due at `at`: this year's once its slot has come, or last
    year's for a while after its slot (caught up after downtime); None in between."""
    at = to_shanghai(at)
    for year in (at.year, at.year - 1):
        slot = annual_slot(year, settings)
        if slot <= at < slot + ANNUAL_CATCH_UP:
            return year
    return None


def first_working_moment(day: date, calendar: WorkCalendar, rules: Rules) -> datetime:
    """work_start of the first working day of `day`'s month: when the monthly bulletin falls due."""
    first = calendar.workday_on_or_after(day.replace(day=1))
    return datetime.combine(first, rules.work_start, tzinfo=SHANGHAI)


# ---- what the reports count -----------------------------------------------------------------------
@dataclass
class Tally:
    """Colour notices received: how many of each colour, and the points they cost."""

    count: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLOURS, 0))
    points: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLOURS, 0))

    def add(self, kind: NoticeKind, points: int) -> None:
        self.count[kind] += 1
        self.points[kind] += points

    @property
    def total(self) -> int:
        return sum(self.points.values())


def tallies(session: Session, cutoff: datetime, since: datetime, units: Iterable[Unit],
            year: int | None = None) -> dict[int, Tally]:
    """Per unit id: the colour notices received from `since` to the cut-off (in `year` if given)."""
    out = {u.id: Tally() for u in units}
    for unit_id, kind, count, points in report_queries.tallies(session, cutoff, since, year):
        out.setdefault(unit_id, Tally())
        out[unit_id].count[kind] += count
        out[unit_id].points[kind] += points
    return out


def issued_since(session: Session, cutoff: datetime, since: datetime) -> Tally:
    """All colour notices issued from `since` to the cut-off, whoever received them."""
    return added(tallies(session, cutoff, since, ()).values())


def added(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        for kind in COLOURS:
            total.count[kind] += tally.count[kind]
            total.points[kind] += tally.points[kind]
    return total


def all_units(session: Session) -> list[Unit]:
    return list(session.exec(select(Unit).order_by(Unit.id)))


def competition_ranks(values: Sequence[int]) -> list[int]:
    """Competition ranking of values already sorted best first: 1, 2, 2, 4."""
    return [1 + next(i for i, w in enumerate(values) if w == v) for v in values]


# ---- 第十条: consequences of reds -----------------------------------------------------------------
@dataclass(frozen=True)
class Consequence:
    unit: Unit
    head: Person | None
    reds: int  # reds received in the year by the cut-off
    tasks: list[tuple[str, int]]  # (task code, reds on that task to date) for this year's reds
    at: datetime  # when the threshold was reached


def red_marks(reds: Sequence[ScoreEvent], year: int, threshold: int) -> dict[int, datetime]:
    """unit id → when it reached `threshold` reds: in the year in total, or on one task (第十条).
    `reds`: report_queries.red_events, in the order they were scored."""
    reds_by_unit: dict[int, list[ScoreEvent]] = defaultdict(list)
    for event in reds:
        reds_by_unit[event.unit_id].append(event)
    marks = {}
    for unit_id, events in reds_by_unit.items():
        this_year = [e for e in events if e.year == year]
        candidates = [this_year[threshold - 1].at] if len(this_year) >= threshold else []
        per_task: dict[int, list[ScoreEvent]] = defaultdict(list)
        for event in events:
            per_task[event.task_id].append(event)
        candidates += [on_task[threshold - 1].at for on_task in per_task.values()
                       if len(on_task) >= threshold and on_task[threshold - 1].year == year]
        if candidates:
            marks[unit_id] = min(candidates)
    return marks


def consequences(session: Session, reds: Sequence[ScoreEvent], year: int, threshold: int,
                 within: Period | None = None) -> list[Consequence]:
    """Units that reached `threshold` reds (in `within`, if given), in the order they reached it."""
    marked = [(unit_id, at) for unit_id, at in sorted(red_marks(reds, year, threshold).items(),
                                                      key=lambda kv: (kv[1], kv[0]))
              if not within or within.start <= at < within.end]
    named = {unit_id for unit_id, _ in marked}
    codes = report_queries.codes(session, {e.task_id for e in reds if e.unit_id in named and e.year == year})
    out = []
    for unit_id, at in marked:
        unit_reds = [e for e in reds if e.unit_id == unit_id]
        on_task = Counter(e.task_id for e in unit_reds)
        this_year = dict.fromkeys(e.task_id for e in unit_reds if e.year == year)  # in order, each task once
        unit = session.get(Unit, unit_id)
        out.append(Consequence(unit=unit, head=queries.unit_head(session, unit),
                               reds=sum(e.year == year for e in unit_reds),
                               tasks=[(codes[t], on_task[t]) for t in this_year], at=at))
    return out


# ---- 一周一汇总 ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverdueRow:
    task: Task
    unit: Unit
    colour: NoticeKind | None
    days: int


@dataclass(frozen=True)
class DraftRow:
    notice: Notice
    task: Task
    unit: Unit
    signer: Person | None
    held: bool
    late: bool  # waited longer than Rules.signer_reminder_workdays


@dataclass(frozen=True)
class WeeklySummary:
    period: Period
    new: int
    closed: int
    overdue: list[OverdueRow]  # the OVERDUE_LISTED most overdue, most overdue first
    overdue_total: int  # open tasks past their deadline at the cut-off
    issued: Tally
    drafts: list[DraftRow]
    dead: int  # messages of the week given up on (Outbox status dead)
    undeliverable: tuple[str, ...] = ()  # names of people DingTalk refused to deliver to that week


OVERDUE_LISTED = 10  # report_weekly.md.j2 lists the most overdue ten and counts the rest


def build_weekly(session: Session, at: datetime, rules: Rules, calendar: WorkCalendar) -> WeeklySummary:
    period = week_ending(at, rules)
    cutoff = period.end
    new, closed = report_queries.new_and_closed(session, period.start, cutoff)
    candidates = report_queries.most_overdue(session, cutoff, OVERDUE_LISTED)
    colour = report_queries.colours(session, cutoff, (t.id for t in candidates))
    overdue = sorted((((cutoff.date() - t.deadline.date()).days, t) for t in candidates),
                     key=lambda r: (-r[0], r[1].id))[:OVERDUE_LISTED]
    dead = session.exec(select(func.count()).select_from(Outbox).where(
        Outbox.status == OutboxStatus.DEAD, Outbox.deliver_after >= period.start,
        Outbox.deliver_after < period.end)).one()
    return WeeklySummary(
        period=period, new=new, closed=closed,
        overdue=[OverdueRow(t, session.get(Unit, t.lead_unit_id), colour.get(t.id), days) for days, t in overdue],
        overdue_total=report_queries.overdue_count(session, cutoff),
        issued=issued_since(session, cutoff, period.start), drafts=waiting_drafts(session, cutoff, rules, calendar),
        dead=dead, undeliverable=tuple(
            (person.name if (person := session.get(Person, u.user_id)) else u.user_id)
            for u in undeliverable(session, period.start) if u.first_at < period.end))


def waiting_drafts(session: Session, cutoff: datetime, rules: Rules, calendar: WorkCalendar) -> list[DraftRow]:
    """Yellow and red drafts that, at the cut-off, were drafted and neither issued nor void (the weekly
    summary's list, and the dashboard's 待签发). Their tasks, units and signers are read in one query
    each, not one per draft."""
    drafts = report_queries.waiting_drafts(session, cutoff, SIGNED)
    marked = report_queries.marked_notices(session, cutoff, ("notice_void", "notice_held"), drafts)
    drafts = [n for n in drafts if n.code not in marked["notice_void"]]
    tasks = report_queries.tasks_by_id(session, (n.task_id for n in drafts))
    units = report_queries.units_by_id(session, (t.lead_unit_id for t in tasks.values()))
    signers = report_queries.people(session, (n.signer_id for n in drafts if n.signer_id))
    policy = Policy(calendar, rules)
    return [DraftRow(notice=notice, task=tasks[notice.task_id], unit=units[tasks[notice.task_id].lead_unit_id],
                     signer=signers.get(notice.signer_id or ""), held=notice.code in marked["notice_held"],
                     late=policy.after_workdays(notice.created_at, rules.signer_reminder_workdays) <= cutoff)
            for notice in drafts]


# ---- 一月一通报 ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitMonth:
    rank: int
    unit: Unit
    due: int  # tasks whose current deadline fell in the month
    on_time: int  # …closed on or before it
    month: Tally  # colour notices received in the month
    year: Tally  # …and in the year to the end of the month: its total is the score


@dataclass(frozen=True)
class StalledTask:
    task: Task
    unit: Unit
    head: Person | None  # 通报必见人见事
    urges: Sequence[Notice]  # the colour notices issued, in order (report_queries.URGE_COLUMNS only)
    colour: NoticeKind | None


@dataclass(frozen=True)
class MonthlyBulletin:
    period: Period
    year: int
    units: list[UnitMonth]  # ranked by score
    criticised: list[Consequence]  # reached the 2nd red in the month
    admonished: list[Consequence]  # reached the 3rd red in the month
    stalled: list[StalledTask]
    issued: Tally
    praised: list[UnitMonth]  # 正反两面清单: every task due in the month closed on time
    titles: dict[str, str]  # task code → title, for the criticism (见人见事)

    @property
    def due(self) -> int:
        return sum(u.due for u in self.units)

    @property
    def on_time(self) -> int:
        return sum(u.on_time for u in self.units)


def build_monthly(session: Session, at: datetime, rules: Rules) -> MonthlyBulletin:
    """The bulletin for the calendar month before `at`."""
    return build_bulletin(session, month_before(at), rules)


def build_bulletin(session: Session, period: Period, rules: Rules) -> MonthlyBulletin:
    """A bulletin over any period of whole months in one year (a month, a quarter, a half-year):
    ranking by the year's score to its end, colours, praise and criticism within it."""
    cutoff, year = period.end, period.start.year
    rows = ranked_units(session, period)
    reds = report_queries.red_events(session, cutoff, year)
    criticised = consequences(session, reds, year, rules.criticism_reds, period)
    admonished = consequences(session, reds, year, rules.admonition_reds, period)
    return MonthlyBulletin(
        period=period, year=year, units=rows, criticised=criticised, admonished=admonished,
        stalled=stalled(session, cutoff, rules),
        issued=added(u.month for u in rows),  # every unit's, summed (every scored unit is a Unit row: a foreign key)
        praised=praised(rows) if rules.praise_list else [],
        titles=report_queries.titles(session, (code for c in criticised + admonished for code, _ in c.tasks)))


def ranked_units(session: Session, period: Period) -> list[UnitMonth]:
    """The bulletin's table (build_bulletin's `units`): every unit ranked by its score for the year to
    the period's end, with its colours and its tasks due in the period. The dashboard shows this table
    over the month to date (cut-off: the period's end) without the bulletin's criticism and praise."""
    cutoff, year = period.end, period.start.year
    units = all_units(session)
    month = tallies(session, cutoff, period.start, units)
    to_date = tallies(session, cutoff, datetime(year, 1, 1, tzinfo=SHANGHAI), units, year)
    due = report_queries.due_by_unit(session, period.start, period.end, cutoff)
    order = sorted(units, key=lambda u: (-to_date[u.id].total, u.id))
    ranks = competition_ranks([to_date[u.id].total for u in order])
    return [UnitMonth(rank=rank, unit=u, due=due.get(u.id, (0, 0))[0], on_time=due.get(u.id, (0, 0))[1],
                      month=month[u.id], year=to_date[u.id])
            for rank, u in zip(ranks, order, strict=True)]


def praised(units: list[UnitMonth]) -> list[UnitMonth]:
    """正反两面清单: units with tasks due that closed every one on time, most tasks first."""
    return sorted((u for u in units if u.due and u.on_time == u.due), key=lambda u: (-u.due, u.unit.id))


def stalled(session: Session, cutoff: datetime, rules: Rules) -> list[StalledTask]:
    """措施10: open tasks urged `stalled_urges` times or more with no progress report since the first urging."""
    found = [(task, urges) for task, urges, last_progress
             in report_queries.stalled_candidates(session, cutoff, rules.stalled_urges)
             if last_progress is None or last_progress < urges[0].issued_at]
    units = report_queries.units_by_id(session, (t.lead_unit_id for t, _ in found))
    heads = unit_heads(session, units.values())  # one query, not one per task named: a bulletin may name hundreds
    out = [StalledTask(task, units[task.lead_unit_id], heads.get(units[task.lead_unit_id].id), urges,
                       highest_colour(n.kind for n in urges)) for task, urges in found]
    return sorted(out, key=lambda s: (s.urges[0].issued_at, s.task.id))


def unit_heads(session: Session, units: Iterable[Unit]) -> dict[int, Person]:
    """unit id → its head on the roster (storage.queries.unit_head for many units at once)."""
    by_user = {u.head_user_id: u.id for u in units if u.head_user_id}
    return {by_user[p.user_id]: p for p in session.exec(select(Person).where(Person.user_id.in_(by_user)))}


def monthly_chart(bulletin: MonthlyBulletin, out_dir: Path) -> Path:
    from reminders.chart import Bar, score_chart  # matplotlib: loaded when a chart is drawn, not at start-up

    bars = [Bar(row.unit.name, row.year.points) for row in bulletin.units]
    last = bulletin.period.last_day
    title = f"{bulletin.year}年各单位督办积分（截至{last.month}月{last.day}日）"
    return score_chart(bars, title, out_dir / f"score-chart-{bulletin.period.key}.png")


# ---- 年终 -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitYear:
    rank: int
    unit: Unit
    tasks: int  # tasks that year (see the module docstring)
    tally: Tally  # colour notices received that year
    no_yellow_bonus: int  # 第九条, both tiers added up
    no_red_bonus: int
    more: bool  # ≥ Rules.bonus_more_tasks: the 优岗比例 notes apply

    @property
    def final(self) -> int:
        return self.tally.total + self.no_yellow_bonus + self.no_red_bonus


@dataclass(frozen=True)
class Star:
    """One of the 十大效能之星: a unit head, with the unit's year behind the choice."""

    head: Person
    unit: Unit
    row: UnitYear
    on_time: int  # tasks that year closed by their deadline

    @property
    def rate(self) -> float:
        return self.on_time / self.row.tasks


@dataclass(frozen=True)
class AnnualReport:
    period: Period
    units: list[UnitYear]  # ranked by final score
    stars: list[Star]  # 十大效能之星 (see the module docstring)
    criticised: list[Consequence]
    admonished: list[Consequence]


def build_annual(session: Session, year: int, at: datetime, rules: Rules) -> AnnualReport:
    period = year_until(year, at)
    cutoff = period.end
    units = all_units(session)
    tally = tallies(session, cutoff, period.start, units, year)
    counts = report_queries.assigned_by_unit(session, period.start, cutoff)
    rows = [_unit_year(u, counts.get(u.id, (0, 0))[0], tally[u.id], rules) for u in units]
    rows.sort(key=lambda r: (-r.final, -r.tasks, r.unit.id))
    rows = [replace(r, rank=rank) for rank, r in zip(competition_ranks([r.final for r in rows]), rows, strict=True)]
    reds = report_queries.red_events(session, cutoff, year)
    criticised = consequences(session, reds, year, rules.criticism_reds)
    admonished = consequences(session, reds, year, rules.admonition_reds)
    on_time = {unit_id: kept for unit_id, (_, kept) in counts.items()}
    return AnnualReport(period=period, units=rows, stars=stars(session, rows, on_time, criticised + admonished, rules),
                        criticised=criticised, admonished=admonished)


def stars(session: Session, rows: list[UnitYear], on_time: dict[int, int], consequences: list[Consequence],
          rules: Rules) -> list[Star]:
    """十大效能之星: heads of units in good standing, by final score, then on-time rate."""
    named = {c.unit.id for c in consequences}
    out = []
    for row in rows:
        head = queries.unit_head(session, row.unit)
        if (row.tasks and row.final > 0 and row.tally.count[NoticeKind.RED] == 0 and row.unit.id not in named
                and head is not None and head.active):
            out.append(Star(head=head, unit=row.unit, row=row, on_time=on_time.get(row.unit.id, 0)))
    out.sort(key=lambda s: (-s.row.final, -s.rate, s.unit.id))
    return out[:rules.stars]


def _unit_year(unit: Unit, tasks: int, tally: Tally, rules: Rules) -> UnitYear:
    no_yellow = no_red = 0
    if tasks >= rules.bonus_min_tasks:
        no_yellow += rules.bonus_no_yellow if tally.count[NoticeKind.YELLOW] == 0 else 0
        no_red += rules.bonus_no_red if tally.count[NoticeKind.RED] == 0 else 0
    more = tasks >= rules.bonus_more_tasks
    if more:
        no_yellow += rules.bonus_more_no_yellow if tally.count[NoticeKind.YELLOW] == 0 else 0
        no_red += rules.bonus_more_no_red if tally.count[NoticeKind.RED] == 0 else 0
    return UnitYear(rank=0, unit=unit, tasks=tasks, tally=tally, no_yellow_bonus=no_yellow, no_red_bonus=no_red,
                    more=more)


# ---- sending --------------------------------------------------------------------------------------
def _claim(session: Session, action: str, key: str) -> bool:
    """True if the bulletin `action` of period `key` was not sent yet. On PostgreSQL a transaction
    lock on the key makes a second instance wait here, then see the first one's audit event."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"{action}:{key}"})
    events = session.exec(select(AuditEvent.detail).where(AuditEvent.action == action))
    return not any(detail.get("period") == key for detail in events)


def _has_history(session: Session, cutoff: datetime) -> bool:
    """A fresh installation has nothing to report: no bulletin about a period before the first task."""
    return session.exec(select(Task.id).where(Task.assigned_at < cutoff).limit(1)).first() is not None


def _to_group(session: Session, key: str, reply: Reply, now: datetime) -> Outbox | None:
    group = queries.group(session, key)
    if group is None:
        log.warning("no %s group in the roster: bulletin %r not sent there", key, reply.title)
        return None
    return enqueue(session, reply, target="group", recipient=group.conversation_id, deliver_after=now, now=now)


def issue_weekly(session: Session, now: datetime, settings: ReportSettings, calendar: WorkCalendar) -> Reply | None:
    """Send the summary of the week ending at the latest Monday 09:00 to the leaders' group, once."""
    period = week_ending(now, settings.rules)
    if not _has_history(session, period.end) or not _claim(session, "bulletin_weekly", period.key):
        return None
    reply = render("report_weekly", report=build_weekly(session, now, settings.rules, calendar),
                   rules=settings.rules)
    _to_group(session, "leaders", reply, now)
    audit.record(session, at=now, actor=audit.SYSTEM, action="bulletin_weekly", period=period.key)
    return reply


def issue_monthly(session: Session, now: datetime, settings: ReportSettings, calendar: WorkCalendar, *,
                  force: bool = False, actor: str = audit.SYSTEM) -> Reply | None:
    """Send last month's bulletin and its chart to the all-units group, from the first working day's
    09:00 on, once; with `force` (the 通报 command) now and again. The self-review and admonition
    messages go out only the first time."""
    period = month_before(now)
    if not force and (now < first_working_moment(now.date(), calendar, settings.rules)
                      or not _has_history(session, period.end)):
        return None
    first_time = _claim(session, "bulletin_monthly", period.key)
    if not (first_time or force):
        return None
    bulletin = build_monthly(session, now, settings.rules)
    reply = render("report_monthly", report=bulletin, rules=settings.rules)
    _to_group(session, "all_units", reply, now)
    # the chart travels as an image of its own, with no text: the bulletin's words went out above
    chart = _to_group(session, "all_units", Reply(title=reply.title, text=""), now)
    if chart is not None:
        chart.image_path = str(monthly_chart(bulletin, settings.reports_dir).resolve())
    if first_time:
        _consequence_messages(session, bulletin, now)
    audit.record(session, at=now, actor=actor, action="bulletin_monthly", period=period.key)
    return reply


def _consequence_messages(session: Session, bulletin: MonthlyBulletin, now: datetime) -> None:
    """第十条: the unit head writes a self-review; the county head holds an admonition talk."""
    for item in bulletin.criticised:
        if item.head:
            reply = render("report_self_review_dm", item=item, report=bulletin)
            enqueue(session, reply, target="user", recipient=item.head.user_id, deliver_after=now, now=now)
    county_head = queries.first_with_role(session, Role.COUNTY_HEAD)
    for item in bulletin.admonished if county_head else ():
        reply = render("report_admonition_dm", item=item, report=bulletin, county_head=county_head)
        enqueue(session, reply, target="user", recipient=county_head.user_id, deliver_after=now, now=now)


def issue_annual(session: Session, now: datetime, settings: ReportSettings) -> Reply | None:
    """Send the year-end report to the all-units and leaders' groups once, when it falls due."""
    year = annual_year(now, settings)
    if year is None:
        return None
    period = year_until(year, now)
    if not _has_history(session, period.end) or not _claim(session, "bulletin_annual", period.key):
        return None
    reply = render("report_annual", report=build_annual(session, year, now, settings.rules), rules=settings.rules)
    for key in ("all_units", "leaders"):
        _to_group(session, key, reply, now)
    audit.record(session, at=now, actor=audit.SYSTEM, action="bulletin_annual", period=period.key)
    return reply


def issue_due(session: Session, now: datetime, settings: ReportSettings, calendar: WorkCalendar) -> list[Reply]:
    """Every bulletin due at `now` that has not gone out yet: safe to call as often as liked."""
    sent = [issue_weekly(session, now, settings, calendar), issue_monthly(session, now, settings, calendar),
            issue_annual(session, now, settings)]
    return [reply for reply in sent if reply is not None]


def print_report(kind: str, at: datetime, engine: Engine, settings: ReportSettings, calendar: WorkCalendar) -> str:
    """The text of a report as of `at` (for `duban report weekly|monthly|annual --at DATE`); sends nothing."""
    at = to_shanghai(at)
    with Session(engine) as session:
        if kind == "weekly":
            reply = render("report_weekly", report=build_weekly(session, at, settings.rules, calendar),
                           rules=settings.rules)
        elif kind == "monthly":
            reply = render("report_monthly", report=build_monthly(session, at, settings.rules), rules=settings.rules)
        elif kind == "annual":
            year = annual_year(at, settings) or at.year
            reply = render("report_annual", report=build_annual(session, year, at, settings.rules),
                           rules=settings.rules)
        else:
            raise ValueError(f"没有「{kind}」这种报告，可选：weekly、monthly、annual")
    return reply.text
