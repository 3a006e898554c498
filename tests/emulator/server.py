"""A local DingTalk: one aiohttp server on 127.0.0.1 that plays the stream gateway, the OpenAPI
host (api.dingtalk.com), the old oapi host and the session webhooks, with their wire formats.

It records every request and every delivered message, and injects faults on demand: 5xx, 429 with
Retry-After, DingTalk's throttling codes, answers slower than the client waits (with or without delivering), connections
dropped without an answer, a per-second rate limit, `disconnect` frames, dropped websockets and
redelivered frames; and it holds sends mid-call, to accept them or not (for kill tests). Wire
formats follow open-dingtalk/developerpedia docs/learn/stream/protocol.md, the SDK's frames.py and
chatbot.py, and the Open Platform pages for each API.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from aiohttp import WSMsgType, web

from tests.emulator.cards import CARD_PATHS, CardHost
from tests.emulator.receipts import DING_SEND, Receipts
from tests.emulator.todo import Todos

ROBOT_DINGTALK_ID = "$:LWCP_v1:$robot0duban"
CORP_ID = "ding0test0corp"
SEND_PATHS = frozenset({
    "/v1.0/robot/oToMessages/batchSend",
    "/v1.0/robot/groupMessages/send",
    "/robot/sendBySession",
    "/media/upload",
    DING_SEND,
}) | CARD_PATHS
NEW_API_PREFIX = "/v1.0/"
MAX_BATCH_USERS = 20
SESSION_WEBHOOK_MS = 90 * 60 * 1000  # a message's sessionWebhook works ~90 min (sessionWebhookExpiredTime)
MAX_GROUP_PARAM_BYTES = 15_000
MSG_KEYS = frozenset({"sampleText", "sampleMarkdown", "sampleImageMsg", "sampleFile", "sampleLink",
                      "sampleActionCard", "sampleActionCard2", "sampleActionCard3", "sampleActionCard4",
                      "sampleActionCard5", "sampleActionCard6"})


class Fault(StrEnum):
    SERVER_ERROR = "5xx"  # 503
    TOO_MANY = "429"  # 429 with Retry-After
    THROTTLED = "throttled"  # 403 QpsLimitForApi on the new API, errcode 90002 on oapi and webhooks
    TIMEOUT = "timeout"  # answers (504) only after the client has given up; nothing is delivered
    DROP = "drop"  # closes the connection without an answer
    LATE = "late"  # delivers, but answers only after the client has given up


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Delivery:
    """A message DingTalk accepted: channel "user" (batchSend, one per user), "group", "webhook" or
    "ding" (robot/ding/send, one per user: tests/emulator/receipts.py)."""

    channel: str
    to: str  # userId, or openConversationId
    msg_key: str
    param: dict[str, Any]
    at_user_ids: tuple[str, ...] = ()
    file_text: str = ""  # what a sent spreadsheet says (`file_text`): the file reached them too

    @property
    def text(self) -> str:
        return str(self.param.get("text") or self.param.get("content") or self.file_text)


@dataclass
class HeldSend:
    """A send the emulator holds (see Emulator.hold_sends): arrived, but not accepted yet."""

    path: str
    decision: asyncio.Future[bool]  # True: accept and answer it; False: refuse it (503), unaccepted
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # its 200 went out


@dataclass
class Department:
    dept_id: int
    name: str
    parent_id: int
    manager_ids: list[str] = field(default_factory=list)


@dataclass
class OrgUser:
    userid: str
    name: str
    title: str = ""
    dept_ids: list[int] = field(default_factory=list)
    union_id: str = ""


class Emulator:
    def __init__(self, *, client_id: str = "dingtestapp", client_secret: str = "test-secret",
                 seed: int = 0, slow_seconds: float = 1.0, disconnect_grace: float = 0.3) -> None:
        self.client_id, self.client_secret, self.robot_code = client_id, client_secret, client_id
        self.slow_seconds = slow_seconds  # how long a TIMEOUT fault holds an answer back
        self.disconnect_grace = disconnect_grace  # DingTalk waits ~10 s after `disconnect`
        self.requests: list[Request] = []
        self.deliveries: list[Delivery] = []
        self.acks: list[dict[str, Any]] = []
        self.faults_injected: list[tuple[str, Fault]] = []
        self.invalid_users: set[str] = set()
        self.departments: dict[int, Department] = {}
        self.users: dict[str, OrgUser] = {}
        self.media: dict[str, str] = {}  # media_id -> file name
        self.media_content: dict[str, bytes] = {}  # media_id -> the uploaded bytes
        self.port = 0
        self._rng = random.Random(seed)
        self._tickets: set[str] = set()
        self._tokens: set[str] = set()
        self._sessions: dict[str, tuple[str, int]] = {}  # session key -> (conversation id, expiry, ms)
        # DingTalk's time, in seconds: the wall clock, or a test's fake clock (`follow`), against
        # which session webhooks (90 min) and one-to-one processQueryKeys (24 h) expire
        self.clock: Callable[[], float] = time.time
        self._sockets: dict[web.WebSocketResponse, web.Request] = {}
        self._one_shot: dict[str, deque[tuple[Fault, float]]] = {}
        self._random: tuple[float, tuple[Fault, ...], float] | None = None
        self._rate: int | None = None
        self._send_times: deque[float] = deque()
        self._background: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.held: list[HeldSend] = []
        self._holding: frozenset[str] = frozenset()
        self.cards = CardHost(robot_code=self.robot_code, corp_id=CORP_ID, authorise=self._new_api_auth,
                              frame=self._frame, deliver=lambda channel, to, param: self.deliveries.append(
                                  Delivery(channel, to, "interactiveCard", param)))
        self.receipts = Receipts(self)  # read status and DING (tests/emulator/receipts.py)
        self.todos = Todos(self)  # 待办 (tests/emulator/todo.py)

    # -- life ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record_and_fault])
        app.add_routes([
            web.post("/v1.0/gateway/connections/open", self._open_connection),
            web.get("/connect", self._connect),
            web.post("/v1.0/oauth2/accessToken", self._access_token),
            web.post("/v1.0/robot/oToMessages/batchSend", self._batch_send),
            web.post("/v1.0/robot/groupMessages/send", self._group_send),
            web.post("/robot/sendBySession", self._session_webhook),
            web.post("/media/upload", self._upload),
            web.post("/topapi/v2/department/listsub", self._listsub),
            web.post("/topapi/v2/department/get", self._department),
            web.post("/topapi/v2/user/get", self._user),
            *self.cards.routes(),
            *self.receipts.routes(),
            *self.todos.routes(),
        ])
        # handler_cancellation: a client that gave up (TIMEOUT) cancels its handler, as a gateway would
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    # -- faults -------------------------------------------------------------------------------

    def fail_next(self, path: str, fault: Fault, count: int = 1, retry_after: float = 1.0) -> None:
        """The next `count` requests to `path` meet `fault`."""
        queue = self._one_shot.setdefault(path, deque())
        queue.extend([(fault, retry_after)] * count)

    def fail_randomly(self, rate: float, faults: Sequence[Fault], retry_after: float = 1.0) -> None:
        """Each send (robot APIs, webhooks, uploads) fails with probability `rate`, by a random fault."""
        self._random = (rate, tuple(faults), retry_after)

    def limit_rate(self, per_second: int | None) -> None:
        """Sends above `per_second` in any one-second window get 429 (Retry-After: 1)."""
        self._rate = per_second

    def hold_sends(self, paths: Collection[str] = SEND_PATHS) -> None:
        """From now on every send to `paths` waits, unaccepted, in `held` (the test sees that it
        arrived), until accept_held() or release_held(): DingTalk stuck mid-call, so a test can kill
        the sender before or after DingTalk accepted a message."""
        self._holding = frozenset(paths)

    @property
    def waiting(self) -> bool:
        """Whether a held send still waits for a decision (its client has not given up on it)."""
        return any(not held.decision.done() for held in self.held)

    async def accept_held(self) -> None:
        """Accept the first held send; returns once its 200 is written to the socket."""
        held = next(h for h in self.held if not h.decision.done())
        held.decision.set_result(True)
        await held.answered.wait()

    def release_held(self) -> None:
        """Stop holding: every send still held is refused with 503, never accepted."""
        self._holding = frozenset()
        for held in self.held:
            if not held.decision.done():
                held.decision.set_result(False)
        self.held.clear()

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def _fault_for(self, path: str) -> tuple[Fault, float] | None:
        queue = self._one_shot.get(path)
        if queue:
            return queue.popleft()
        if path not in SEND_PATHS:
            return None
        if self._rate is not None:
            now = time.monotonic()
            while self._send_times and now - self._send_times[0] >= 1.0:
                self._send_times.popleft()
            if len(self._send_times) >= self._rate:
                return Fault.TOO_MANY, 1.0
            self._send_times.append(now)
        if self._random and self._rng.random() < self._random[0]:
            return self._rng.choice(self._random[1]), self._random[2]
        return None

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.content_type.startswith("multipart/"):
            form = await request.post()  # cached: the handler reads it again
            body: Any = {k: getattr(v, "filename", v) for k, v in form.items()}
        else:
            raw = await request.read()  # cached too
            body = json.loads(raw) if raw else None
        self.requests.append(Request(request.method, request.path, dict(request.query), dict(request.headers), body))
        if request.path in self._holding:
            return await self._hold(request, handler)
        fault = self._fault_for(request.path)
        if fault is None:
            return await handler(request)
        kind, retry_after = fault
        self.faults_injected.append((request.path, kind))
        if kind is Fault.SERVER_ERROR:
            return web.json_response({"code": "ServiceUnavailable", "message": "emulated outage"}, status=503)
        if kind is Fault.TOO_MANY:
            return web.json_response({"code": "Throttling", "message": "emulated 429"}, status=429,
                                     headers={"Retry-After": f"{retry_after:g}"})
        if kind is Fault.THROTTLED:
            if request.path.startswith(NEW_API_PREFIX):
                return web.json_response({"code": "Forbidden.AccessDenied.QpsLimitForApi",
                                          "message": "emulated QPS limit"}, status=403)
            return web.json_response({"errcode": 90002, "errmsg": "emulated: 接口调用超过限流"})
        if kind is Fault.TIMEOUT:
            await asyncio.sleep(self.slow_seconds)
            return web.json_response({"code": "GatewayTimeout"}, status=504)
        if kind is Fault.LATE:
            response = await handler(request)
            await asyncio.sleep(self.slow_seconds)
            return response
        assert request.transport is not None
        request.transport.abort()  # Fault.DROP
        raise web.HTTPServiceUnavailable  # nobody hears it: the connection is gone

    async def _hold(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        held = HeldSend(request.path, asyncio.get_running_loop().create_future())
        self.held.append(held)
        # a client that disconnects (killed) cancels this wait: the send was never accepted
        if not await held.decision:
            return web.json_response({"code": "ServiceUnavailable", "message": "emulated: held, refused"},
                                     status=503)
        response = await handler(request)
        await response.prepare(request)  # written now, not after we return: the test knows the 200 is out
        await response.write_eof()
        held.answered.set()
        return response

    # -- stream gateway -----------------------------------------------------------------------

    async def _open_connection(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("clientId"), body.get("clientSecret")) != (self.client_id, self.client_secret):
            return web.json_response({"code": "InvalidClient", "message": "bad clientId/clientSecret"}, status=401)
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return web.json_response({"endpoint": f"ws://127.0.0.1:{self.port}/connect", "ticket": ticket})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.json_response({"code": "InvalidTicket"}, status=403)
        self._tickets.discard(ticket)  # single use
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets[ws] = request
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(message.data))
        finally:
            del self._sockets[ws]
        return ws

    @property
    def live_connections(self) -> int:
        return sum(1 for ws in self._sockets if not ws.closed)

    async def push_frame(self, frame: dict[str, Any]) -> None:
        """To one live connection, chosen at random, as DingTalk does with several open."""
        live = [ws for ws in self._sockets if not ws.closed]
        if not live:
            raise RuntimeError("no stream connection to push to")
        await self._rng.choice(live).send_str(json.dumps(frame, ensure_ascii=False))

    def robot_message(self, text: str, *, sender: str, sender_nick: str = "", conversation_id: str = "",
                      group: bool = True, at: Sequence[tuple[str, str]] = (), title: str = "工作群") -> dict[str, Any]:
        """A CALLBACK frame for /v1.0/im/bot/messages/get. `text` is what the user typed after
        "@robot", with any "@name" in place; `at` gives those people as (userId, name). In a group
        the robot itself is always in atUsers, without a staffId."""
        now_ms = int(self.clock() * 1000)
        session = uuid.uuid4().hex
        conversation_id = conversation_id or f"cid{sender}single"
        self._sessions[session] = (conversation_id, now_ms + SESSION_WEBHOOK_MS)
        data: dict[str, Any] = {
            "conversationId": conversation_id,
            "chatbotCorpId": CORP_ID,
            "chatbotUserId": ROBOT_DINGTALK_ID,
            "msgId": f"msg{uuid.uuid4().hex[:24]}==",
            "senderNick": sender_nick or sender,
            "isAdmin": False,
            "senderStaffId": sender,
            "sessionWebhookExpiredTime": now_ms + SESSION_WEBHOOK_MS,
            "createAt": now_ms,
            "senderCorpId": CORP_ID,
            "conversationType": "2" if group else "1",
            "senderId": f"$:LWCP_v1:${sender}",
            "sessionWebhook": f"{self.url}/robot/sendBySession?session={session}",
            "text": {"content": " " + text},  # DingTalk leaves the space where "@robot" was
            "robotCode": self.robot_code,
            "msgtype": "text",
        }
        if group:
            data |= {
                "conversationTitle": title,
                "isInAtList": True,
                "atUsers": [{"dingtalkId": ROBOT_DINGTALK_ID}]
                + [{"dingtalkId": f"$:LWCP_v1:${uid}", "staffId": uid} for uid, _ in at],
            }
        return self._frame("CALLBACK", "/v1.0/im/bot/messages/get", data)

    async def disconnect(self) -> None:
        """A SYSTEM `disconnect` to every connection; they are closed after the grace period."""
        sockets = [ws for ws in self._sockets if not ws.closed]
        for ws in sockets:
            await ws.send_str(json.dumps(self._frame("SYSTEM", "disconnect", {"reason": "connection is expired"})))

        async def close_later() -> None:
            await asyncio.sleep(self.disconnect_grace)
            for ws in sockets:
                await ws.close()

        task = asyncio.create_task(close_later())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drop_stream(self) -> None:
        """Cut every websocket without a closing handshake, as a network failure would."""
        for request in list(self._sockets.values()):
            if request.transport:
                request.transport.abort()

    async def ping(self) -> dict[str, Any]:
        frame = self._frame("SYSTEM", "ping", {"opaque": str(uuid.uuid4())})
        await self.push_frame(frame)
        return frame

    def acked(self, frame: dict[str, Any]) -> int:
        """How many acks came back for this frame's messageId."""
        message_id = frame["headers"]["messageId"]
        return sum(1 for ack in self.acks if ack.get("headers", {}).get("messageId") == message_id)

    def _frame(self, kind: str, topic: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "specVersion": "1.0",
            "type": kind,
            "headers": {"appId": "emulated-app", "contentType": "application/json", "topic": topic,
                        "messageId": f"{uuid.uuid4().hex[:8]}_{self._rng.randrange(1000)}_{int(time.time() * 1000):x}",
                        "time": str(int(time.time() * 1000))},
            "data": json.dumps(data, ensure_ascii=False),
        }

    # -- OpenAPI (api.dingtalk.com) -----------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("appKey"), body.get("appSecret")) != (self.client_id, self.client_secret):
            return web.json_response({"code": "invalidClientIdOrSecret", "message": "无效的clientId或clientSecret"},
                                     status=400)
        token = uuid.uuid4().hex
        self._tokens.add(token)
        return web.json_response({"accessToken": token, "expireIn": 7200})

    def _new_api_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-acs-dingtalk-access-token") not in self._tokens:
            return web.json_response({"code": "InvalidAuthentication", "message": "不合法的access_token"}, status=401)
        return None

    def _message_param(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, web.Response | None]:
        if body.get("robotCode") != self.robot_code:
            return None, _bad("robot 不存在", code="resource.not.found")
        if body.get("msgKey") not in MSG_KEYS:
            return None, _bad(f"msgKey {body.get('msgKey')} 不合法")
        try:
            param = json.loads(body.get("msgParam", ""))
        except ValueError:
            return None, _bad("msgParam 不是合法的 JSON")
        return param, None

    async def _robot_send(self, request: web.Request) -> tuple[dict[str, Any], dict[str, Any], web.Response | None]:
        """What both robot send endpoints check first: the token, then robotCode, msgKey, msgParam."""
        if denied := self._new_api_auth(request):
            return {}, {}, denied
        body = await request.json()
        param, error = self._message_param(body)
        return body, param or {}, error

    async def _batch_send(self, request: web.Request) -> web.Response:
        body, param, error = await self._robot_send(request)
        if error:
            return error
        user_ids = body.get("userIds") or []
        if not 1 <= len(user_ids) <= MAX_BATCH_USERS:
            return _bad(f"userIds 数量须在 1–{MAX_BATCH_USERS} 之间")
        invalid = [u for u in user_ids if u in self.invalid_users]
        for user_id in user_ids:
            if user_id not in invalid:
                self.deliveries.append(Delivery("user", user_id, body["msgKey"], param,
                                                file_text=self.file_text(body["msgKey"], param)))
        key = uuid.uuid4().hex
        self.receipts.remember(key, "user", tuple(u for u in user_ids if u not in invalid))
        return web.json_response({"processQueryKey": key, "invalidStaffIdList": invalid,
                                  "flowControlledStaffIdList": []})

    async def _group_send(self, request: web.Request) -> web.Response:
        body, param, error = await self._robot_send(request)
        if error:
            return error
        if not body.get("openConversationId"):
            return _bad("openConversationId 不能为空")
        if len(body["msgParam"].encode()) > MAX_GROUP_PARAM_BYTES:
            return _bad("msgParam 超过 15000 字节")
        self.deliveries.append(Delivery("group", body["openConversationId"], body["msgKey"], param,
                                        file_text=self.file_text(body["msgKey"], param)))
        key = uuid.uuid4().hex
        self.receipts.remember(key, "group", (body["openConversationId"],))
        return web.json_response({"processQueryKey": key})

    async def _session_webhook(self, request: web.Request) -> web.Response:
        conversation, expires_ms = self._sessions.get(request.query.get("session", ""), (None, 0))
        if conversation is None or self.clock() * 1000 > expires_ms:
            return web.json_response({"errcode": 300001, "errmsg": "session 不存在或已过期"})
        body = await request.json()
        kind = body.get("msgtype")
        if kind not in ("text", "markdown"):
            return web.json_response({"errcode": 40035, "errmsg": f"不支持的 msgtype {kind}"})
        at = tuple((body.get("at") or {}).get("atUserIds") or ())
        self.deliveries.append(Delivery("webhook", conversation, kind, body[kind], at))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    # -- oapi.dingtalk.com --------------------------------------------------------------------

    def _oapi_auth(self, request: web.Request) -> web.Response | None:
        if request.query.get("access_token") not in self._tokens:
            return web.json_response({"errcode": 40014, "errmsg": "不合法的access_token"})
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        if denied := self._oapi_auth(request):
            return denied
        kind = request.query.get("type")
        form = await request.post()
        media = form.get("media")
        if kind not in ("image", "voice", "video", "file") or media is None:
            return web.json_response({"errcode": 40004, "errmsg": "不合法的媒体文件类型"})
        media_id = f"@lA{uuid.uuid4().hex[:20]}"
        self.media[media_id] = getattr(media, "filename", "")
        if isinstance(media, web.FileField):
            self.media_content[media_id] = media.file.read()
        return web.json_response({"errcode": 0, "errmsg": "ok", "media_id": media_id, "type": kind,
                                  "created_at": int(time.time() * 1000)})

    async def _listsub(self, request: web.Request) -> web.Response:
        if denied := self._oapi_auth(request):
            return denied
        parent = int((await request.json())["dept_id"])
        result = [{"dept_id": d.dept_id, "name": d.name, "parent_id": d.parent_id,
                   "create_dept_group": False, "auto_add_user": False}
                  for d in self.departments.values() if d.parent_id == parent]
        return _ok(result)

    async def _department(self, request: web.Request) -> web.Response:
        if denied := self._oapi_auth(request):
            return denied
        dept = self.departments.get(int((await request.json())["dept_id"]))
        if dept is None:
            return web.json_response({"errcode": 60003, "errmsg": "部门不存在"})
        return _ok({"dept_id": dept.dept_id, "name": dept.name, "parent_id": dept.parent_id,
                    "dept_manager_userid_list": dept.manager_ids, "order": dept.dept_id,
                    "group_contain_sub_dept": False, "outer_dept": False})

    async def _user(self, request: web.Request) -> web.Response:
        if denied := self._oapi_auth(request):
            return denied
        user = self.users.get((await request.json())["userid"])
        if user is None:
            return web.json_response({"errcode": 60121, "errmsg": "找不到该用户"})
        return _ok({"userid": user.userid, "unionid": user.union_id or f"union{user.userid}", "name": user.name,
                    "title": user.title,
                    "dept_id_list": user.dept_ids, "active": True, "admin": False})

    # -- for assertions -----------------------------------------------------------------------

    def file_text(self, msg_key: str, param: dict[str, Any]) -> str:
        """A sent .xlsx's text cells, row by row, joined as folded messages are: what the person can
        read in it (an outbox digest's whole notices)."""
        content = self.media_content.get(str(param.get("mediaId"))) if msg_key == "sampleFile" else None
        if not content or not self.media.get(str(param.get("mediaId")), "").endswith(".xlsx"):
            return ""
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(content), read_only=True)
        except Exception:  # named .xlsx, but no spreadsheet (a test's stand-in bytes): nothing to read
            return ""
        return "\n\n---\n\n".join(str(value) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
                                  for value in row if isinstance(value, str))

    def follow(self, now: Callable[[], datetime]) -> None:
        """Keep DingTalk's time by a test's clock (a FakeClock's `now`), so what expires does."""
        self.clock = lambda: now().timestamp()

    def to(self, recipient: str, channel: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if d.to == recipient and channel in (None, d.channel)]

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the emulator did not see what the test waited for")
            await asyncio.sleep(0.01)


def _ok(result: Any) -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok", "result": result, "request_id": uuid.uuid4().hex[:12]})


def _bad(message: str, code: str = "invalidParameter") -> web.Response:
    return web.json_response({"code": code, "message": message, "requestid": uuid.uuid4().hex}, status=400)
