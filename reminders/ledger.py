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
    Task,
    Unit,
)
from storage.receipts import reads_by_notice


def ledger_rows(session: Session, now: datetime, tasks: list[Task]) -> list[dict]:
    """One dict per task for the ledger templates: colour, unit, deadline, overdue, last progress, who
    read its notices. All of it is read for the listed tasks at once, not one query per task or notice."""
    ids = [t.id for t in tasks]
    colours = report_queries.issued_colours(session, ids)
    last = report_queries.last_progress(session, ids)
    units = report_queries.units_by_id(session, (t.lead_unit_id for t in tasks))
    reads = notice_reads_of(session, tasks, now)
    return [{"task": task, "unit": units.get(task.lead_unit_id), "colour": colours.get(task.id),
             "overdue": max((now.date() - task.deadline.date()).days, 0) if now > task.deadline else 0,
             "last": last.get(task.id), "reads": reads[task.id]} for task in tasks]


def notice_reads(session: Session, task: Task, now: datetime, calendar: WorkCalendar | None = None) -> list[dict]:
    """notice_reads_of for one task."""
    return notice_reads_of(session, [task], now, calendar)[task.id]


def notice_reads_of(session: Session, tasks: list[Task], now: datetime, calendar: WorkCalendar | None = None,
                    ) -> dict[int, list[dict]]:
    """task id → per issued colour notice of it, newest first: who it went to one to one and when each
    read it ("已读 12月8日 09:14"), or "未读" — `late` once a full working day has passed unread. The
    notices, their messages, receipts and recipients are read in one query each for all the tasks."""
    calendar = calendar or WorkCalendar()
    notices: list[Notice] = []
    for chunk in report_queries.chunks([t.id for t in tasks]):
        notices += session.exec(select(Notice).where(Notice.task_id.in_(chunk), Notice.kind.in_(COLOURS),
                                                     Notice.status == NoticeStatus.ISSUED))
    notices.sort(key=lambda n: n.id or 0, reverse=True)
    by_id = {n.id: n for n in notices}
    reads: dict[int, dict] = {}
    sent: dict[int, list[Outbox]] = defaultdict(list)
    for chunk in report_queries.chunks(by_id):
        reads.update(reads_by_notice(session, chunk))
        for row in session.exec(select(Outbox).where(
                Outbox.notice_id.in_(chunk), Outbox.target == "user", Outbox.ding_remind_type.is_(None),
                Outbox.card_update.is_(False), Outbox.status == OutboxStatus.SENT).order_by(Outbox.id)):
            notice = by_id[row.notice_id]
            # the issued notice itself: not the draft its signer was sent before, nor a card's update
            if row.created_at >= notice.issued_at and row.recipient not in (notice.signer_id, notice.signed_by):
                sent[notice.id].append(row)
    names = report_queries.people(session, (row.recipient for rows in sent.values() for row in rows))
    out: dict[int, list[dict]] = {t.id: [] for t in tasks}
    for notice in notices:
        people: list[dict] = []
        for row in sent[notice.id]:
            if row.recipient in (p["user_id"] for p in people) or row.sent_at is None:
                continue
            receipt = reads.get(notice.id, {}).get(row.recipient)
            person = names.get(row.recipient)
            # no receipt key (a card: DingTalk reports no read status for it): unknown, never "未读"
            known = receipt is not None or row.receipt_key is not None
            late_after = datetime.combine(calendar.add_workdays(row.sent_at.date(), 1), row.sent_at.timetz())
            people.append({"user_id": row.recipient, "name": person.name if person else row.recipient,
                           "read_at": receipt.read_at if receipt else None, "known": known,
                           "text": _read_text(receipt.read_at) if receipt else ("未读" if known else UNKNOWN_READ),
                           "late": known and receipt is None and now >= late_after})
        out[notice.task_id].append({"notice": notice, "people": people})
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
