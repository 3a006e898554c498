"""Interactive cards on the wire: a message with actions becomes DingTalk's public markdown-with-
buttons card, and a tap on one of its buttons comes back over the stream as an Incoming.

Facts and their sources: docs/dingtalk-cards.md. Nothing here decides anything: a tap is dispatched
exactly like typed text (same role check, same transaction, same redelivery guard), and the tapper
is the callback's userId — never anything carried in the button.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import dingtalk_stream
from dingtalk_stream import AckMessage, CallbackMessage

from bot.clock import Clock
from bot.dingtalk.markdown import compose
from bot.transport import OutgoingMessage
from handlers.incoming import Incoming
from message_templates.reply import Action, Reply
from storage.tz import to_shanghai

log = logging.getLogger(__name__)

# dingtalk_stream/card_instance.py MarkdownButtonCardInstance: a public template, no console work
MARKDOWN_BUTTON_TEMPLATE = "1366a1eb-bc54-4859-ac88-517c56a9acb1.schema"
CALLBACK_TOPIC = "/v1.0/card/instances/callback"  # dingtalk_stream/card_callback.py
CLICK_PREFIX = "card:"  # processed-message ids of taps, apart from robot msgIds

Dispatch = Callable[[Incoming], Awaitable[list[Reply]]]
ViaOutbox = Callable[[Incoming, Reply], Awaitable[None]]
Replied = Callable[[Incoming], Awaitable[None]]


def out_track_id(message: OutgoingMessage) -> str:
    """The card's own id (storage/cards.py), else one derived from the outbox rows it carries: either
    way a send retried after an unknown outcome reuses it."""
    return message.card_id or f"duban.o{'-'.join(map(str, message.outbox_ids[:1]))}.{message.target}"


def open_space_id(target: str, recipient: str) -> str:
    kind = "IM_GROUP" if target == "group" else "IM_ROBOT"
    return f"dtv1.card//{kind}.{recipient}"


def button(action: Action, index: int) -> dict[str, str]:
    # A command typed with a trailing space needs words after it (进展 DB-… ): the tap asks for them.
    value = {"cmd": action.command.strip(), "ask": action.command.endswith(" ")}
    return {"text": action.label, "color": "blue" if index == 0 else "gray", "actionType": "callback",
            "id": f"b{index}", "value": json.dumps(value, ensure_ascii=False)}


def card_data(message: OutgoingMessage) -> dict[str, str]:
    """The template's cardParamMap: every value a string, the buttons as JSON in sys_full_json_obj."""
    actions = tuple(dict.fromkeys(message.actions))  # a folded message shows each action once
    buttons = [button(action, i) for i, action in enumerate(actions)]
    return {"title": message.title, "markdown": compose(message.text, (), message.at_user_ids), "tips": "",
            "sys_full_json_obj": json.dumps({"msgButtons": buttons}, ensure_ascii=False)}


def deliver_body(message: OutgoingMessage, robot_code: str) -> dict[str, Any]:
    """The body of POST /v1.0/card/instances/createAndDeliver for one recipient."""
    body: dict[str, Any] = {
        "cardTemplateId": MARKDOWN_BUTTON_TEMPLATE,
        "outTrackId": out_track_id(message),
        "cardData": {"cardParamMap": card_data(message)},
        "callbackType": "STREAM",  # without it no tap ever reaches the stream (SDK issues #19, #29)
        "openSpaceId": open_space_id(message.target, message.recipient),
        "userIdType": 1,  # userIds, not unionIds
    }
    if message.target == "group":
        body["imGroupOpenSpaceModel"] = {"supportForward": False}
        deliver: dict[str, Any] = {"robotCode": robot_code}
        if message.at_user_ids:
            deliver["atUserIds"] = {user_id: user_id for user_id in message.at_user_ids}
        body["imGroupOpenDeliverModel"] = deliver
    else:
        body["imRobotOpenSpaceModel"] = {"supportForward": False}
        body["imRobotOpenDeliverModel"] = {"spaceType": "IM_ROBOT"}
    return body


def _value(content: Mapping[str, Any]) -> Mapping[str, Any]:
    """The tapped button's value: DingTalk hands it back in cardPrivateData.params, either spread
    into params or as the JSON string under "value" (public code shows both: docs/dingtalk-cards.md)."""
    params = (content.get("cardPrivateData") or {}).get("params") or {}
    if isinstance(params.get("value"), str):
        try:
            params = json.loads(params["value"])
        except ValueError:
            return {}
    return params if isinstance(params, Mapping) else {}


def to_incoming(data: Mapping[str, Any], message_id: str, *, received_at: datetime) -> Incoming | None:
    """A tap as an Incoming, or None when it names no command of ours."""
    try:
        content = json.loads(data.get("content") or "{}")
    except ValueError:
        return None
    value = _value(content) if isinstance(content, Mapping) else {}
    command = value.get("cmd")
    user_id = data.get("userId")
    if not isinstance(command, str) or not command.strip() or not isinstance(user_id, str) or not user_id:
        return None
    in_group = data.get("spaceType") == "IM_GROUP" and bool(data.get("spaceId"))
    return Incoming(
        msg_id=f"{CLICK_PREFIX}{message_id}",
        sender_id=user_id,  # who tapped, as DingTalk says — never from the button's value
        text=command,
        conversation_id=str(data.get("spaceId") or "") if in_group else "",
        is_group=in_group,
        received_at=received_at,
        asks=value.get("ask") is True,
    )


class CardCallbackHandler(dingtalk_stream.CallbackHandler):
    """Taps on /v1.0/card/instances/callback. A callback has no session webhook: the answer goes
    through the outbox, to the group the card is in or to the tapper. Always acked, like messages."""

    def __init__(self, dispatch: Dispatch, via_outbox: ViaOutbox, clock: Clock, *,
                 replied: Replied | None = None) -> None:
        super().__init__()
        self._dispatch = dispatch
        self._via_outbox = via_outbox
        self._clock = clock
        self._replied = replied
        self.handled = 0
        self.failed = 0

    async def process(self, callback: CallbackMessage) -> tuple[int, str]:
        try:
            incoming = to_incoming(callback.data, callback.headers.message_id,
                                   received_at=to_shanghai(self._clock.now()))
            if incoming is None:
                log.warning("card callback frame=%s names no command: ignored", callback.headers.message_id)
            else:
                log.info("card tap=%s by=%s command=%r", incoming.msg_id, incoming.sender_id, incoming.text)
                replies = [r for r in await self._dispatch(incoming) if r.text.strip()]
                for reply in replies:
                    await self._via_outbox(incoming, reply)
                if replies and self._replied:
                    await self._replied(incoming)
            self.handled += 1
        except Exception:
            self.failed += 1
            log.exception("card callback frame=%s failed; acked anyway", callback.headers.message_id)
        return AckMessage.STATUS_OK, "OK"
