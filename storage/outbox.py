"""The outbox's row state: what is queued (enqueue), who holds what (claim, lease) and how it ended.

Rows are written in the same transaction as the change that caused them (handlers, the engine,
reports), so nothing is lost; bot/outbox.py folds, paces, sends and retries them through these
functions. See bot/outbox.py for the delivery guarantees: the lease, the order per recipient and
the counted "possible duplicate" cases (`COUNTERS`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from message_templates.render import render
from message_templates.reply import Reply
from storage import cards, queries, receipts
from storage.db import is_postgres, transaction
from storage.models import ChatGroup, Outbox, OutboxStatus, Person, ReadReceipt, ReadWatch, Role, Task

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
CLAIM_LIMIT = 100  # due rows that pick the round's recipients
PURGE_CHUNK = 10_000
CLAIM_MAX = 2_000  # rows per round, whole recipients' bursts (a digest each): a few dozen sends
CLAIM_LANE_MAX = 10_000  # one recipient's rows a round takes at most: one digest of up to this many
DEAD_LETTER_TEMPLATE = "delivery_dead"


@dataclass
class DeliveryCounters:
    """For /metrics (bot.run): sends that may have reached someone twice, and rows never sent
    because DingTalk refused their recipient."""

    unknown_outcome: int = 0  # rows retried after a send whose answer never came
    lease_expired: int = 0  # rows taken over, and sent again, after their claimer's lease ran out
    undeliverable: int = 0  # rows DingTalk refused for their recipient (invalidStaffIdList): not sent
    sent: int = 0  # rows this process marked sent (a counter: counting the table at each scrape grows with history)


COUNTERS = DeliveryCounters()


def enqueue(
    session: Session,
    reply: Reply,
    *,
    target: str,
    recipient: str,
    deliver_after: datetime,
    now: datetime,
    task_id: int | None = None,
    notice_id: int | None = None,
    ding_remind_type: int | None = None,
    plain: bool = False,
) -> Outbox:
    row = Outbox(**outbox_values(session, reply, target=target, recipient=recipient, deliver_after=deliver_after,
                                 now=now, task_id=task_id, notice_id=notice_id, ding_remind_type=ding_remind_type,
                                 plain=plain))
    session.add(row)
    return row


def outbox_values(session: Session, reply: Reply, *, target: str, recipient: str, deliver_after: datetime,
                  now: datetime, task_id: int | None = None, notice_id: int | None = None,
                  ding_remind_type: int | None = None, placed: dict[tuple, str] | None = None,
                  fetched: bool = False, plain: bool = False) -> dict[str, Any]:
    """A queued message's columns, its card included (storage/cards.py `place`, which sees `placed`,
    the cards of rows not yet written), for `enqueue` and for the engine's bulk insert. `plain`: a
    chat message even when cards are on (Outbox.plain)."""
    row = {
        "target": target,
        "recipient": recipient,
        "at_user_ids": list(reply.at_user_ids),
        "title": reply.title,
        "text": reply.text,
        "actions": [[a.label, a.command] for a in reply.actions],
        "file_path": reply.file_path,
        "deliver_after": deliver_after,
        "created_at": now,
        "task_id": task_id,
        "notice_id": notice_id,
        "ding_remind_type": ding_remind_type,
        "plain": plain,
    }
    cards.place(session, row, placed, fetched)
    return row


def claim_due(engine: Engine, now: datetime, worker: str, limit: int = CLAIM_LIMIT) -> list[Outbox]:
    """Take the rows due now (and rows whose claimer's lease ran out) for this worker, in send
    order, skipping every recipient whose earlier undelivered row this worker cannot take.

    The first `limit` due rows name the recipients; each of them is then taken whole — every due
    row of theirs up to the first one this worker cannot take — as long as the round stays within
    CLAIM_MAX rows (the first recipient always, up to CLAIM_LANE_MAX), so a burst (the 09:00
    notices) reaches a person folded into one message or one digest, not cut across claims."""
    with transaction(engine) as session:
        query = (
            select(Outbox.id, Outbox.target, Outbox.recipient)
            .where(_claimable(now))
            .order_by(Outbox.deliver_after, Outbox.id)
            .limit(limit)
        )
        candidates = list(session.exec(query))
        if not candidates:
            return []
        lanes = {(target, recipient) for _, target, recipient in candidates}
        # Every undelivered row of those recipients, in send order. A row another worker holds
        # (a live lease, or a lock SKIP LOCKED steps over), or one backing off, blocks the rest.
        undelivered = session.exec(
            select(Outbox.id, Outbox.target, Outbox.recipient, _claimable(now))
            .where(Outbox.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)))
            .where(Outbox.recipient.in_({recipient for _, recipient in lanes}))
            .order_by(Outbox.deliver_after, Outbox.id)
        )
        blocked: set[tuple[str, str]] = set()
        queued: dict[tuple[str, str], list[tuple[int, int]]] = {}  # lane → (send position, id) it may take
        for position, (row_id, target, recipient, claimable) in enumerate(undelivered):
            lane = (target, recipient)
            if lane not in lanes or lane in blocked:
                continue
            if claimable:
                queued.setdefault(lane, []).append((position, row_id))
            else:
                blocked.add(lane)
        # Whole lanes, in the order their first rows fell due, while the round stays within
        # CLAIM_MAX: a recipient's burst is never cut across two rounds (two digests), except a
        # single lane longer than CLAIM_LANE_MAX, which no round takes whole.
        wanted: list[tuple[int, int, tuple[str, str]]] = []
        for lane in dict.fromkeys((target, recipient) for _, target, recipient in candidates):
            ids = queued.get(lane, [])
            if wanted and len(wanted) + len(ids) > CLAIM_MAX:
                continue
            wanted += [(position, row_id, lane) for position, row_id in ids[:CLAIM_LANE_MAX]]
        wanted.sort()  # send order across lanes, as the rows fell due
        locking = select(Outbox).where(Outbox.id.in_([row_id for _, row_id, _ in wanted]), _claimable(now))
        if is_postgres(engine):
            locking = locking.with_for_update(skip_locked=True)
        taken = {row.id: row for row in session.exec(locking)}
        claimed, stopped = [], set()
        for _, row_id, lane in wanted:  # a row taken meanwhile by another worker stops its lane there
            if lane in stopped or row_id not in taken:
                stopped.add(lane)
                continue
            claimed.append(taken[row_id])
        for row in claimed:
            if row.status == OutboxStatus.SENDING:
                COUNTERS.lease_expired += 1
                log.warning("outbox row=%s lease of %s expired, sending again: possible duplicate",
                            row.id, row.claimed_by)
            row.status, row.claimed_by, row.claimed_until = OutboxStatus.SENDING, worker, now + LEASE
            row.attempts += 1
            session.add(row)
        return claimed


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Due and free: pending, due and not backing off, or sending under a lease that ran out."""
    return or_(
        (Outbox.status == OutboxStatus.PENDING)
        & (Outbox.deliver_after <= now)
        & (Outbox.claimed_until.is_(None) | (Outbox.claimed_until <= now)),
        (Outbox.status == OutboxStatus.SENDING) & (Outbox.claimed_until < now),
    )


def next_due(engine: Engine) -> datetime | None:
    """The earliest moment at which some recipient's queue can move: its first undelivered row
    falling due, its retry time, or the end of another worker's lease. May lie in the past, which
    means "now". Rows held back behind a retry do not count: only each recipient's first row does."""
    with Session(engine) as session:
        undelivered = session.exec(
            select(Outbox.target, Outbox.recipient, Outbox.deliver_after, Outbox.claimed_until)
            .where(Outbox.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)))
            .order_by(Outbox.deliver_after, Outbox.id)
        )
        first: dict[tuple[str, str], datetime] = {}
        for target, recipient, deliver_after, claimed_until in undelivered:
            if (target, recipient) not in first:
                first[(target, recipient)] = max(deliver_after, claimed_until or deliver_after)
    return min(first.values(), default=None)


