"""The emulator's read receipts and DING: what DingTalk remembers about a sent robot message and
answers when asked who read it. Wire shapes follow the official SDK's models (alibabacloud_dingtalk
robot_1_0): BatchOTOQuery, OrgGroupQuery, RobotSendDing, QueryRobotDingReadStatus — see
bot/dingtalk/receipts.py and ding.py. A test says who read what (`read`, `read_group`,
`read_ding`); faults come from the server's middleware like any other path (`fail_next`,
`hold_sends`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from tests.emulator.server import Emulator

OTO_READ_STATUS = "/v1.0/robot/oToMessages/readStatus"
GROUP_QUERY = "/v1.0/robot/groupMessages/query"
DING_SEND = "/v1.0/robot/ding/send"
DING_READ_STATUS = "/v1.0/robot/ding/readStatuses/query"
GROUP_PAGE_MAX = 200
OTO_KEY_MS = 24 * 3600 * 1000  # "在发送消息24小时内可以通过processQueryKey查询" (readStatus's API page)


@dataclass
class Sent:
    """A message DingTalk keeps a processQueryKey (or openDingId) for."""

    channel: str  # "user", "group" or "ding"
    to: tuple[str, ...]  # userIds delivered to, or the openConversationId
    sent_ms: int = 0  # when DingTalk took it, by the emulator's clock
    reads: dict[str, int] = field(default_factory=dict)  # userId -> read time, ms


@dataclass(frozen=True)
class Ding:
    open_ding_id: str
    users: tuple[str, ...]
    remind_type: int
    content: str


class Receipts:
    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self.sent: dict[str, Sent] = {}
        self.dings: list[Ding] = []
        self.expired_asks = 0  # readStatus asked about a one-to-one key older than 24 hours: refused

    def routes(self) -> list[web.RouteDef]:
        return [web.get(OTO_READ_STATUS, self._oto_read_status), web.post(GROUP_QUERY, self._group_query),
                web.post(DING_SEND, self._ding_send), web.post(DING_READ_STATUS, self._ding_read_status)]

    def remember(self, key: str, channel: str, to: tuple[str, ...]) -> None:
        """Called by the send endpoints for every accepted message."""
        self.sent[key] = Sent(channel, to, sent_ms=int(self._emulator.clock() * 1000))

    # -- what the test says happened on people's phones ----------------------------------------

    def read(self, user_id: str, at: datetime) -> int:
        """`user_id` opens every one-to-one message and DING they have; returns how many."""
        count = 0
        for sent in self.sent.values():
            if sent.channel in ("user", "ding") and user_id in sent.to and user_id not in sent.reads:
                sent.reads[user_id] = int(at.timestamp() * 1000)
                count += 1
        return count

    def read_group(self, conversation_id: str, user_id: str, at: datetime) -> None:
        for sent in self.sent.values():
            if sent.channel == "group" and sent.to == (conversation_id,):
                sent.reads.setdefault(user_id, int(at.timestamp() * 1000))

    # -- the endpoints --------------------------------------------------------------------------

    def _known(self, request: web.Request, key: str | None, channel: str) -> tuple[Sent | None, web.Response | None]:
        if denied := self._emulator._new_api_auth(request):
            return None, denied
        sent = self.sent.get(key or "")
        if sent is None or sent.channel != channel:
            return None, _bad("processQueryKey 不存在", code="invalidParameter.processQueryKey")
        return sent, None

    async def _oto_read_status(self, request: web.Request) -> web.Response:
        if request.query.get("robotCode") != self._emulator.robot_code:
            return _bad("robot 不存在", code="resource.not.found")
        sent, error = self._known(request, request.query.get("processQueryKey"), "user")
        if error or sent is None:
            return error or _bad("?")
        if self._emulator.clock() * 1000 > sent.sent_ms + OTO_KEY_MS:  # the code is our guess: not documented
            self.expired_asks += 1
            return _bad("processQueryKey 已过期（仅可查询24小时内发送的消息）", code="invalidParameter.processQueryKey")
        users = self._emulator.users
        return web.json_response({"sendStatus": "SUCCESS", "messageReadInfoList": [
            {"name": users[u].name if u in users else u, "userId": u,
             "readStatus": "READ" if u in sent.reads else "UNREAD", "readTimestamp": sent.reads.get(u, 0)}
            for u in sent.to]})

    async def _group_query(self, request: web.Request) -> web.Response:
        body = await request.json()
        sent, error = self._known(request, body.get("processQueryKey"), "group")
        if error or sent is None:
            return error or _bad("?")
        if body.get("openConversationId") not in (None, sent.to[0]) or body.get("robotCode") != self._emulator.robot_code:
            return _bad("openConversationId 或 robotCode 不匹配")
        size = int(body.get("maxResults") or 100)
        if not 1 <= size <= GROUP_PAGE_MAX:
            return _bad(f"maxResults 须在 1–{GROUP_PAGE_MAX} 之间")
        start = int(body.get("nextToken") or 0)
        readers = list(sent.reads)
        page = readers[start:start + size]
        more = start + size < len(readers)
        return web.json_response({"sendStatus": "SUCCESS", "hasMore": more,
                                  "nextToken": str(start + size) if more else "",
                                  "readUserIds": page, "readUsers": [{"userId": u, "unionId": f"union_{u}"} for u in page]})

    async def _ding_send(self, request: web.Request) -> web.Response:
        if denied := self._emulator._new_api_auth(request):
            return denied
        body = await request.json()
        if body.get("robotCode") != self._emulator.robot_code:
            return _bad("robot 不存在", code="resource.not.found")
        if body.get("remindType") not in (1, 2, 3):
            return _bad("remindType 须为 1、2 或 3")
        users = [str(u) for u in body.get("receiverUserIdList") or []]
        if not users or not body.get("content"):
            return _bad("receiverUserIdList 与 content 不能为空")
        failed = [u for u in users if u in self._emulator.invalid_users]
        reached = tuple(u for u in users if u not in failed)
        open_ding_id = uuid.uuid4().hex
        self.dings.append(Ding(open_ding_id, reached, int(body["remindType"]), str(body["content"])))
        from tests.emulator.server import Delivery  # here: server.py imports this module

        for user_id in reached:  # on the wire like any delivery, on its own channel
            self._emulator.deliveries.append(Delivery("ding", user_id, "ding", {"content": str(body["content"])}))
        self.remember(open_ding_id, "ding", reached)
        return web.json_response({"openDingId": open_ding_id,
                                  "failedList": {"invalidStaffIdList": failed} if failed else {}})

    async def _ding_read_status(self, request: web.Request) -> web.Response:
        body = await request.json()
        sent, error = self._known(request, body.get("openDingId"), "ding")
        if error or sent is None:
            return error or _bad("?")
        return web.json_response({"success": True, "result": {"robotDingReadInfoList": [
            {"userId": u, "readStatus": "READ" if u in sent.reads else "UNREAD"} for u in sent.to]}})

    def dings_to(self, user_id: str) -> list[Ding]:
        return [d for d in self.dings if user_id in d.users]


def _bad(message: str, code: str = "invalidParameter") -> web.Response:
    return web.json_response({"code": code, "message": message, "requestid": uuid.uuid4().hex}, status=400)
