"""The 总览's 14-day forecast (bot/dashboard/data.heat_strip), which reads only the tasks and notices that
can decide a colour (storage.report_queries.forecast_inputs), against the plain way: every open task,
every notice it has, every rule of the policy evaluated, the colour ones kept.

The seeded history of tests/reminders/test_reports_sql.py, plus notices of an earlier cycle (issued,
drafted) on extended tasks — which must not count — at many moments, for the county, one unit's staff
and one category; SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import Session, select

from bot.dashboard import data
from reminders.calendar import WorkCalendar
from reminders.engine import notice_state, task_state
from reminders.policy import COLOUR_KINDS, WAITING, Policy
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
    ScoreEvent,
    Task,
    TaskStatus,
    Unit,
)
from storage.tz import to_shanghai
from tests.reminders.test_reports_sql import FIRST, LAST, RULES, SEED, History

SETTINGS = SimpleNamespace(rules=RULES)
CALENDAR = WorkCalendar()


@pytest.fixture
def county(db_url: str) -> Iterator:
    engine = make_engine(db_url)
    create_schema(engine)
    rows = History(random.Random(SEED)).build()
    extended = [r for r in rows if isinstance(r, Task) and r.cycle == 1]
    ids = iter(range(100_000, 200_000))
    for task in extended[::2]:  # the first cycle's notices: an issued blue and yellow, a red left waiting
        for kind, status, days in ((NoticeKind.BLUE, NoticeStatus.ISSUED, 0), (NoticeKind.YELLOW, NoticeStatus.ISSUED, 5),
                                   (NoticeKind.RED, NoticeStatus.DRAFT, 16)):
            at = task.original_deadline + timedelta(days=days)
            rows.append(Notice(id=next(ids), code=f"{task.code}-old-{kind.value}", task_id=task.id, kind=kind, seq=9,
                               cycle=0, status=status, due_at=at, created_at=at,
                               issued_at=at if status is NoticeStatus.ISSUED else None,
                               deadline_at_issue=task.original_deadline))
    # a deadline moved by hand far past the fortnight in the same cycle: its issued yellow still brings a red
    at = FIRST + timedelta(days=2 * 9 + 20, hours=10, minutes=5)
    moved = Task(id=9999, code="DB-2025-9999", title="改期未换轮次", lead_unit_id=2, category="其他",
                 assigner_id="u_office", assigned_at=at - timedelta(days=30), original_deadline=at - timedelta(days=20),
                 deadline=LAST + timedelta(days=300), cycle=0, cycle_started_at=at - timedelta(days=30))
    rows.append(moved)
    for kind, days in ((NoticeKind.BLUE, 20), (NoticeKind.YELLOW, 15)):
        rows.append(Notice(id=next(ids), code=f"{moved.code}-{kind.value}", task_id=moved.id, kind=kind, seq=1,
                           cycle=0, status=NoticeStatus.ISSUED, due_at=at - timedelta(days=days),
                           created_at=at - timedelta(days=days), issued_at=at - timedelta(days=days - 1),
                           deadline_at_issue=moved.original_deadline))
    with transaction(engine) as session:
        for model in (Unit, Person, Task, Notice, ScoreEvent, ProgressReport, AuditEvent):
            session.add_all([r for r in rows if isinstance(r, model)])
            session.flush()
    yield engine
    engine.dispose()


def plainly(session: Session, now, scope: data.Scope, filters: data.Filters) -> list[tuple]:
    """Every rule for every open task with every notice (what the page did before forecast_inputs)."""
    policy, until = Policy(CALENDAR, RULES), now + timedelta(days=data.FORECAST_DAYS)
    days: dict = defaultdict(lambda: defaultdict(set))
    for task in report_queries.open_tasks(session, now, scope.unit_id, filters.category):
        state = task_state(task)
        if state.status in (TaskStatus.CLOSED, TaskStatus.CANCELLED):  # closed since: nothing more falls due
            continue
        notices = [notice_state(n) for n in session.exec(select(Notice).where(Notice.task_id == task.id))]
        live = [n for n in notices if not (n.status in WAITING and n.cycle != state.cycle)]
        for due in policy._candidates(state, live):
            if due is not None and due.kind in COLOUR_KINDS and now < due.send_at <= until:
                days[to_shanghai(due.send_at).date()][due.kind].add(session.get(Unit, task.lead_unit_id).name)
    first = now.date() + timedelta(days=1)
    return [(d, {k: sorted(days[d][k]) for k in COLOURS if days[d][k]})
            for d in (first + timedelta(days=i) for i in range(data.FORECAST_DAYS))]


def test_the_forecast_reads_only_what_decides_it_and_says_the_same(county) -> None:
    with Session(county) as session:
        office, head = session.get(Person, "u_office"), session.get(Person, "u_h0")
    coloured = dict.fromkeys(COLOURS, 0)
    now = FIRST + timedelta(days=20, hours=3)
    while now < LAST:
        for person, filters in ((office, data.Filters()), (head, data.Filters()),
                                (office, data.Filters(category="会议交办"))):
            scope = data.Scope(person)
            with Session(county) as session:
                want = plainly(session, now, scope, filters)
            with Session(county) as session:
                got = [(h.day, h.units) for h in data.heat_strip(session, now, SETTINGS, CALENDAR, scope, filters)]
            assert got == want, (now, person.user_id, filters)
            for _, units in got:
                for kind in units:
                    coloured[kind] += 1
        now += timedelta(days=9, hours=5)
    assert min(coloured.values()) >= 10, coloured
    print(coloured)  # the forecast had blue, yellow and red days to agree on
