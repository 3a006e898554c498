"""DingTalk 待办 on the wire. Shapes from the official SDK (alibabacloud_dingtalk todo_1_0):
CreateTodoTask `POST /v1.0/todo/users/{unionId}/tasks?operatorId=` {sourceId, subject, creatorId,
dueTime (ms), executorIds, priority, isOnlyShowExecutor, detailUrl{appUrl, pcUrl}} → the task
{id, sourceId, subject, dueTime, done, …}; GetTodoTaskBySourceId `GET …/tasks/sources/{sourceId}`;
GetTodoTask `GET …/tasks/{taskId}`; UpdateTodoTask `PUT …/tasks/{taskId}?operatorId=` {dueTime,
done, subject, …} → {result: true}. DingTalk's page for the create lists 400 "task exist"
(todo.taskCreate.paramError) for a sourceId already used.

People's unionId comes from the old API's `topapi/v2/user/get` (`unionid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from bot.dingtalk.openapi import OpenApiClient
from bot.transport import SendError
from storage.tz import to_shanghai

PRIORITY_URGENT = 40  # 10 low, 20 normal, 30 high, 40 urgent


@dataclass(frozen=True)
class Todo:
    id: str
    due: datetime | None
    done: bool
    subject: str


def _path(union_id: str, rest: str = "") -> str:
    return f"/v1.0/todo/users/{quote(union_id, safe='')}/tasks{rest}"


def _todo(body: dict) -> Todo:
    due = body.get("dueTime")
    return Todo(id=str(body["id"]), done=bool(body.get("done")), subject=str(body.get("subject") or ""),
                due=to_shanghai(datetime.fromtimestamp(int(due) / 1000, tz=UTC)) if due else None)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def find(client: OpenApiClient, union_id: str, source_id: str) -> Todo | None:
    """The 待办 made for `source_id`, if DingTalk has one. Any refusal reads as "none": the create
    that follows then meets the same refusal, and that is what is logged and retried."""
    try:
        body = await client.api("GET", _path(union_id, f"/sources/{quote(source_id, safe='')}"))
    except SendError as exc:
        if exc.transient:
            raise
        return None
    return _todo(body) if body.get("id") else None


async def create(client: OpenApiClient, union_id: str, source_id: str, subject: str, due: datetime,
                 detail_url: str | None = None) -> Todo:
    body: dict[str, object] = {
        "sourceId": source_id, "subject": subject, "creatorId": union_id, "executorIds": [union_id],
        "dueTime": _ms(due), "priority": PRIORITY_URGENT, "isOnlyShowExecutor": True}
    if detail_url:  # CreateTodoTaskRequestDetailUrl: where a tap on the 待办 opens, on phone and PC
        body["detailUrl"] = {"appUrl": detail_url, "pcUrl": detail_url}
    return _todo(await client.api("POST", _path(union_id), params={"operatorId": union_id}, json=body))


async def get(client: OpenApiClient, union_id: str, todo_id: str) -> Todo:
    return _todo(await client.api("GET", _path(union_id, f"/{quote(todo_id, safe='')}")))


async def update(client: OpenApiClient, union_id: str, todo_id: str, *, due: datetime | None = None,
                 done: bool | None = None, subject: str | None = None) -> None:
    body: dict[str, object] = {}
    if due is not None:
        body["dueTime"] = _ms(due)
    if done is not None:
        body["done"] = done
    if subject is not None:
        body["subject"] = subject
    await client.api("PUT", _path(union_id, f"/{quote(todo_id, safe='')}"), params={"operatorId": union_id},
                     json=body)


async def union_id_of(client: OpenApiClient, user_id: str) -> str | None:
    return (await client.get_user(user_id)).get("unionid") or None
