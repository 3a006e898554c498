"""Each task in its lead unit's head's DingTalk 待办: created at 交办, its due time moved with an
approved extension, marked done at 销号 or 撤销, and looked at every few hours for a head who
ticked it done (DingTalk sends no event for that): that prompts 办结, it never closes the task.

Created once: a create whose answer was lost leaves no id here, so the next round first asks
DingTalk for the 待办 by its sourceId (the task code) and adopts it; DingTalk also refuses a second
create with the same sourceId ("task exist"), which is answered the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.clock import Clock
from bot.dingtalk import todo as wire
from bot.dingtalk.openapi import OpenApiClient
from bot.transport import SendError
from storage import todos
from storage.todos import CHECK_EVERY, Want

log = logging.getLogger(__name__)

ROUND_SECONDS = 60.0


async def _find_or_create(client: OpenApiClient, union_id: str, want: Want) -> wire.Todo:
    found = await wire.find(client, union_id, want.code)
    if found is not None:
        return found
    try:
        return await wire.create(client, union_id, want.code, want.subject, want.due)
    except SendError as exc:
        if exc.transient or "task exist" not in str(exc):
            raise
    found = await wire.find(client, union_id, want.code)  # made by an earlier, lost create
    if found is None:
        raise SendError(f"待办 {want.code}: DingTalk says it exists but does not find it", transient=True)
    return found


async def _sync(engine: Engine, client: OpenApiClient, want: Want, now: datetime) -> None:
    link = want.link
    union_id = link.union_id if link else want.union_id
    if union_id is None:
        union_id = await wire.union_id_of(client, want.head_id)
        if union_id is None:
            log.warning("no unionId for %s: no 待办 for %s", want.head_id, want.code)
            return
        await asyncio.to_thread(todos.keep_union_id, engine, want.head_id, union_id)
    if link is None and want.done:
        return  # over before it ever had a 待办
    todo_id = link.todo_id if link else None
    synced_due = link.synced_due if link else None
    if todo_id is None:
        await asyncio.to_thread(todos.save, engine, want.task_id, union_id, now)  # the row, before any call
        made = await _find_or_create(client, union_id, want)
        todo_id, synced_due = made.id, made.due
        await asyncio.to_thread(todos.save, engine, want.task_id, union_id, now, todo_id=todo_id,
                                synced_due=synced_due, synced_done=False)
        log.info("待办 for %s: %s", want.code, todo_id)
    if want.done:
        if not (link and link.synced_done):
            await wire.update(client, union_id, todo_id, done=True)
            await asyncio.to_thread(todos.save, engine, want.task_id, union_id, now, synced_done=True)
        return
    if synced_due != want.due:
        await wire.update(client, union_id, todo_id, due=want.due)
        await asyncio.to_thread(todos.save, engine, want.task_id, union_id, now, synced_due=want.due)
    if link is not None and link.todo_id and now >= link.next_check_at and link.ticked_at is None:
        current = await wire.get(client, union_id, todo_id)
        if current.done and await asyncio.to_thread(todos.ticked, engine, want.task_id, now):
            log.info("待办 for %s ticked done by its head: asked to report done", want.code)
        await asyncio.to_thread(todos.save, engine, want.task_id, union_id, now, next_check_at=now + CHECK_EVERY)


async def sync_once(engine: Engine, client: OpenApiClient, now: datetime) -> None:
    for want in await asyncio.to_thread(todos.wanted, engine):
        try:
            await _sync(engine, client, want, now)
        except SendError as exc:  # the next round tries again; a lost create is found by its sourceId
            log.warning("待办 for %s not synced: %s", want.code, exc)


async def run_todos(engine: Engine, client: OpenApiClient, clock: Clock, stop: asyncio.Event,
                    every: float = ROUND_SECONDS) -> None:
    while not stop.is_set():
        try:
            await sync_once(engine, client, clock.now())
        except Exception:
            log.exception("待办 round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
