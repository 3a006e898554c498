"""The emulator's DingTalk 待办 (todo_1_0): create, find by sourceId, get, update — see
bot/dingtalk/todo.py for the shapes. A second create with a sourceId already used answers 400
"task exist" as DingTalk's page says. A test ticks a 待办 done as its owner would (`tick`).
Faults come from the server's middleware (`fail_next(path, Fault.LATE)`: created, answer lost).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.emulator.server import Emulator

PREFIX = "/v1.0/todo/users/{union_id}/tasks"


@dataclass
class TodoTask:
    id: str
    owner: str  # unionId
    source_id: str
    subject: str
    due_ms: int
    executors: list[str]
    done: bool = False
    detail_url: dict[str, str] | None = None  # {appUrl, pcUrl}

    def wire(self) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {"id": self.id, "subject": self.subject, "sourceId": self.source_id, "dueTime": self.due_ms,
                "done": self.done, "executorIds": self.executors, "creatorId": self.owner,
                "participantIds": [], "createdTime": now, "modifiedTime": now, "finishTime": 0, "startTime": 0,
                "isOnlyShowExecutor": True, "priority": 40, "bizTag": "todo_open_emulated",
                **({"detailUrl": self.detail_url} if self.detail_url else {}),
                "requestId": uuid.uuid4().hex}


class Todos:
    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self.tasks: dict[str, TodoTask] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PREFIX, self._create), web.get(PREFIX + "/sources/{source_id}", self._by_source),
                web.get(PREFIX + "/{task_id}", self._get), web.put(PREFIX + "/{task_id}", self._update)]

    def of(self, union_id: str) -> list[TodoTask]:
        return [t for t in self.tasks.values() if t.owner == union_id]

    def tick(self, union_id: str, source_id: str) -> None:
        """The owner ticks the 待办 done in DingTalk."""
        next(t for t in self.of(union_id) if t.source_id == source_id).done = True

    def _find(self, request: web.Request) -> tuple[TodoTask | None, web.Response | None]:
        if denied := self._emulator._new_api_auth(request):
            return None, denied
        task = self.tasks.get(request.match_info["task_id"])
        if task is None or task.owner != request.match_info["union_id"]:
            return None, _bad("task not exist", code="todo.taskUpdate.paramError")
        return task, None

    async def _create(self, request: web.Request) -> web.Response:
        if denied := self._emulator._new_api_auth(request):
            return denied
        owner = request.match_info["union_id"]
        body = await request.json()
        if not body.get("subject"):
            return _bad("subject is empty", code="todo.taskCreate.paramError")
        source = str(body.get("sourceId") or "")
        if source and any(t.source_id == source for t in self.of(owner)):
            return _bad("task exist", code="todo.taskCreate.paramError")
        detail = body.get("detailUrl")
        if detail is not None and not (isinstance(detail, dict) and {"appUrl", "pcUrl"} >= set(detail)):
            return _bad("detailUrl is invalid", code="todo.taskCreate.paramError")
        task = TodoTask(f"task{uuid.uuid4().hex[:20]}", owner, source, str(body["subject"]),
                        int(body.get("dueTime") or 0), list(body.get("executorIds") or []), detail_url=detail)
        self.tasks[task.id] = task
        return web.json_response(task.wire())

    async def _by_source(self, request: web.Request) -> web.Response:
        if denied := self._emulator._new_api_auth(request):
            return denied
        owner, source = request.match_info["union_id"], request.match_info["source_id"]
        found = next((t for t in self.of(owner) if t.source_id == source), None)
        return web.json_response(found.wire()) if found else _bad("task not exist", code="todo.task.notExist")

    async def _get(self, request: web.Request) -> web.Response:
        task, error = self._find(request)
        return error if task is None else web.json_response(task.wire())

    async def _update(self, request: web.Request) -> web.Response:
        task, error = self._find(request)
        if task is None:
            return error or _bad("?")
        body = await request.json()
        if "dueTime" in body:
            task.due_ms = int(body["dueTime"])
        if "done" in body:
            task.done = bool(body["done"])
        if "subject" in body:
            task.subject = str(body["subject"])
        return web.json_response({"result": True})


def _bad(message: str, code: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "requestid": uuid.uuid4().hex}, status=400)
