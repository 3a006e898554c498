"""APScheduler only *wakes* the reconciler (and runs report crons); the database holds every schedule.

We deliberately keep no job per reminder: such jobs are state that can drift from the database and
is lost or doubled across restarts and instances. One date job points at the earliest
`next_check_at`, and a short safety interval catches changes made by commands or other instances.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.models import Task
from storage.tz import SHANGHAI

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


def earliest_check(engine: Engine) -> datetime | None:
    with Session(engine) as session:
        return session.exec(select(func.min(Task.next_check_at))).one()


class Waker:
    def __init__(self, engine: Engine, tick: Callable[[], int], safety_seconds: int = 30,
                 after_tick: Callable[[], Awaitable[None]] | None = None) -> None:
        self.engine = engine
        self.tick = tick
        self.after_tick = after_tick  # e.g. deliver the outbox at once
        self.scheduler: AsyncIOScheduler | None = None  # made by start()
        self.safety_seconds = safety_seconds

    def start(self) -> None:
        # APScheduler is loaded here, not with this module: `duban run` starts the waker once the
        # stream is up, and loading it (~0.1 s) before then would delay the connection
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.scheduler = AsyncIOScheduler(timezone=SHANGHAI)
        self.scheduler.add_job(self.wake, "interval", seconds=self.safety_seconds, id="safety",
                               max_instances=1, coalesce=True)
        self.scheduler.start()
        self.plan_next()

    def shutdown(self) -> None:
        if self.scheduler:
            self.scheduler.shutdown(wait=False)

    def add_cron(self, job_id: str, func: Callable[[], object], **cron: object) -> None:
        self.scheduler.add_job(func, "cron", id=job_id, replace_existing=True, max_instances=1, coalesce=True,
                               misfire_grace_time=3600, **cron)

    async def wake(self) -> None:
        created = await asyncio.to_thread(self.tick)
        if created:
            log.info("reconcile created %d notices", created)
        if self.after_tick:
            await self.after_tick()
        self.plan_next()

    def plan_next(self) -> None:
        earliest = earliest_check(self.engine)
        if earliest is None:
            return
        self.scheduler.add_job(self.wake, "date", run_date=earliest, id="next", replace_existing=True,
                               misfire_grace_time=None)
