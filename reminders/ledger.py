"""The 台账 and the scores as rows: what the chat 台账 / 我的 / 查询 / 积分 and the Excel export say alike."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from storage.models import COLOURS, Notice, ProgressReport, ScoreEvent, Task, Unit
from storage.queries import task_colour


def ledger_rows(session: Session, now: datetime, tasks: list[Task]) -> list[dict]:
    """One dict per task for the ledger templates: colour, unit, deadline, overdue, last progress."""
    rows = []
    for task in tasks:
        colour = task_colour(session, task.id)
        last = session.exec(select(ProgressReport).where(ProgressReport.task_id == task.id)
                            .order_by(ProgressReport.at.desc())).first()
        rows.append({"task": task, "unit": session.get(Unit, task.lead_unit_id), "colour": colour,
                     "overdue": max((now.date() - task.deadline.date()).days, 0) if now > task.deadline else 0,
                     "last": last})
    return rows


def unit_scores(session: Session, year: int) -> list[dict]:
    totals = dict(session.exec(select(ScoreEvent.unit_id, func.sum(ScoreEvent.points))
                               .where(ScoreEvent.year == year).group_by(ScoreEvent.unit_id)).all())
    counts: dict[tuple[int, str], int] = {}
    for unit_id, kind in session.exec(select(ScoreEvent.unit_id, Notice.kind).join(
            Notice, Notice.id == ScoreEvent.notice_id).where(ScoreEvent.year == year)):
        counts[unit_id, kind] = counts.get((unit_id, kind), 0) + 1
    rows = [{"unit": u, "score": totals.get(u.id, 0) or 0,
             **{k.value: counts.get((u.id, k), 0) for k in COLOURS}}
            for u in session.exec(select(Unit).order_by(Unit.id))]
    return sorted(rows, key=lambda r: (-r["score"], r["unit"].id))
