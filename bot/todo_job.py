"""Each task in its lead unit's head's DingTalk 待办 (and its liaisons', if so set): created at 交办,
with a link to the task's dashboard page, its due time moved with an approved extension, marked
done at 销号 or 撤销, closed for one who no longer holds it (改派, a new head) as the new holder
gets theirs, and looked at every few hours for a holder who ticked it done (DingTalk sends no event
for that): that prompts 办结, it never closes the task.

Created once: a create whose answer was lost leaves no id here, so the next round first asks
DingTalk for the 待办 by its sourceId (the task code) and adopts it; DingTalk also refuses a second
create with the same sourceId ("task exist"), which is answered the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy.engine import Engine

from bot.clock import Clock
from bot.dashboard import PREFIX as BOARD_PREFIX
from bot.dingtalk import todo as wire
from bot.dingtalk.openapi import OpenApiClient
from bot.transport import SendError
from storage import todos
from storage.todos import CHECK_EVERY, Want

log = logging.getLogger(__name__)

ROUND_SECONDS = 60.0
LOOPBACK = {"localhost", "::1", ""}


def detail_url(board_url: str | None, code: str) -> str | None:
    """The task's dashboard page, which asks for sign-in (the 看板 command's one-time link): the URL
    carries no credential. None where people's phones cannot reach it (a loopback address)."""
    if not board_url:
        return None
    host = urlsplit(board_url).hostname or ""
    if host in LOOPBACK or host.startswith("127."):
        return None
    return f"{board_url.rstrip('/')}{BOARD_PREFIX}/task/{quote(code, safe='')}"


async def _find_or_create(client: OpenApiClient, union_id: str, want: Want, url: str | None) -> wire.Todo:
    found = await wire.find(client, union_id, want.code)
    if found is not None:
        return found
    try:
        return await wire.create(client, union_id, want.code, want.subject or want.created_subject, want.due, url)
    except SendError as exc:
        if exc.transient or "task exist" not in str(exc):
            raise
    found = await wire.find(client, union_id, want.code)  # made by an earlier, lost create
    if found is None:
        raise SendError(f"待办 {want.code}: DingTalk says it exists but does not find it", transient=True)
    return found


async def _sync(engine: Engine, client: OpenApiClient, want: Want, now: datetime, board_url: str | None) -> None:
    link = want.link
    union_id = want.union_id
    if union_id is None:
        union_id = await wire.union_id_of(client, want.user_id)
        if union_id is None:
            log.warning("no unionId for %s: no 待办 for %s", want.user_id, want.code)
            return
        await asyncio.to_thread(todos.keep_union_id, engine, want.user_id, union_id)

    def save(**synced: object) -> Awaitable[None]:
        return asyncio.to_thread(todos.save, engine, want.task_id, union_id, want.user_id, now, **synced)

    if link is None or link.todo_id is None:
        await save()  # the row, before any call: a create whose answer is lost is looked for next round
        if want.holds:
            made: wire.Todo | None = await _find_or_create(client, union_id, want, detail_url(board_url, want.code))
        else:  # it moved on before we knew its id: a lost create may still have made one
            made = await wire.find(client, union_id, want.code)
        if made is None:
            await save(synced_done=True)
            return
        await save(todo_id=made.id, synced_due=made.due, synced_done=made.done, synced_subject=made.subject)
        log.info("待办 for %s in %s's list: %s", want.code, want.user_id, made.id)
        todo_id, synced = made.id, (made.due, made.done, made.subject)
    else:
        todo_id, synced = link.todo_id, (link.synced_due, link.synced_done, link.synced_subject)
    due, done, subject = synced
    changes: dict[str, Any] = {}
    if done != want.done:
        changes["done"] = want.done
    if want.subject is not None and want.subject != (subject or want.created_subject):
        changes["subject"] = want.subject
    if want.holds and not want.done and due != want.due:
        changes["due"] = want.due
    if changes:
        await wire.update(client, union_id, todo_id, **changes)
        reopened = {"ticked_at": None} if changes.get("done") is False else {}  # held again: a tick counts again
        await save(**{f"synced_{k}": v for k, v in changes.items()}, **reopened)
    if want.holds and link is not None and link.todo_id and now >= link.next_check_at and link.ticked_at is None \
            and "done" not in changes:
        current = await wire.get(client, union_id, todo_id)
        if current.done and await asyncio.to_thread(todos.ticked, engine, want.task_id, union_id, now):
            log.info("待办 for %s ticked done by %s: asked to report done", want.code, want.user_id)
        await save(next_check_at=now + CHECK_EVERY)


async def sync_once(engine: Engine, client: OpenApiClient, now: datetime, *, liaisons: bool = False,
                    board_url: str | None = None) -> None:
    for want in await asyncio.to_thread(todos.wanted, engine, liaisons):
        try:
            await _sync(engine, client, want, now, board_url)
        except SendError as exc:  # the next round tries again; a lost create is found by its sourceId
            log.warning("待办 for %s (%s) not synced: %s", want.code, want.user_id, exc)
            if not exc.transient and not want.holds and want.union_id:
                # refused for one who no longer holds it (left the organisation, say): not asked again
                await asyncio.to_thread(todos.save, engine, want.task_id, want.union_id, want.user_id, now,
                                        synced_done=True, synced_subject=want.subject)


async def run_todos(engine: Engine, client: OpenApiClient, clock: Clock, stop: asyncio.Event,
                    every: float = ROUND_SECONDS, *, liaisons: bool = False, board_url: str | None = None) -> None:
    while not stop.is_set():
        try:
            await sync_once(engine, client, clock.now(), liaisons=liaisons, board_url=board_url)
        except Exception:
            log.exception("待办 round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
