"""The counts the bulletins, the dashboard and the 台账 show, aggregated in SQL as the data stood at a
cut-off (reminders/reports.py defines what each means). Nothing here reads a whole history into
objects: tallies and task counts come back GROUP BY unit (and colour), and rows are loaded only for
what a report names.

The cut-off rules, the same in every query: a task counts if assigned before the cut-off; it is open
at the cut-off while it has no closed_at or closed at or after it (the current status is not
consulted for that); a colour notice counts from its ScoreEvent.at before the cut-off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, time, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, Row, and_, case, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

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
from storage.tz import SHANGHAI, to_shanghai

CHUNK = 900  # SQLite allows a bounded number of bound parameters
K = TypeVar("K")
# a task's colour is the highest its scored notices reached: ranked here so SQL can take the MAX
COLOUR_RANK = {NoticeKind.BLUE: 1, NoticeKind.YELLOW: 2, NoticeKind.RED: 3}
RANK_COLOUR = {rank: kind for kind, rank in COLOUR_RANK.items()}
URGE_COLUMNS = (Notice.task_id, Notice.id, Notice.code, Notice.kind, Notice.issued_at)  # what 措施10 shows


# ---- predicates -----------------------------------------------------------------------------------
def assigned_before(cutoff: datetime) -> ColumnElement[bool]:
    return Task.assigned_at < cutoff


def open_at(cutoff: datetime) -> ColumnElement[bool]:
    return or_(Task.closed_at.is_(None), Task.closed_at >= cutoff)


def finished_before(cutoff: datetime) -> ColumnElement[bool]:
    return and_(Task.closed_at.is_not(None), Task.closed_at < cutoff)


def not_cancelled(cutoff: datetime) -> ColumnElement[bool]:
    """Not 撤销 by the cut-off. Spelled as an OR so that a NULL closed_at keeps the task (NOT of a
    comparison with NULL would drop it)."""
    return or_(Task.status != TaskStatus.CANCELLED, Task.closed_at.is_(None), Task.closed_at >= cutoff)


def on_time(cutoff: datetime) -> ColumnElement[bool]:
    """Closed (销号) before the cut-off, on or before its current deadline."""
    return and_(Task.status == TaskStatus.CLOSED, finished_before(cutoff), Task.closed_at <= Task.deadline)


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _colour_rank() -> ColumnElement[int]:
    return case(*((Notice.kind == kind, rank) for kind, rank in COLOUR_RANK.items()), else_=0)


def chunks(keys: Iterable[K], size: int = CHUNK) -> Iterator[list[K]]:
    """Keys for an IN (…), `size` at a time."""
    keys = list(keys)
    for start in range(0, len(keys), size):
        yield keys[start:start + size]


# ---- colour notices -------------------------------------------------------------------------------
def tallies(session: Session, cutoff: datetime, since: datetime, year: int | None = None,
            ) -> list[tuple[int, NoticeKind, int, int]]:
    """(unit id, colour, notices, points) of the colour notices scored from `since` to the cut-off."""
    query = (select(ScoreEvent.unit_id, Notice.kind, func.count(), func.coalesce(func.sum(ScoreEvent.points), 0))
             .join(Notice, Notice.id == ScoreEvent.notice_id)
             .where(ScoreEvent.at >= since, ScoreEvent.at < cutoff)
             .group_by(ScoreEvent.unit_id, Notice.kind))
    if year is not None:
        query = query.where(ScoreEvent.year == year)
    return [tuple(row) for row in session.exec(query)]  # type: ignore[misc]


def colours(session: Session, cutoff: datetime, task_ids: Iterable[int]) -> dict[int, NoticeKind]:
    """task id → the highest colour scored on it before the cut-off (tasks never urged are absent)."""
    out: dict[int, NoticeKind] = {}
    for chunk in chunks(task_ids):
        for task_id, rank in session.exec(
                select(ScoreEvent.task_id, func.max(_colour_rank())).join(Notice, Notice.id == ScoreEvent.notice_id)
                .where(ScoreEvent.at < cutoff, ScoreEvent.task_id.in_(chunk)).group_by(ScoreEvent.task_id)):
            out[task_id] = RANK_COLOUR[rank]
    return out


def red_events(session: Session, cutoff: datetime, year: int) -> list[Row]:
    """The red score events 第十条 needs for `year`, in order: every red of the year, and every earlier
    red on a task that had one in the year (a 2nd red on one task may span two years). Plain rows of
    (id, unit_id, task_id, year, at): a county with many reds makes many."""
    reds = (select(ScoreEvent.id, ScoreEvent.unit_id, ScoreEvent.task_id, ScoreEvent.year, ScoreEvent.at).join(Notice, Notice.id == ScoreEvent.notice_id)
            .where(Notice.kind == NoticeKind.RED, ScoreEvent.at < cutoff))
    tasks = (select(ScoreEvent.task_id).join(Notice, Notice.id == ScoreEvent.notice_id)
             .where(Notice.kind == NoticeKind.RED, ScoreEvent.at < cutoff, ScoreEvent.year == year))
    return list(session.exec(reds.where(or_(ScoreEvent.year == year, ScoreEvent.task_id.in_(tasks)))
                             .order_by(ScoreEvent.at, ScoreEvent.id)))


def scored_by_span(session: Session, starts: Sequence[datetime], cutoff: datetime, unit_id: int | None = None,
                   category: str | None = None) -> dict[tuple[int, NoticeKind], int]:
    """(span, colour) → colour notices scored in it, of one unit or one category: span i runs from
    starts[i] to starts[i + 1], the last to the cut-off (the dashboard's weeks). Counted in SQL: a
    busy quarter scores thousands."""
    span = case(*((ScoreEvent.at < start, i) for i, start in enumerate(starts[1:])), else_=len(starts) - 1)
    query = (select(span.label("span"), Notice.kind.label("kind")).join(Notice, Notice.id == ScoreEvent.notice_id)
             .where(ScoreEvent.at >= starts[0], ScoreEvent.at < cutoff))
    if unit_id is not None:
        query = query.where(ScoreEvent.unit_id == unit_id)
    if category is not None:
        query = query.join(Task, Task.id == ScoreEvent.task_id).where(
            Task.category == category, assigned_before(cutoff))
    scored = query.subquery()  # grouped outside: PostgreSQL would not match a GROUP BY CASE to its select's
    return {(i, kind): count for i, kind, count in session.exec(
        select(scored.c.span, scored.c.kind, func.count()).group_by(scored.c.span, scored.c.kind))}


# ---- tasks ----------------------------------------------------------------------------------------
def new_and_closed(session: Session, start: datetime, cutoff: datetime) -> tuple[int, int]:
    """Tasks assigned in [start, cutoff), and tasks closed (销号) in it."""
    new, closed = session.exec(select(
        _count(Task.assigned_at >= start),
        _count(and_(Task.status == TaskStatus.CLOSED, finished_before(cutoff), Task.closed_at >= start)),
    ).where(assigned_before(cutoff))).one()
    return int(new), int(closed)


def _overdue(cutoff: datetime) -> ColumnElement[bool]:
    return and_(assigned_before(cutoff), open_at(cutoff), Task.deadline < cutoff)


def overdue_count(session: Session, cutoff: datetime) -> int:
    return session.exec(select(func.count()).select_from(Task).where(_overdue(cutoff))).one()


def most_overdue(session: Session, cutoff: datetime, limit: int) -> list[Task]:
    """At least the `limit` open tasks most overdue at the cut-off by calendar days (Shanghai), with
    every task that ties the last of them on its deadline's day: the caller orders by days, then id."""
    condition = _overdue(cutoff)
    tenth = session.exec(select(Task.deadline).where(condition).order_by(Task.deadline, Task.id)
                         .offset(limit - 1).limit(1)).first()
    if tenth is not None:
        day_after = datetime.combine(to_shanghai(tenth).date() + timedelta(days=1), time(), tzinfo=SHANGHAI)
        condition = and_(condition, Task.deadline < day_after)
    return list(session.exec(select(Task).where(condition)))


def due_by_unit(session: Session, start: datetime, end: datetime, cutoff: datetime) -> dict[int, tuple[int, int]]:
    """lead unit id → (tasks whose current deadline fell in [start, end), how many of them on time),
    cancelled ones left out."""
    return {unit_id: (int(due), int(kept)) for unit_id, due, kept in session.exec(
        select(Task.lead_unit_id, func.count(), _count(on_time(cutoff)))
        .where(assigned_before(cutoff), Task.deadline >= start, Task.deadline < end, not_cancelled(cutoff))
        .group_by(Task.lead_unit_id))}


def assigned_by_unit(session: Session, start: datetime, cutoff: datetime) -> dict[int, tuple[int, int]]:
    """lead unit id → (tasks assigned in [start, cutoff) and not cancelled, how many of them on time)."""
    return {unit_id: (int(count), int(kept)) for unit_id, count, kept in session.exec(
        select(Task.lead_unit_id, func.count(), _count(on_time(cutoff)))
        .where(assigned_before(cutoff), Task.assigned_at >= start, not_cancelled(cutoff))
        .group_by(Task.lead_unit_id))}


def open_by_unit(session: Session, cutoff: datetime, unit_id: int | None = None, category: str | None = None,
                 ) -> dict[int, dict[str, object]]:
    """lead unit id → {"open": n, "overdue": n, "colours": {colour: n}} over the tasks open at the cut-off."""
    colour = (select(ScoreEvent.task_id, func.max(_colour_rank()).label("rank"))
              .join(Notice, Notice.id == ScoreEvent.notice_id).where(ScoreEvent.at < cutoff)
              .group_by(ScoreEvent.task_id).subquery())
    query = (select(Task.lead_unit_id, colour.c.rank, func.count(), _count(Task.deadline < cutoff))
             .outerjoin(colour, colour.c.task_id == Task.id)
             .where(assigned_before(cutoff), open_at(cutoff)).group_by(Task.lead_unit_id, colour.c.rank))
    if unit_id is not None:
        query = query.where(Task.lead_unit_id == unit_id)
    if category is not None:
        query = query.where(Task.category == category)
    out: dict[int, dict[str, object]] = defaultdict(lambda: {"open": 0, "overdue": 0,
                                                             "colours": dict.fromkeys(COLOURS, 0)})
    for lead, rank, count, overdue in session.exec(query):
        row = out[lead]
        row["open"] += count  # type: ignore[operator]
        row["overdue"] += int(overdue)  # type: ignore[operator]
        if rank:
            row["colours"][RANK_COLOUR[rank]] += count  # type: ignore[index]
    return dict(out)


def open_tasks(session: Session, cutoff: datetime, unit_id: int | None = None,
               category: str | None = None) -> list[Task]:
    query = select(Task).where(assigned_before(cutoff), open_at(cutoff)).order_by(Task.id)
    if unit_id is not None:
        query = query.where(Task.lead_unit_id == unit_id)
    if category is not None:
        query = query.where(Task.category == category)
    return list(session.exec(query))


FORECAST_TASK_COLUMNS = (Task.id, Task.lead_unit_id, Task.status, Task.assigned_at, Task.deadline, Task.cycle,
                         Task.cycle_started_at, Task.acknowledged_at, Task.last_progress_at, Task.report_every_days,
                         Task.deployed_at, Task.monthly_report)  # what reminders.engine.task_state reads


def forecast_inputs(session: Session, now: datetime, until: datetime, notice_columns: tuple,
                    unit_id: int | None = None, category: str | None = None) -> tuple[list[Row], list[Row]]:
    """What the colour forecast (Policy.upcoming) to `until` needs, as plain rows: the tasks open now
    that can get a colour notice by then, and of each only the notices its colour rule reads — this
    cycle's blue and yellow notices and its last red (Policy._colours). A colour falls due no earlier
    than the deadline (blue, yellow) or than an issued yellow of the cycle (red), so a task whose
    deadline is after `until` and whose cycle has no issued yellow is left out."""
    yellow = aliased(Notice)
    issued_yellow = (select(yellow.id).where(yellow.task_id == Task.id, yellow.cycle == Task.cycle,
                                             yellow.kind == NoticeKind.YELLOW, yellow.issued_at.is_not(None))
                     .exists())
    conditions = [assigned_before(now), open_at(now), or_(Task.deadline <= until, issued_yellow)]
    if unit_id is not None:
        conditions.append(Task.lead_unit_id == unit_id)
    if category is not None:
        conditions.append(Task.category == category)
    tasks = list(session.exec(select(*FORECAST_TASK_COLUMNS).where(*conditions).order_by(Task.id)))
    notices: list[Row] = []
    for chunk in chunks((t.id for t in tasks), CHUNK // 2):  # the found tasks' notices by index; the chunk is bound twice
        current = and_(Task.id == Notice.task_id, Task.cycle == Notice.cycle, Notice.task_id.in_(chunk))
        # each task's last red of its cycle, grouped once (a correlated MAX per notice would read a stalled
        # task's reds again for each of them)
        last_red = (select(Notice.task_id, func.max(Notice.seq).label("seq")).join(Task, current)
                    .where(Notice.kind == NoticeKind.RED).group_by(Notice.task_id).subquery())
        notices += session.exec(
            select(Notice.task_id, *notice_columns).join(Task, current)
            .outerjoin(last_red, last_red.c.task_id == Notice.task_id)
            .where(Notice.kind.in_(COLOURS), or_(Notice.kind != NoticeKind.RED, Notice.seq == last_red.c.seq)))
    return tasks, notices


def categories(session: Session, cutoff: datetime) -> list[str]:
    return sorted(session.exec(select(Task.category).where(assigned_before(cutoff)).distinct()))


def tasks_by_id(session: Session, task_ids: Iterable[int]) -> dict[int, Task]:
    out: dict[int, Task] = {}
    for chunk in chunks(set(task_ids)):
        out.update((t.id, t) for t in session.exec(select(Task).where(Task.id.in_(chunk))))
    return out


def units_by_id(session: Session, unit_ids: Iterable[int]) -> dict[int, Unit]:
    out: dict[int, Unit] = {}
    for chunk in chunks(set(unit_ids)):
        out.update((u.id, u) for u in session.exec(select(Unit).where(Unit.id.in_(chunk))))
    return out


def people(session: Session, user_ids: Iterable[str]) -> dict[str, Person]:
    """user id → Person, on the roster or not (names in history: storage.queries.person for many)."""
    out: dict[str, Person] = {}
    for chunk in chunks(set(user_ids)):
        out.update((p.user_id, p) for p in session.exec(select(Person).where(Person.user_id.in_(chunk))))
    return out


def stalled_candidates(session: Session, cutoff: datetime, urges: int,
                       ) -> list[tuple[Task, list[Row], datetime | None]]:
    """Tasks open at the cut-off with `urges` or more colour notices scored before it and no progress
    report since the last of them was issued (a superset of 措施10's: the caller checks from the
    first): each with its notices (URGE_COLUMNS) in the order they were scored, and its last report
    before the cut-off."""
    urged = (select(ScoreEvent.task_id, func.max(Notice.issued_at).label("last_urge"))
             .join(Notice, Notice.id == ScoreEvent.notice_id).where(ScoreEvent.at < cutoff)
             .group_by(ScoreEvent.task_id).having(func.count() >= urges).subquery())
    progress = (select(ProgressReport.task_id, func.max(ProgressReport.at).label("at"))
                .where(ProgressReport.at < cutoff).group_by(ProgressReport.task_id).subquery())
    found = session.exec(select(Task, progress.c.at).join(urged, urged.c.task_id == Task.id)
                         .outerjoin(progress, progress.c.task_id == Task.id)
                         .where(assigned_before(cutoff), open_at(cutoff),
                                or_(progress.c.at.is_(None), progress.c.at < urged.c.last_urge))).all()
    notices: dict[int, list[Row]] = defaultdict(list)
    for chunk in chunks(task.id for task, _ in found):  # plain rows: a bulletin may name hundreds of these
        for notice in session.exec(select(*URGE_COLUMNS).join(ScoreEvent, ScoreEvent.notice_id == Notice.id).where(
                ScoreEvent.at < cutoff, ScoreEvent.task_id.in_(chunk)).order_by(ScoreEvent.at, ScoreEvent.id)):
            notices[notice.task_id].append(notice)
    return [(task, notices[task.id], last) for task, last in found]


def titles(session: Session, codes: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    codes = list(dict.fromkeys(codes))
    for start in range(0, len(codes), CHUNK):
        out.update(session.exec(select(Task.code, Task.title).where(Task.code.in_(codes[start:start + CHUNK]))).all())
    return out


def codes(session: Session, task_ids: Iterable[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in chunks(set(task_ids)):
        out.update(session.exec(select(Task.id, Task.code).where(Task.id.in_(chunk))).all())
    return out


# ---- drafts ---------------------------------------------------------------------------------------
def waiting_drafts(session: Session, cutoff: datetime, kinds: Iterable[NoticeKind]) -> list[Notice]:
    """Drafts of `kinds` made before the cut-off and not issued before it, oldest first (void ones
    included: see marked_notices)."""
    return list(session.exec(select(Notice).where(
        Notice.kind.in_(tuple(kinds)), Notice.created_at < cutoff,
        or_(Notice.issued_at.is_(None), Notice.issued_at >= cutoff)).order_by(Notice.created_at, Notice.id)))


def marked_notices(session: Session, cutoff: datetime, actions: tuple[str, ...],
                   notices: Sequence[Notice]) -> dict[str, set[str]]:
    """audit action → the codes of `notices` it was recorded for before the cut-off. Such an event
    carries its notice's task (the void and the 暂缓 are written so), so it is found by the task's
    index, not by reading every event's detail."""
    out: dict[str, set[str]] = defaultdict(set)
    wanted = {n.code for n in notices}
    code = AuditEvent.detail["notice"].as_string()
    for chunk in chunks({n.task_id for n in notices}):
        for action, found in session.exec(select(AuditEvent.action, code).where(
                AuditEvent.task_id.in_(chunk), AuditEvent.action.in_(actions), AuditEvent.at < cutoff)):
            if found in wanted:
                out[action].add(found)
    return out


# ---- the 台账 ---------------------------------------------------------------------------------------
def issued_colours(session: Session, task_ids: Iterable[int]) -> dict[int, NoticeKind]:
    """task id → the highest colour issued on it (storage.queries.task_colour, for many tasks at once)."""
    out: dict[int, NoticeKind] = {}
    for chunk in chunks(task_ids):
        for task_id, rank in session.exec(select(Notice.task_id, func.max(_colour_rank())).where(
                Notice.task_id.in_(chunk), Notice.status == NoticeStatus.ISSUED, Notice.kind.in_(COLOURS))
                .group_by(Notice.task_id)):
            out[task_id] = RANK_COLOUR[rank]
    return out


def last_progress(session: Session, task_ids: Iterable[int]) -> dict[int, ProgressReport]:
    """task id → its latest progress report (of two at the same moment, the later written); only
    those rows are read, not every report."""
    out: dict[int, ProgressReport] = {}
    for chunk in chunks(task_ids):
        latest = (select(ProgressReport.task_id, func.max(ProgressReport.at).label("at"))
                  .where(ProgressReport.task_id.in_(chunk)).group_by(ProgressReport.task_id).subquery())
        for report in session.exec(select(ProgressReport).join(latest, and_(
                latest.c.task_id == ProgressReport.task_id, latest.c.at == ProgressReport.at))
                .order_by(ProgressReport.id)):
            out[report.task_id] = report
    return out


def score_tallies(session: Session, year: int) -> list[tuple[int, NoticeKind, int, int]]:
    """(unit id, colour, notices, points) of the colour notices scored in `year`."""
    return [tuple(row) for row in session.exec(  # type: ignore[misc]
        select(ScoreEvent.unit_id, Notice.kind, func.count(), func.coalesce(func.sum(ScoreEvent.points), 0))
        .join(Notice, Notice.id == ScoreEvent.notice_id).where(ScoreEvent.year == year)
        .group_by(ScoreEvent.unit_id, Notice.kind))]