def _mine(ids: Sequence[int], worker: str) -> ColumnElement[bool]:
    return (Outbox.id.in_(ids)) & (Outbox.status == OutboxStatus.SENDING) & (Outbox.claimed_by == worker)


def renew_lease(engine: Engine, ids: Sequence[int], worker: str, until: datetime) -> None:
    with transaction(engine) as session:
        session.exec(update(Outbox).where(_mine(ids, worker)).values(claimed_until=until))


def mark_sent(engine: Engine, ids: Sequence[int], worker: str, now: datetime,
              receipt_key: str | None = None, *, digest: bool = False) -> None:
    """`receipt_key`: DingTalk's processQueryKey (or openDingId), kept to ask later who read it.
    `digest`: the rows went out as one digest (bot/outbox.py), so the cards some of them were to
    show never were: they stop being cards, so that no in-place update looks for them, and updates
    already queued for those cards, having nothing to update, are done with them."""
    values: dict[str, Any] = {"status": OutboxStatus.SENT, "sent_at": now, "claimed_until": None,
                              "receipt_key": receipt_key}
    with transaction(engine) as session:
        never_shown = list(session.exec(select(Outbox.card_id).where(_mine(ids, worker), Outbox.card_id.is_not(None))
                                        .distinct())) if digest else []
        if digest:
            values |= {"card_key": None, "card_id": None}
        result = session.exec(update(Outbox).where(_mine(ids, worker)).values(**values))
        if never_shown:
            session.exec(update(Outbox).where(Outbox.card_id.in_(never_shown), Outbox.card_update.is_(True),
                                              Outbox.status == OutboxStatus.PENDING)
                         .values(status=OutboxStatus.SENT, sent_at=now, claimed_until=None))
        if receipt_key is not None:
            receipts.watch(session, session.exec(select(Outbox).where(Outbox.id.in_(ids))), now)
    COUNTERS.sent += result.rowcount
    if result.rowcount != len(ids):
        log.error("outbox rows=%s sent after our lease was taken over: possibly sent twice", ids)


