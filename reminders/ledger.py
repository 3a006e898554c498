"""The 台账 and the scores as rows: what the chat 台账 / 我的 / 查询 / 积分 and the Excel export say alike."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlmodel import Session, select

from reminders.calendar import WorkCalendar
from storage import report_queries
from storage.models import (
    COLOURS,
    Notice,
    NoticeStatus,
    Outbox,
    OutboxStatus,
    Person,
    Task,
    Unit,
)
from storage.receipts import reads_by_notice


def ledger_rows(session: Session, now: datetime, tasks: list[Task]) -> list[dict]:
    """One dict per task for the ledger templates: colour, unit, deadline, overdue, last progress.
    Colours and last reports are read for the listed tasks at once, not one query per task."""
    ids = [t.id for t in tasks]
    colours = report_queries.issued_colours(session, ids)
    last = report_queries.last_progress(session, ids)
    return [{"task": task, "unit": session.get(Unit, task.lead_unit_id), "colour": colours.get(task.id),
             "overdue": max((now.date() - task.deadline.date()).days, 0) if now > task.deadline else 0,
             "last": last.get(task.id), "reads": notice_reads(session, task, now)} for task in tasks]


def notice_reads(session: Session, task: Task, now: datetime, calendar: WorkCalendar | None = None) -> list[dict]:
    """Per issued colour notice of `task`, newest first: who it went to one to one and when each
    read it ("已读 12月8日 09:14"), or "未读" — `late` once a full working day has passed unread."""
    calendar = calendar or WorkCalendar()
    notices = list(session.exec(select(Notice).where(Notice.task_id == task.id, Notice.kind.in_(COLOURS),
                                                     Notice.status == NoticeStatus.ISSUED).order_by(Notice.id.desc())))
    reads = reads_by_notice(session, [n.id for n in notices if n.id is not None])
    out = []
    for notice in notices:
        # the issued notice itself: not the draft its signer was sent before, nor a card's update
        signers = [who for who in (notice.signer_id, notice.signed_by) if who]
        sent = session.exec(select(Outbox).where(Outbox.notice_id == notice.id, Outbox.target == "user",
                                                 Outbox.ding_remind_type.is_(None), Outbox.card_update.is_(False),
                                                 Outbox.created_at >= notice.issued_at,
                                                 Outbox.recipient.not_in(signers),
                                                 Outbox.status == OutboxStatus.SENT)).all()
        people = []
        for row in sorted(sent, key=lambda r: r.id or 0):
            if row.recipient in (p["user_id"] for p in people) or row.sent_at is None:
                continue
            receipt = reads.get(notice.id or 0, {}).get(row.recipient)
            person = session.get(Person, row.recipient)
            # no receipt key (a card: DingTalk reports no read status for it): unknown, never "未读"
            known = receipt is not None or row.receipt_key is not None
            late_after = datetime.combine(calendar.add_workdays(row.sent_at.date(), 1), row.sent_at.timetz())
            people.append({"user_id": row.recipient, "name": person.name if person else row.recipient,
                           "read_at": receipt.read_at if receipt else None, "known": known,
                           "text": _read_text(receipt.read_at) if receipt else ("未读" if known else UNKNOWN_READ),
                           "late": known and receipt is None and now >= late_after})
        out.append({"notice": notice, "people": people})
    return out


UNKNOWN_READ = "已送达，钉钉未回报已读"


def _read_text(moment: datetime) -> str:
    return f"已读 {moment.month}月{moment.day}日 {moment:%H:%M}"


def unit_scores(session: Session, year: int) -> list[dict]:
    """Per unit: the year's score and its colour notices, counted in SQL (GROUP BY unit, colour)."""
    score: dict[int, int] = defaultdict(int)
    counts: dict[tuple[int, str], int] = {}
    for unit_id, kind, count, points in report_queries.score_tallies(session, year):
        score[unit_id] += points
        counts[unit_id, kind] = count
    rows = [{"unit": u, "score": score.get(u.id, 0), **{k.value: counts.get((u.id, k), 0) for k in COLOURS}}
            for u in session.exec(select(Unit).order_by(Unit.id))]
    return sorted(rows, key=lambda r: (-r["score"], r["unit"].id))
