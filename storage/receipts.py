"""Who read a colour notice, and whom DingTalk would not deliver to: the rows behind issue 13.

A sent notice row with a receipt key (processQueryKey, or openDingId for a DING) gets a ReadWatch;
the read-status job (bot/receipts_job.py) asks DingTalk about each watched key on a fixed
schedule — POLL_AFTER after sending, then every POLL_EVERY — until everyone it went to has read
it or WATCH_FOR has passed (OTO_WINDOW for one-to-one messages: DingTalk forgets them sooner). One call answers for every row that shares a key (a batchSend to
several heads), so the cost is per key, not per person: at most max_polls(window) calls (times
the pages of a large group) per key — 4 for a one-to-one key, 16 for a group or DING key.

Read times are evidence: a ReadReceipt is inserted once and never updated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.db import transaction
from storage.models import Notice, NoticeKind, Outbox, ReadReceipt, ReadWatch, Undeliverable

COLOUR_KINDS = (NoticeKind.BLUE, NoticeKind.YELLOW, NoticeKind.RED)
WATCH_FOR = timedelta(days=7)
# soon after sending (most heads read within the hour), then less and less often
POLL_AFTER = (timedelta(minutes=10), timedelta(hours=1), timedelta(hours=4))
POLL_EVERY = timedelta(hours=12)
# DingTalk answers oToMessages/readStatus only within 24 hours of sending (its API page, "在发送
#消息24小时内可以通过processQueryKey查询"): one-to-one messages are watched that long, no longer
OTO_WINDOW = timedelta(hours=24)


def max_polls(window: timedelta) -> int:
    """The budget: how many looks a key gets within `window` (16 for a week, 4 for a day)."""
    return len(POLL_AFTER) + int((window - POLL_AFTER[-1]) / POLL_EVERY)


MAX_POLLS = max_polls(WATCH_FOR)


@dataclass(frozen=True)
class WatchedKey:
    """One question to DingTalk: who of these rows' recipients has read what `key` names."""

    key: str
    channel: str  # "user", "group" or "ding"
    outbox_ids: tuple[int, ...]
    recipients: tuple[str, ...]  # userIds (user, ding), or the openConversationId (group)


@dataclass(frozen=True)
class Read:
    user_id: str
    read_at: datetime
    exact: bool


def watch(session: Session, rows: Iterable[Outbox], now: datetime) -> None:
    """Start watching the colour notices among `rows`, just marked sent with a receipt key."""
    for row in rows:
        if row.receipt_key is None or row.notice_id is None or session.get(ReadWatch, row.id):
            continue
        notice = session.get(Notice, row.notice_id)
        if notice is None or notice.kind not in COLOUR_KINDS:
            continue
        channel = "ding" if row.ding_remind_type else row.target
        session.add(ReadWatch(outbox_id=row.id, channel=channel, sent_at=now, next_poll_at=now + POLL_AFTER[0]))


def due(engine: Engine, now: datetime, limit: int = 50) -> list[WatchedKey]:
    """The keys whose next look is due, oldest first."""
    with Session(engine) as session:
        found = session.exec(
            select(ReadWatch, Outbox).join(Outbox, Outbox.id == ReadWatch.outbox_id)
            .where(ReadWatch.done.is_(False), ReadWatch.next_poll_at <= now)
            .order_by(ReadWatch.next_poll_at, ReadWatch.outbox_id)
        ).all()
    by_key: dict[tuple[str, str], list[Outbox]] = defaultdict(list)
    for watched, row in found:
        by_key[(watched.channel, str(row.receipt_key))].append(row)
    return [WatchedKey(key=key, channel=channel, outbox_ids=tuple(r.id for r in rows if r.id is not None),
                       recipients=tuple(dict.fromkeys(r.recipient for r in rows)))
            for (channel, key), rows in list(by_key.items())[:limit]]


def record(engine: Engine, watched: WatchedKey, reads: Iterable[Read], now: datetime) -> int:
    """Store the reads not stored yet (a read time once written is never changed), move the
    key's next look on, and stop watching once all have read or time is up; returns new reads."""
    reads = list(reads)
    added = 0
    with transaction(engine) as session:
        rows = list(session.exec(select(Outbox).where(Outbox.id.in_(watched.outbox_ids))))
        for row in rows:
            readers = {r.user_id for r in session.exec(select(ReadReceipt).where(ReadReceipt.outbox_id == row.id))}
            for read in reads:
                if read.user_id in readers or (row.target == "user" and read.user_id != row.recipient):
                    continue
                session.add(ReadReceipt(outbox_id=row.id, notice_id=row.notice_id, user_id=read.user_id,
                                        read_at=read.read_at, exact=read.exact, recorded_at=now))
                readers.add(read.user_id)
                added += 1
            watch_row = session.get(ReadWatch, row.id)
            if watch_row is None:
                continue
            watch_row.polls += 1
            everyone = row.target == "user" and row.recipient in readers
            watch_row.next_poll_at = _next_poll(watch_row.sent_at, watch_row.polls)
            window = OTO_WINDOW if watch_row.channel == "user" else WATCH_FOR
            watch_row.done = everyone or watch_row.next_poll_at > watch_row.sent_at + window
            session.add(watch_row)
    return added


def _next_poll(sent_at: datetime, polls: int) -> datetime:
    if polls < len(POLL_AFTER):
        return sent_at + POLL_AFTER[polls]
    return sent_at + POLL_AFTER[-1] + POLL_EVERY * (polls - len(POLL_AFTER) + 1)


def reads_by_notice(session: Session, notice_ids: Iterable[int]) -> Mapping[int, dict[str, ReadReceipt]]:
    """notice id -> userId -> the earliest read of any of its rows (a head may read the DM and
    the group post: the first read counts)."""
    ids = list(notice_ids)
    out: dict[int, dict[str, ReadReceipt]] = defaultdict(dict)
    if not ids:
        return out
    for receipt in session.exec(select(ReadReceipt).where(ReadReceipt.notice_id.in_(ids))
                                .order_by(ReadReceipt.read_at)):
        out[receipt.notice_id or 0].setdefault(receipt.user_id, receipt)
    return out


def note_undeliverable(session: Session, user_id: str, now: datetime) -> bool:
    """Count a row DingTalk refused for `user_id`; True the first time (tell the 督查室 then only)."""
    known = session.get(Undeliverable, user_id)
    if known is None:
        session.add(Undeliverable(user_id=user_id, first_at=now, last_at=now, rows=1))
        return True
    known.last_at, known.rows = now, known.rows + 1
    session.add(known)
    return False


def undeliverable(session: Session, since: datetime | None = None) -> list[Undeliverable]:
    query = select(Undeliverable).order_by(Undeliverable.first_at)
    if since is not None:
        query = query.where(Undeliverable.last_at >= since)
    return list(session.exec(query))
