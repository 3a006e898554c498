"""季讲评 (华容 措施九: 旬调度、月通报、季讲评) and 半年一讲评 (湘阴 实施方案 18): reports built like the
monthly bulletin — ranking, colours, praise and criticism — over a quarter or a half-year.

Each goes to the leaders' group from work_start of the first working day after its period, once
(the same audit-event claim as the monthly bulletin: "bulletin_quarterly" / "bulletin_half_year"
with the period key 2026-Q1 / 2026-H1), and only where the rule profile asks for it
(Rules.quarterly_review, Rules.half_year_review). `duban report quarterly|half-year --at DATE` prints
the review of the period before DATE, as it was sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from message_templates.render import render
from message_templates.reply import Reply
from reminders.calendar import WorkCalendar
from reminders.reports import (
    Period,
    ReportSettings,
    _claim,
    _has_history,
    _to_group,
    build_bulletin,
    first_working_moment,
)
from storage import audit
from storage.tz import SHANGHAI, to_shanghai

KINDS = {"quarterly": 3, "half-year": 6}  # months in the period
ACTIONS = {"quarterly": "bulletin_quarterly", "half-year": "bulletin_half_year"}


def period_before(kind: str, at: datetime) -> Period:
    """The last whole quarter (or half-year) that ended at or before `at`."""
    months = KINDS[kind]
    at = to_shanghai(at)
    index = (at.month - 1) // months  # the period `at` is in
    end = datetime(at.year, 1 + index * months, 1, tzinfo=SHANGHAI)
    year, first = (end.year, end.month - months) if end.month > months else (end.year - 1, 13 - months)
    start = datetime(year, first, 1, tzinfo=SHANGHAI)
    number = (first - 1) // months + 1
    key = f"{year}-Q{number}" if kind == "quarterly" else f"{year}-H{number}"
    return Period(start, end, key)


def enabled(kind: str, settings: ReportSettings) -> bool:
    return settings.rules.quarterly_review if kind == "quarterly" else settings.rules.half_year_review


def render_review(session: Session, kind: str, at: datetime, settings: ReportSettings) -> Reply:
    period = period_before(kind, at)
    return render("report_review", report=build_bulletin(session, period, settings.rules), kind=kind,
                  months=KINDS[kind], rules=settings.rules)


def issue_review(session: Session, kind: str, now: datetime, settings: ReportSettings, calendar: WorkCalendar) -> Reply | None:
    """Send the review of the period just ended to the leaders' group, once, from the first working
    day after it; nothing where the profile has no such review."""
    period = period_before(kind, now)
    if (not enabled(kind, settings) or now < first_working_moment(period.end.date(), calendar, settings.rules)
            or not _has_history(session, period.end) or not _claim(session, ACTIONS[kind], period.key)):
        return None
    reply = render_review(session, kind, now, settings)
    _to_group(session, "leaders", reply, now)
    audit.record(session, at=now, actor=audit.SYSTEM, action=ACTIONS[kind], period=period.key)
    return reply


def issue_reviews(session: Session, now: datetime, settings: ReportSettings, calendar: WorkCalendar) -> list[Reply]:
    """Every review due at `now` not sent yet: safe to call as often as liked (with reports.issue_due)."""
    sent = [issue_review(session, kind, now, settings, calendar) for kind in KINDS]
    return [reply for reply in sent if reply is not None]


def print_review(kind: str, at: datetime, engine: Engine, settings: ReportSettings) -> str:
    """The text of the review of the period before `at`; sends nothing."""
    if kind not in KINDS:
        raise ValueError(f"没有「{kind}」这种讲评，可选：quarterly、half-year")
    with Session(engine) as session:
        return render_review(session, kind, to_shanghai(at), settings).text
