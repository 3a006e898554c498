"""Reliable delivery of what the handlers and the engine wrote to the outbox.

A row is written in the same transaction as the change that caused it, so nothing is lost.
Delivery claims rows under a lease (row locks with SKIP LOCKED on PostgreSQL; SQLite serialises
writers), sends, then marks them sent. A process that dies after DingTalk accepted a send and
before the mark leaves the row claimed; when the lease runs out it is sent again — the one
duplicate our guarantee admits (DingTalk's send APIs take no idempotency key).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.channel import Action, Reply
from storage.db import is_postgres, transaction
from storage.models import Outbox, OutboxStatus

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class OutgoingMessage:
    """One message on the wire: several due outbox rows for one recipient folded together."""

    target: str  # "user" or "group"
    recipient: str
    title: str
    text: str
    at_user_ids: tuple[str, ...]
    actions: tuple[Action, ...]
    image_path: str | None
    file_path: str | None
    outbox_ids: tuple[int, ...]


class SendError(Exception):
    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class Transport(Protocol):
    async def send(self, message: OutgoingMessage) -> None:
        """Deliver or raise SendError."""


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
) -> Outbox:
    row = Outbox(
        target=target,
        recipient=recipient,
        at_user_ids=list(reply.at_user_ids),
        title=reply.title,
        text=reply.text,
        actions=[[a.label, a.command] for a in reply.actions],
        file_path=reply.file_path,
        deliver_after=deliver_after,
        created_at=now,
        task_id=task_id,
        notice_id=notice_id,
    )
    session.add(row)
    return row


def claim_due(engine: Engine, now: datetime, worker: str, limit: int = 200) -> list[Outbox]:
    """Take the rows due now (and rows whose claimer's lease ran out) for this worker."""
    with transaction(engine) as session:
        query = (
            select(Outbox)
            .where(
                or_(
                    (Outbox.status == OutboxStatus.PENDING) & (Outbox.deliver_after <= now),
                    (Outbox.status == OutboxStatus.SENDING) & (Outbox.claimed_until < now),
                )
            )
            .order_by(Outbox.deliver_after, Outbox.id)
            .limit(limit)
        )
        if is_postgres(engine):
            query = query.with_for_update(skip_locked=True)
        rows = list(session.exec(query))
        for row in rows:
            if row.status == OutboxStatus.SENDING:
                log.warning("outbox %s: lease of %s expired, sending again", row.id, row.claimed_by)
            row.status, row.claimed_by, row.claimed_until = OutboxStatus.SENDING, worker, now + LEASE
            row.attempts += 1
            session.add(row)
        return rows


def fold(rows: Sequence[Outbox]) -> list[OutgoingMessage]:
    """One message per recipient and moment: several notices due together arrive as one."""
    groups: dict[tuple[str, str, datetime], list[Outbox]] = {}
    for row in rows:
        key = (row.target, row.recipient, row.deliver_after)
        groups.setdefault(key, []).append(row)
    messages = []
    for (target, recipient, _), members in groups.items():
        # files and images travel alone: DingTalk sends them as their own message types
        plain = [m for m in members if not (m.image_path or m.file_path)]
        for chunk in ([plain] if plain else []) + [[m] for m in members if m.image_path or m.file_path]:
            messages.append(
                OutgoingMessage(
                    target=target,
                    recipient=recipient,
                    title=chunk[0].title if len(chunk) == 1 else f"{chunk[0].title}（共{len(chunk)}条）",
                    text="\n\n---\n\n".join(m.text for m in chunk),
                    at_user_ids=tuple(dict.fromkeys(u for m in chunk for u in m.at_user_ids)),
                    actions=tuple(Action(label, cmd) for m in chunk for label, cmd in m.actions),
                    image_path=chunk[0].image_path,
                    file_path=chunk[0].file_path,
                    outbox_ids=tuple(m.id for m in chunk if m.id is not None),
                )
            )
    return messages


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    seconds = min(2 ** max(attempts - 1, 0), 300)
    return timedelta(seconds=max(seconds, retry_after or 0))


async def deliver_due(engine: Engine, transport: Transport, now: datetime, worker: str,
                      max_attempts: int = 8) -> int:
    """Send everything due at `now`; returns how many messages went out."""
    sent = 0
    for message in fold(claim_due(engine, now, worker)):
        try:
            await transport.send(message)
        except SendError as exc:
            _mark_failed(engine, message, now, exc, max_attempts)
            continue
        _mark(engine, message.outbox_ids, OutboxStatus.SENT, sent_at=now)
        sent += 1
    return sent


def _mark(engine: Engine, ids: Sequence[int], status: OutboxStatus, **fields) -> None:
    with transaction(engine) as session:
        for row in session.exec(select(Outbox).where(Outbox.id.in_(ids))):
            row.status, row.claimed_until = status, None
            for name, value in fields.items():
                setattr(row, name, value)
            session.add(row)


def _mark_failed(engine: Engine, message: OutgoingMessage, now: datetime, exc: SendError,
                 max_attempts: int) -> None:
    with transaction(engine) as session:
        for row in session.exec(select(Outbox).where(Outbox.id.in_(message.outbox_ids))):
            row.last_error = str(exc)[:500]
            row.claimed_until = None
            if exc.transient and row.attempts < max_attempts:
                row.status = OutboxStatus.PENDING
                row.deliver_after = now + backoff(row.attempts, exc.retry_after)
            else:
                row.status = OutboxStatus.DEAD
                log.error("outbox %s to %s is dead after %s attempts: %s", row.id, row.recipient, row.attempts, exc)
            session.add(row)
