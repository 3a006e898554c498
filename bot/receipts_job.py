"""The read-status job: asks DingTalk who has read each sent colour notice (storage/receipts.py
keeps the schedule and the budget), and stores what it learns. One call per watched key per look
(more only for a group beyond 200 readers); a failed call moves that key to its next look, so an
outage costs nothing extra and nothing is ever asked twice in one look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.clock import Clock
from bot.dingtalk import receipts as wire
from bot.dingtalk.openapi import OpenApiClient
from bot.transport import SendError
from storage import receipts
from storage.receipts import Read, WatchedKey

log = logging.getLogger(__name__)

POLL_SECONDS = 60.0  # how often the job looks for keys due


async def _ask(client: OpenApiClient, watched: WatchedKey, now: datetime) -> list[Read]:
    if watched.channel == "user":
        return [Read(u, at, exact=True) for u, at in (await wire.read_oto(client, watched.key)).items()]
    if watched.channel == "ding":
        return [Read(u, now, exact=False) for u in await wire.read_ding(client, watched.key)]
    readers: list[str] = []
    for conversation in watched.recipients:
        readers += await wire.read_group(client, conversation, watched.key)
    return [Read(u, now, exact=False) for u in dict.fromkeys(readers)]


async def poll_once(engine: Engine, client: OpenApiClient, now: datetime) -> int:
    """One look at every key due; returns the new reads stored."""
    added = 0
    for watched in await asyncio.to_thread(receipts.due, engine, now):
        try:
            reads = await _ask(client, watched, now)
        except SendError as exc:
            log.warning("read status of %s key=%s failed: %s (asked again at its next look)",
                        watched.channel, watched.key, exc)
            reads = []
        added += await asyncio.to_thread(receipts.record, engine, watched, reads, now)
    return added


async def run_receipts(engine: Engine, client: OpenApiClient, clock: Clock, stop: asyncio.Event,
                       every: float = POLL_SECONDS) -> None:
    while not stop.is_set():
        try:
            added = await poll_once(engine, client, clock.now())
            if added:
                log.info("read receipts: %d new", added)
        except Exception:  # the database is away, say: try at the next look
            log.exception("read-status round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
