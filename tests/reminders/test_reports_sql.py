"""The SQL path of the reports (reminders/reports.py over storage/report_queries.py) against the oracle
(tests/reminders/report_oracle.py: the old History, every row read into objects and counted in Python).

A seeded generator writes a randomized history straight into the tables — many units (some without a
head, some gone from the roster), tasks closed early, on time, late, cancelled, extended, still open,
colour notices issued, drafted, held and void, progress reports, second reds on one task across two
years — with many moments placed exactly on the period boundaries the reports cut at. Every weekly
summary, monthly bulletin, quarter, year-end report and dashboard count built both ways must agree,
number for number and row for row, and render to the same text; on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from enum import Enum

import pytest
from sqlmodel import Session, SQLModel

from message_templates.render import render
from reminders import reports
from reminders.calendar import WorkCalendar
from reminders.rules import Rules
from storage import report_queries
from storage.db import create_schema, make_engine, transaction
from storage.models import (
    COLOURS,
    AuditEvent,
    Notice,
    NoticeKind,
    NoticeStatus,
    Person,
    ProgressReport,
    Role,
    ScoreEvent,
    Task,
    TaskStatus,
    Unit,
)
from storage.tz import SHANGHAI
from tests.reminders import report_oracle as oracle

SEED = 1214
UNITS = 14
TASKS = 420
FIRST = datetime(2025, 10, 1, tzinfo=SHANGHAI)
LAST = datetime(2027, 1, 20, tzinfo=SHANGHAI)
RULES = Rules(stars=4)
POINTS = {NoticeKind.BLUE: -1, NoticeKind.YELLOW: -2, NoticeKind.RED: -5}
CATEGORIES = ("会议交办", "县长批示件", "其他")
GOOD = (1, 5)  # unit ids whose tasks are nearly all closed on time: stars, bonuses


def boundaries() -> list[datetime]:
    """The moments the reports cut at: Mondays 09:00, months' and years' first instants."""
    out, day = [], FIRST.date()
    while day <= LAST.date():
        if day.weekday() == 0:
            out.append(datetime.combine(day, RULES.work_start, tzinfo=SHANGHAI))
        if day.day == 1:
            out.append(datetime.combine(day, time(), tzinfo=SHANGHAI))
        day += timedelta(days=1)
    return out


BOUNDARIES = boundaries()


class History:
    """Writes a randomized history; `moment` lands exactly on a boundary (or 1 µs before it) often."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows: list[SQLModel] = []
        self.audit: list[AuditEvent] = []

    def moment(self, low: datetime, high: datetime) -> datetime:
        if high <= low:
            return low
        near = [b for b in BOUNDARIES if low <= b < high]
        if near and self.rng.random() < 0.25:
            edge = self.rng.choice(near)
            return edge - timedelta(microseconds=1) if self.rng.random() < 0.3 and edge > low else edge
        return low + timedelta(minutes=self.rng.randrange(max(1, int((high - low).total_seconds() // 60))))

    def build(self) -> list[SQLModel]:
        rng = self.rng
        people = [Person(user_id="u_office", name="督查", role=Role.SUPERVISOR),
                  Person(user_id="u_deputy", name="常务", title="常务副县长", role=Role.EXECUTIVE_DEPUTY),
                  Person(user_id="u_head", name="县长", title="县长", role=Role.COUNTY_HEAD)]
        units = []
        for i in range(UNITS):
            head = f"u_h{i}" if i % 5 != 3 else None  # some units have nobody on the roster as head
            units.append(Unit(id=i + 1, name=f"单位{i:02d}", head_user_id=head, active=i % 7 != 6))
            if head:
                people.append(Person(user_id=head, name=f"负责人{i}", title="局长", role=Role.UNIT_HEAD,
                                     unit_id=i + 1, active=i % 4 != 2))
        self.rows += units + people
        notice_id = 0
        for n in range(1, TASKS + 1):
            # a few units get most tasks, so the ≥5 / ≥20 bonus tiers and the 第十条 reds all occur
            unit = units[min(int(rng.expovariate(0.25)), UNITS - 1)]
            assigned = self.moment(FIRST, LAST - timedelta(days=5))
            original = self.moment(assigned + timedelta(days=2), assigned + timedelta(days=30))
            deadline, cycle = original, 0
            if rng.random() < 0.15:  # an approved extension moved the deadline
                deadline, cycle = self.moment(original, original + timedelta(days=25)), 1
            fate = rng.random()
            closed_at, status = None, rng.choice((TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS, TaskStatus.REPORTED_DONE))
            if unit.id in GOOD:  # units in good standing: every task closed before its deadline
                status = TaskStatus.CLOSED
                closed_at = self.moment(assigned + timedelta(hours=1), deadline)
            elif fate < 0.55:
                status = TaskStatus.CLOSED
                closed_at = self.moment(assigned + timedelta(hours=1), deadline + timedelta(days=rng.choice((0, 2, 40))))
            elif fate < 0.65:
                status = TaskStatus.CANCELLED
                closed_at = self.moment(assigned + timedelta(hours=1), deadline + timedelta(days=20))
            elif fate < 0.68:
                closed_at = deadline  # closed exactly at the deadline: on time (≤)
                status = TaskStatus.CLOSED
            task = Task(id=n, code=f"DB-{assigned.year}-{n:04d}", title=f"第{n}项", lead_unit_id=unit.id,
                        category=rng.choice(CATEGORIES), assigner_id="u_office", assigned_at=assigned,
                        original_deadline=original, deadline=deadline, cycle=cycle, cycle_started_at=assigned,
                        status=status, closed_at=closed_at)
            self.rows.append(task)
            end = closed_at or LAST
            for _ in range(rng.choice((0, 0, 1, 3))):
                self.rows.append(ProgressReport(task_id=n, author_id="u_office", text="进展",
                                                at=self.moment(assigned, min(end, LAST))))
            # colour notices, while the task was still open
            steps = [(NoticeKind.BLUE, 1, 1), (NoticeKind.YELLOW, 1, 5), (NoticeKind.RED, 1, 15),
                     (NoticeKind.RED, 2, rng.choice((25, 200, 380)))]  # a 2nd red, sometimes a year on
            for kind, seq, days in steps:
                due = deadline + timedelta(days=days, hours=rng.randrange(0, 3))
                if due >= end or rng.random() < 0.1:
                    break
                notice_id += 1
                self.notice(notice_id, task, kind, seq, due, end)
        return self.rows + self.audit

    def notice(self, notice_id: int, task: Task, kind: NoticeKind, seq: int, due: datetime, end: datetime) -> None:
        rng = self.rng
        code = f"{task.code}-{kind.value[0].upper()}{seq}"
        issued, status = due, NoticeStatus.ISSUED
        if kind is not NoticeKind.BLUE:  # yellow and red wait for a signature: some never get it
            roll = rng.random()
            if roll < 0.12:
                issued, status = None, NoticeStatus.DRAFT
                if rng.random() < 0.4:
                    self.audit.append(AuditEvent(task_id=task.id, at=self.moment(due, due + timedelta(days=4)),
                                                 actor_id="u_deputy", action="notice_held", detail={"notice": code}))
            elif roll < 0.2:
                issued, status = None, NoticeStatus.VOID
                self.audit.append(AuditEvent(task_id=task.id, at=self.moment(due, due + timedelta(days=6)),
                                             actor_id="system", action="notice_void", detail={"notice": code}))
            else:
                issued = self.moment(due, due + timedelta(days=3))
        self.rows.append(Notice(id=notice_id, code=code, task_id=task.id, kind=kind, seq=seq, cycle=task.cycle,
                                status=status, due_at=due, created_at=due, issued_at=issued,
                                signer_id=None if kind is NoticeKind.BLUE else rng.choice(("u_deputy", "u_head", None)),
                                deadline_at_issue=task.deadline))
        if issued is not None:
            self.rows.append(ScoreEvent(unit_id=task.lead_unit_id, task_id=task.id, notice_id=notice_id,
                                        year=issued.astimezone(SHANGHAI).year, points=POINTS[kind], at=issued))


@pytest.fixture
def seeded(db_url: str) -> Iterator[tuple]:
    engine = make_engine(db_url)
    create_schema(engine)
    rows = History(random.Random(SEED)).build()
    with transaction(engine) as session:
        for model in (Unit, Person, Task, Notice, ScoreEvent, ProgressReport, AuditEvent):
            session.add_all([r for r in rows if isinstance(r, model)])
            session.flush()
    yield engine
    engine.dispose()


def plain(value: object) -> object:
    """Anything a report holds, as plain comparable values (rows by their key and shown fields)."""
    if isinstance(value, Task):
        return ("task", value.id, value.code, value.title, value.category)
    if isinstance(value, Unit):
        return ("unit", value.id, value.name)
    if isinstance(value, Person):
        return ("person", value.user_id, value.name)
    if isinstance(value, Notice) or hasattr(value, "_mapping"):  # a Notice, or a row of its columns
        return ("notice", value.id, value.code, plain(value.kind), value.issued_at)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value.value if isinstance(value, Enum) else value


def both(engine, old: Callable[[Session], object], new: Callable[[Session], object]) -> tuple:
    """(oracle's, SQL path's), each read in a session of its own (SQLite holds one at a time)."""
    with Session(engine) as session:
        want = old(session)
    with Session(engine) as session:
        return want, new(session)


def same_bulletin(engine, period: reports.Period) -> None:
    want, got = both(engine, lambda s: oracle.build_bulletin(s, period, RULES),
                     lambda s: reports.build_bulletin(s, period, RULES))
    named = {code for c in got.criticised + got.admonished for code, _ in c.tasks}
    assert set(got.titles) == named, period
    want = dataclasses.replace(want, titles={k: v for k, v in want.titles.items() if k in named})
    assert plain(got) == plain(want), period
    assert render("report_monthly", report=got, rules=RULES).text == render(
        "report_monthly", report=want, rules=RULES).text


def test_weekly_summaries_agree_with_the_oracle(seeded) -> None:
    calendar, listed = WorkCalendar(), 0
    for monday in (b for b in BOUNDARIES if b.weekday() == 0):
        for at in (monday, monday - timedelta(microseconds=1)):
            want, got = both(seeded, lambda s, at=at: oracle.build_weekly(s, at, RULES, calendar),
                             lambda s, at=at: reports.build_weekly(s, at, RULES, calendar))
            assert got.overdue_total == len(want.overdue), at
            want = dataclasses.replace(want, overdue=want.overdue[:reports.OVERDUE_LISTED])
            assert plain(got) == plain(want), at
            assert render("report_weekly", report=got, rules=RULES).text == render(
                "report_weekly", report=want, rules=RULES).text
            listed += got.overdue_total > reports.OVERDUE_LISTED
    assert listed > 5  # weeks with more overdue tasks than the summary lists


def test_monthly_bulletins_and_quarters_agree_with_the_oracle(seeded) -> None:
    seen = {"criticised": 0, "admonished": 0, "stalled": 0, "praised": 0}
    for first in (b for b in BOUNDARIES if b.day == 1 and b.hour == 0):
        period = reports.month_before(first)
        same_bulletin(seeded, period)
        with Session(seeded) as session:
            got = reports.build_bulletin(session, period, RULES)
            for key in seen:
                seen[key] += len(getattr(got, key))
    for year in (2026,):
        for month in (1, 4, 7, 10):
            start = datetime(year, month, 1, tzinfo=SHANGHAI)
            end = datetime(year + month // 10, month % 12 + 3 if month < 10 else 1, 1, tzinfo=SHANGHAI)
            same_bulletin(seeded, reports.Period(start, end, f"{year}-Q{month // 3 + 1}"))
    # the month to date, as the dashboard shows it, at odd moments
    for at in (datetime(2026, 3, 17, 10, 5, tzinfo=SHANGHAI), datetime(2026, 12, 31, 23, 59, tzinfo=SHANGHAI)):
        same_bulletin(seeded, reports.Period(at.replace(day=1, hour=0, minute=0), at, "x"))
    assert all(seen.values()), seen  # the history holds every case a bulletin speaks of


@pytest.mark.parametrize("at", [datetime(2026, 6, 30, 9, tzinfo=SHANGHAI), datetime(2026, 12, 31, 9, tzinfo=SHANGHAI),
                                datetime(2027, 1, 1, tzinfo=SHANGHAI), datetime(2027, 1, 15, tzinfo=SHANGHAI)])
def test_year_end_reports_agree_with_the_oracle(seeded, at: datetime) -> None:
    for year in (2025, 2026):
        want, got = both(seeded, lambda s, year=year: oracle.build_annual(s, year, at, RULES),
                         lambda s, year=year: reports.build_annual(s, year, at, RULES))
        assert plain(got) == plain(want), (year, at)
        assert render("report_annual", report=got, rules=RULES).text == render(
            "report_annual", report=want, rules=RULES).text
        if year == 2026:
            assert got.stars and got.criticised and any(u.no_yellow_bonus for u in got.units)


def test_dashboard_counts_agree_with_the_oracle(seeded) -> None:
    for cutoff in (datetime(2026, 3, 17, 10, 5, tzinfo=SHANGHAI), datetime(2026, 9, 1, tzinfo=SHANGHAI),
                   datetime(2026, 12, 31, 23, 59, tzinfo=SHANGHAI)):
        with Session(seeded) as old:
            history = oracle.History(old, cutoff)
            old.close()  # the rows stay loaded; SQLite holds one session at a time
        with Session(seeded) as new:
            assert report_queries.categories(new, cutoff) == oracle.categories(history)
            for unit_id in (None, 1, 4):
                for category in (None, "其他"):
                    got = {u: (c["open"], c["overdue"], c["colours"]) for u, c in
                           report_queries.open_by_unit(new, cutoff, unit_id, category).items()}
                    assert got == oracle.open_by_unit(history, cutoff, unit_id, category), (cutoff, unit_id, category)
                    starts = [b for b in BOUNDARIES if b < cutoff][-12:]  # where the history puts moments exactly
                    want: dict[tuple[int, NoticeKind], int] = defaultdict(int)
                    for at, kind in oracle.scored_between(history, starts[0], unit_id, category):
                        want[sum(at >= start for start in starts[1:]), kind] += 1
                    assert report_queries.scored_by_span(new, starts, cutoff, unit_id, category) == want
            assert sorted(t.id for t in report_queries.open_tasks(new, cutoff)) == sorted(
                t.id for t in history.tasks.values() if history.is_open(t))
            assert any(c["colours"][k] for c in report_queries.open_by_unit(new, cutoff).values() for k in COLOURS)


def test_the_generated_history_has_the_edges(seeded) -> None:
    """Moments exactly at a cut-off, tasks closed at their deadline, cancelled, extended, reds across years."""
    with Session(seeded) as session:
        tasks = list(session.exec(Task.__table__.select()))
        closings = {t.closed_at for t in tasks if t.closed_at is not None}
        assert len(closings & set(BOUNDARIES)) >= 5
        assert sum(t.closed_at == t.deadline for t in tasks) >= 5
        assert sum(t.status == TaskStatus.CANCELLED for t in tasks) >= 20
        assert sum(t.cycle for t in tasks) >= 20
        reds = [e for e in session.exec(ScoreEvent.__table__.select()) if e.points == POINTS[NoticeKind.RED]]
        by_task: dict[int, set[int]] = {}
        for event in reds:
            by_task.setdefault(event.task_id, set()).add(event.year)
        assert any(len(years) > 1 for years in by_task.values())
    assert date(2026, 1, 1) in {b.date() for b in BOUNDARIES}
