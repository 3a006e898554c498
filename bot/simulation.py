"""The bot on a simulated clock: what the demo plays and what the tests drive.

Time only moves when told to, and `run_until` wakes exactly when the database says something is
due (a task's next_check_at or an outbox row's deliver_after), like the scheduler does for real.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from bot.app import Bot
from bot.clock import FakeClock
from bot.outbox import deliver_due
from bot.settings import Settings
from bot.transport import OutgoingMessage, Transport
from handlers.incoming import Incoming
from message_templates.reply import Reply
from reminders.calendar import WorkCalendar
from storage.db import create_schema, make_engine
from storage.models import Notice, NoticeStatus, Task
from storage.outbox import next_due

# the example county, shipped as package data so that `duban demo` works from a wheel; in the
# source tree bot/data/roster.yaml is a link to examples/roster.yaml, the copy people read and edit
ROSTER: Traversable = resources.files("bot") / "data" / "roster.yaml"


class RecordingTransport:
    """A Transport that keeps what it was given: (simulated time, message)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[datetime, OutgoingMessage]] = []

    async def send(self, message: OutgoingMessage) -> None:
        self.sent.append((self.clock.now(), message))


class Simulation:
    def __init__(self, db_url: str, start: datetime, *, settings: Settings | None = None,
                 calendar: WorkCalendar | None = None, roster: Path | Traversable = ROSTER,
                 transport: Callable[[object, FakeClock], Transport] | None = None) -> None:
        self.engine = make_engine(db_url)
        create_schema(self.engine)
        self.clock = FakeClock(start)
        self.bot = Bot(self.engine, settings or Settings(database_url=db_url), self.clock,
                       calendar or WorkCalendar())
        with resources.as_file(roster) as path:
            self.bot.load_roster(path)
        self.transport = transport(self.engine, self.clock) if transport else RecordingTransport(self.clock)
        self._ids = itertools.count(1)

    def say(self, user_id: str, text: str, at: datetime | None = None, group: str = "",
            at_user_ids: tuple[str, ...] = ()) -> list[Reply]:
        """`user_id` types `text` at `at` (everything due before then happens first)."""
        if at is not None:
            self.run_until(at)
        incoming = Incoming(msg_id=f"sim-{next(self._ids)}", sender_id=user_id, text=text,
                            conversation_id=group, is_group=bool(group), at_user_ids=at_user_ids)
        replies = self.bot.handle_sync(incoming)
        self.deliver()
        return replies

    def restart(self) -> None:
        """A crash and a fresh start on the same database: the engine and the bot are rebuilt, so
        nothing the bot held in memory survives. Time, the transport (the world outside) and the
        msgId counter (DingTalk's, not the bot's: a reused msgId would be dropped as a redelivery)
        carry on."""
        url = self.engine.url.render_as_string(hide_password=False)
        self.engine.dispose()
        self.engine = make_engine(url)
        create_schema(self.engine)
        self.bot = Bot(self.engine, self.bot.settings, self.clock, self.bot.calendar)

    def deliver(self) -> int:
        return asyncio.run(deliver_due(self.engine, self.transport, self.clock.now(), "simulation"))

    def next_event(self) -> datetime | None:
        with Session(self.engine) as session:
            check = session.exec(select(func.min(Task.next_check_at))).one()
        send = next_due(self.engine)  # a row waiting for a retry counts at its retry time
        return min((t for t in (check, send) if t is not None), default=None)

    def run_until(self, moment: datetime) -> None:
        while (event := self.next_event()) is not None and event <= moment:
            self.clock.set(max(event, self.clock.now()))
            self.bot.tick()
            self.deliver()
        self.clock.set(max(moment, self.clock.now()))

    def wait_for_draft(self, task_code: str, limit: datetime) -> str:
        """Run until the task has a notice waiting for signature; its code."""
        while True:
            with Session(self.engine) as session:
                draft = session.exec(select(Notice.code).join(Task, Task.id == Notice.task_id).where(
                    Task.code == task_code, Notice.status == NoticeStatus.DRAFT)).first()
            if draft is not None:
                return draft
            nxt = self.next_event()
            if nxt is None or nxt > limit:
                raise LookupError(f"no draft for {task_code} by {limit}")
            self.run_until(nxt)
