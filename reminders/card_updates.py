"""Cards are rendered when they are sent, not when their task changes.

A change only notes its task (storage/stale_cards.py, in the change's transaction, so a crash
cannot lose it); the sender, before each round, renders the noted tasks' cards from what the tasks
are then and queues an update for each card whose content changed (reminders/cards.py). A burst of
changes — a thousand notices at 09:00, a unit head's twenty progress reports — costs one render a
card, and none on the command's or the reconcile's path: sending is paced by DingTalk's limits
anyway, so rendering ahead of it only made the people waiting for a reply wait longer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders import cards
from storage import stale_cards
from storage.cards import NEW_CARDS
from storage.db import transaction
from storage.models import Task

BATCH = 50  # tasks rendered in one transaction: a SQLite writer holds the lock for a few ms a task


def render_stale(engine: Engine, now: datetime, batch: int = BATCH) -> int:
    """Render every noted task's cards; returns how many card updates were queued."""
    with Session(engine) as session:  # a read first: no write lock taken when nothing is noted
        if not stale_cards.any_stale(session):
            return 0
    queued = 0
    while True:
        with transaction(engine) as session:
            noted = stale_cards.take(session, batch)
            if not noted:
                return queued
            tasks = {t.id: t for t in session.exec(select(Task).where(Task.id.in_([n.task_id for n in noted])))}
            for stale in noted:
                session.info[NEW_CARDS] = set(stale.fresh)  # made with the change: already current
                queued += cards.refresh(session, tasks[stale.task_id], now)