def purge_sent(engine: Engine, before: datetime, chunk: int = PURGE_CHUNK) -> int:
    """Delete rows sent before `before` (the audit trail keeps what happened; the outbox only
    delivers), a chunk per transaction so writers are never held up for long. Returns how many.
    A row whose readers are watched or recorded (a colour notice DingTalk gave a receipt key for,
    storage/receipts.py) stays: its read receipts are evidence and point at it. Other rows go even
    with a key: DingTalk gives one for nearly every send, and kept they would grow with history."""
    purged = 0
    while True:
        with transaction(engine) as session:
            ids = select(Outbox.id).where(Outbox.status == OutboxStatus.SENT, Outbox.sent_at < before,
                                          ~exists().where(ReadWatch.outbox_id == Outbox.id),
                                          ~exists().where(ReadReceipt.outbox_id == Outbox.id)).limit(chunk)
            count = session.exec(delete(Outbox).where(Outbox.id.in_(ids.scalar_subquery()))).rowcount
        purged += count
        if count < chunk:
            return purged


def undelivered_counts(engine: Engine) -> dict[OutboxStatus, int]:
    """Rows not sent, by status: read through the (status, deliver_after) index, so the cost
    follows what waits, not everything ever sent."""
    waiting = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.DEAD)
    with Session(engine) as session:
        found = dict(session.exec(select(Outbox.status, func.count()).where(Outbox.status.in_(waiting))
                                  .group_by(Outbox.status)).all())
    return {status: found.get(status, 0) for status in waiting}


def release(engine: Engine, ids: Sequence[int], worker: str) -> None:
    with transaction(engine) as session:
        session.exec(
            update(Outbox).where(_mine(ids, worker))
            .values(status=OutboxStatus.PENDING, claimed_by=None, claimed_until=None,
                    attempts=Outbox.attempts - 1)
        )


def mark_failed(engine: Engine, ids: Sequence[int], worker: str, now: datetime, error: str, *,
                maybe_delivered: bool, retry_at: Callable[[Outbox], datetime | None],
                undeliverable: bool = False) -> None:
    """The send failed: each row goes back PENDING until `retry_at(row)`, or DEAD when that is None
    (and the 督查室 is told, in the same transaction). `undeliverable`: DingTalk refused the
    recipient itself (invalidStaffIdList): the 督查室 is told once per person, not per row."""
    with transaction(engine) as session:
        rows = list(session.exec(select(Outbox).where(_mine(ids, worker))))
        if undeliverable:
            COUNTERS.undeliverable += len(rows)
            rows_first = [r for r in rows if receipts.note_undeliverable(session, r.recipient, now)]
            log.error("outbox rows=%s: DingTalk refused the recipient (%s); told before: %s",
                      [r.id for r in rows], error, not rows_first)
        dead = []
        for row in rows:
            row.last_error = error[:500]
            row.claimed_by = None
            if maybe_delivered:
                COUNTERS.unknown_outcome += 1
                log.warning("outbox row=%s to=%s attempt=%s: no answer from DingTalk (%s), it may have "
                            "been delivered: possible duplicate if it goes out again", row.id, row.recipient,
                            row.attempts, error)
            retry = retry_at(row)
            if retry is not None:
                row.status = OutboxStatus.PENDING
                row.claimed_until = retry
                log.info("outbox row=%s to=%s attempt=%s failed, retry_at=%s error=%s",
                         row.id, row.recipient, row.attempts, row.claimed_until.isoformat(), error)
            else:
                row.status, row.claimed_until = OutboxStatus.DEAD, None
                log.error("outbox row=%s to=%s is dead after %s attempts: %s",
                          row.id, row.recipient, row.attempts, error)
                dead.append(row)
            session.add(row)
        if undeliverable:
            dead = [r for r in dead if r in rows_first]
        if dead:
            _tell_supervisors(session, dead, error, now)


def _tell_supervisors(session: Session, dead: list[Outbox], error: str, now: datetime) -> None:
    """One message to each 督查室 member naming what died, in the same transaction as the DEAD mark."""
    supervisors = queries.people_with_role(session, Role.SUPERVISOR)
    first = dead[0]
    recipient = session.get(Person, first.recipient) if first.target == "user" else session.exec(
        select(ChatGroup).where(ChatGroup.conversation_id == first.recipient)).first()
    if first.target == "user" and isinstance(recipient, Person) and recipient.role == Role.SUPERVISOR \
            and first.task_id is None:
        return  # a dead letter about a dead letter would loop: a broken 督查室 id is only logged
    task = session.get(Task, first.task_id) if first.task_id else None
    reply = render(
        DEAD_LETTER_TEMPLATE,
        target=first.target,
        recipient_id=first.recipient,
        recipient_name=recipient.name if recipient else "",
        message_title=first.title,
        created_at=first.created_at,
        attempts=first.attempts,
        error=error,
        task_code=task.code if task else "",
        rows=len(dead),
    )
    for person in supervisors:
        enqueue(session, reply, target="user", recipient=person.user_id, deliver_after=now, now=now)
