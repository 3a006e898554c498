"""The emulator's interactive cards: createAndDeliver, create + deliver, the in-place update (PUT),
and taps coming back as stream callbacks, in DingTalk's wire format (docs/dingtalk-cards.md).

A card lives under its outTrackId with its cardParamMap and the spaces it was delivered to; every
delivery is also recorded as an emulator Delivery (channel "user" or "group", msg_key
"interactiveCard", param {title, text, buttons}), so tests that count what arrived count cards too.
A card created without callbackType STREAM never calls back: `tap` refuses it, as DingTalk stays
silent (the SDK's most reported issue). Faults come from the emulator's middleware, by path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CREATE_AND_DELIVER = "/v1.0/card/instances/createAndDeliver"
INSTANCES = "/v1.0/card/instances"  # POST: create; PUT: update in place
DELIVER = "/v1.0/card/instances/deliver"
CARD_PATHS = frozenset({CREATE_AND_DELIVER, INSTANCES, DELIVER})
CALLBACK_TOPIC = "/v1.0/card/instances/callback"
MARKDOWN_BUTTON_TEMPLATE = "1366a1eb-bc54-4859-ac88-517c56a9acb1.schema"
SPACE_PREFIX = "dtv1.card//"


@dataclass
class Card:
    out_track_id: str
    template_id: str
    callback_type: str
    data: dict[str, str]
    spaces: list[tuple[str, str]] = field(default_factory=list)  # ("IM_GROUP", cid) / ("IM_ROBOT", userId)
    updates: int = 0
    shown_buttons: list[dict[str, Any]] = field(default_factory=list)  # every button it ever had

    def remember_buttons(self) -> None:
        self.shown_buttons += [b for b in self.buttons if b not in self.shown_buttons]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return list(json.loads(self.data.get("sys_full_json_obj") or "{}").get("msgButtons") or [])

    @property
    def labels(self) -> list[str]:
        return [b["text"] for b in self.buttons]

    @property
    def markdown(self) -> str:
        return self.data.get("markdown", "")


Deliver = Callable[[str, str, dict[str, Any]], None]  # channel, to, param
Authorise = Callable[[web.Request], "web.Response | None"]
Frame = Callable[[str, str, dict[str, Any]], dict[str, Any]]


class CardHost:
    def __init__(self, *, robot_code: str, corp_id: str, deliver: Deliver, authorise: Authorise,
                 frame: Frame) -> None:
        self.robot_code, self.corp_id = robot_code, corp_id
        self._deliver, self._authorise, self._frame = deliver, authorise, frame
        self.cards: dict[str, Card] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.post(CREATE_AND_DELIVER, self._create_and_deliver), web.post(INSTANCES, self._create),
                web.put(INSTANCES, self._update), web.post(DELIVER, self._deliver_only)]

    # -- for tests ----------------------------------------------------------------------------

    def on(self, channel: str, to: str) -> list[Card]:
        """The cards shown in a chat, oldest first."""
        space = ("IM_GROUP" if channel == "group" else "IM_ROBOT", to)
        return [card for card in self.cards.values() if space in card.spaces]

    def tap(self, out_track_id: str, label: str, *, user_id: str, stale: bool = False,
            spread: bool = False) -> dict[str, Any]:
        """The CALLBACK frame DingTalk pushes when `user_id` taps the button `label` on a card;
        `stale`: a button the card showed once (a phone that had not redrawn it yet); `spread`: the
        button's value spread into params rather than under "value" (docs/dingtalk-cards.md)."""
        card = self.cards[out_track_id]
        if card.callback_type != "STREAM":
            raise AssertionError("a card created without callbackType STREAM never calls back")
        [pressed] = [b for b in (card.shown_buttons if stale else card.buttons) if b["text"] == label]
        space_type, space_id = card.spaces[0]
        data = {
            "type": "actionCallback",
            "corpId": self.corp_id,
            "outTrackId": out_track_id,
            "spaceType": space_type,
            "spaceId": space_id,
            "userId": user_id,
            "userIdType": 1,
            "content": json.dumps({"cardPrivateData": {"actionIds": [pressed.get("id", "")],
                                                       "params": json.loads(pressed.get("value") or "{}")
                                                       if spread else {"value": pressed.get("value", "")}}},
                                  ensure_ascii=False),
            "extension": "{}",
            "time": int(time.time() * 1000),
        }
        return self._frame("CALLBACK", CALLBACK_TOPIC, data)

    # -- endpoints ----------------------------------------------------------------------------

    async def _create_and_deliver(self, request: web.Request) -> web.Response:
        if denied := self._authorise(request):
            return denied
        body = await request.json()
        card, error = self._new_card(body)
        if error:
            return error
        space_error = self._check_delivery(body)
        if space_error:
            return space_error
        # DingTalk takes no idempotency key: a second createAndDeliver is shown again (a duplicate)
        self.cards[card.out_track_id] = card
        card.remember_buttons()
        return self._show(card, body)

    async def _create(self, request: web.Request) -> web.Response:
        if denied := self._authorise(request):
            return denied
        card, error = self._new_card(await request.json())
        if error:
            return error
        self.cards[card.out_track_id] = card
        card.remember_buttons()
        return _ok({"outTrackId": card.out_track_id})

    async def _deliver_only(self, request: web.Request) -> web.Response:
        found = await self._existing(request)
        if isinstance(found, web.Response):
            return found
        body, card = found
        if error := self._check_delivery(body):
            return error
        return self._show(card, body)

    async def _update(self, request: web.Request) -> web.Response:
        found = await self._existing(request)
        if isinstance(found, web.Response):
            return found
        body, card = found
        params = (body.get("cardData") or {}).get("cardParamMap")
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            return _bad("cardParamMap 的值须为字符串")
        card.data |= params  # keys not sent keep their value, as DingTalk merges cardParamMap
        card.updates += 1
        card.remember_buttons()
        return _ok(True)

    async def _existing(self, request: web.Request) -> tuple[dict[str, Any], Card] | web.Response:
        """The request's body and the card it names, or DingTalk's refusal (not signed in, no such card)."""
        if denied := self._authorise(request):
            return denied
        body = await request.json()
        card = self.cards.get(body.get("outTrackId", ""))
        if card is None:
            return _bad("卡片实例不存在", code="card.instance.not.found")
        return body, card

    def _new_card(self, body: dict[str, Any]) -> tuple[Card, web.Response | None]:
        params = (body.get("cardData") or {}).get("cardParamMap")
        card = Card(str(body.get("outTrackId") or ""), str(body.get("cardTemplateId") or ""),
                    str(body.get("callbackType") or ""), dict(params or {}))
        if not card.out_track_id:
            return card, _bad("outTrackId 不能为空")
        if card.template_id != MARKDOWN_BUTTON_TEMPLATE:
            return card, _bad("卡片模板不存在", code="card.template.not.found")
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            return card, _bad("cardParamMap 的值须为字符串")
        try:
            buttons = json.loads(params.get("sys_full_json_obj") or "{}").get("msgButtons") or []
        except ValueError:
            return card, _bad("sys_full_json_obj 不是合法的 JSON")
        if any(b.get("actionType") == "callback" and not isinstance(b.get("value"), str) for b in buttons):
            return card, _bad("回调按钮缺少 value")
        return card, None

    def _check_delivery(self, body: dict[str, Any]) -> web.Response | None:
        spaces = _spaces(body.get("openSpaceId", ""))
        if not spaces:
            return _bad("openSpaceId 不合法")
        for kind, _ in spaces:
            if kind == "IM_GROUP" and (body.get("imGroupOpenDeliverModel") or {}).get("robotCode") != self.robot_code:
                return _bad("robot 不存在", code="resource.not.found")
            if kind == "IM_ROBOT" and "imRobotOpenDeliverModel" not in body:
                return _bad("imRobotOpenDeliverModel 不能为空")
        return None

    def _show(self, card: Card, body: dict[str, Any]) -> web.Response:
        results = []
        for kind, space_id in _spaces(body["openSpaceId"]):
            card.spaces.append((kind, space_id))
            self._deliver("group" if kind == "IM_GROUP" else "user", space_id,
                          {"title": card.data.get("title", ""), "text": card.markdown, "buttons": card.labels})
            results.append({"spaceType": kind, "spaceId": space_id, "success": True})
        return _ok({"outTrackId": card.out_track_id, "deliverResults": results})


def _spaces(open_space_id: str) -> list[tuple[str, str]]:
    """dtv1.card//IM_GROUP.cid1;IM_ROBOT.user1 → [("IM_GROUP", "cid1"), ("IM_ROBOT", "user1")]."""
    if not open_space_id.startswith(SPACE_PREFIX):
        return []
    spaces = []
    for part in open_space_id.removeprefix(SPACE_PREFIX).split(";"):
        kind, _, space_id = part.partition(".")
        if kind not in ("IM_GROUP", "IM_ROBOT") or not space_id:
            return []
        spaces.append((kind, space_id))
    return spaces


def _ok(result: Any) -> web.Response:
    return web.json_response({"success": True, "result": result})


def _bad(message: str, code: str = "invalidParameter") -> web.Response:
    return web.json_response({"code": code, "message": message, "requestid": "emulated"}, status=400)
