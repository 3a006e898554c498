"""Robot messages from the stream: a frame becomes an Incoming, dispatch decides, the Replies go
back through the message's session webhook. Nothing here decides anything."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime

import dingtalk_stream
from dingtalk_stream import AckMessage, CallbackMessage, ChatbotMessage
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from bot.clock import Clock
from bot.dingtalk.markdown import compose
from bot.dingtalk.openapi import OpenApiClient
from bot.transport import SendError
from handlers.incoming import Incoming
from message_templates.reply import Reply
from storage.tz import to_shanghai

log = logging.getLogger(__name__)

TOPIC = ChatbotMessage.TOPIC  # /v1.0/im/bot/messages/get
GROUP_CONVERSATION = "2"
_MENTION = re.compile(r"@(\S+)")
SUMMARY_SECONDS = 60.0

Dispatch = Callable[[Incoming], Awaitable[list[Reply]]]
# Delivers a Reply through the outbox instead (group or sender): used when the session webhook
# keeps failing. (A file goes through the outbox from the handler: a session webhook cannot carry it.)
ViaOutbox = Callable[[Incoming, Reply], Awaitable[None]]
# Told when every reply to a message went out (webhook or outbox): the bot keeps a command's
# replies until then, and answers a redelivered message with them if they never did.
Replied = Callable[[Incoming], Awaitable[None]]


def to_incoming(message: ChatbotMessage, *, robot_name: str, received_at: datetime) -> Incoming:
    text = "\n".join(t for t in (message.get_text_list() or []) if t).strip()
    if robot_name and text.startswith(f"@{robot_name}"):
        text = text.removeprefix(f"@{robot_name}").strip()
    at_user_ids = tuple(
        user.staff_id for user in message.at_users or ()
        if user.staff_id and user.dingtalk_id != message.chatbot_user_id
    )
    at_names = tuple(name for name in _MENTION.findall(text) if name != robot_name)
    return Incoming(
        msg_id=message.message_id,
        sender_id=message.sender_staff_id or "",
        text=text,
        conversation_id=message.conversation_id or "",
        is_group=message.conversation_type == GROUP_CONVERSATION,
        sender_name=message.sender_nick or "",
        at_user_ids=at_user_ids,
        at_names=at_names,
        session_webhook=message.session_webhook or "",
        received_at=received_at,
    )


class InboundHandler(dingtalk_stream.ChatbotHandler):
    """The stream's robot-message handler. Always acks (the SDK sends the ack after `process`
    returns): a message that failed is logged, never left to come back forever."""

    def __init__(self, dispatch: Dispatch, client: OpenApiClient, clock: Clock, *, robot_name: str = "",
                 via_outbox: ViaOutbox | None = None, replied: Replied | None = None,
                 reply_attempts: int = 3) -> None:
        super().__init__()
        self._dispatch = dispatch
        self._client = client
        self._clock = clock
        self._robot_name = robot_name
        self._via_outbox = via_outbox
        self._replied = replied
        self._reply_attempts = reply_attempts
        self.handled = 0  # read by the metrics endpoint
        self.failed = 0
        self._summary_at = clock.now()
        self._summary_counts = (0, 0)

    async def process(self, callback: CallbackMessage) -> tuple[int, str]:
        try:
            message = ChatbotMessage.from_dict(callback.data)
            incoming = to_incoming(message, robot_name=self._robot_name, received_at=to_shanghai(self._clock.now()))
            log.debug("inbound msg=%s from=%s conversation=%s", incoming.msg_id, incoming.sender_id,
                      incoming.conversation_id)
            replies = await self._dispatch(incoming)
            delivered = [await self._reply(incoming, reply) for reply in replies]
            if replies and all(delivered) and self._replied:
                await self._replied(incoming)
            self.handled += 1
        except Exception:
            self.failed += 1
            log.exception("inbound frame=%s failed; acked anyway", callback.headers.message_id)
        self._summary()
        return AckMessage.STATUS_OK, "OK"

    def _summary(self) -> None:
        """One INFO line a minute instead of one per message (those are DEBUG): at hundreds a second
        the log lines alone would cost more than the commands."""
        now = self._clock.now()
        if (seconds := (now - self._summary_at).total_seconds()) >= SUMMARY_SECONDS:
            handled, failed = self.handled - self._summary_counts[0], self.failed - self._summary_counts[1]
            log.info("inbound: %d messages handled, %d failed in the last %.0f s", handled, failed, seconds)
            self._summary_at, self._summary_counts = now, (self.handled, self.failed)

    async def _reply(self, incoming: Incoming, reply: Reply) -> bool:
        """Whether the reply went out (the webhook took it, or the outbox holds it)."""
        if reply.text.strip():
            markdown = compose(reply.text, reply.actions, reply.at_user_ids)
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self._reply_attempts),
                    wait=wait_exponential(multiplier=0.2, max=2),
                    retry=retry_if_exception(lambda exc: isinstance(exc, SendError) and exc.transient),
                    reraise=True,
                ):
                    with attempt:
                        await self._client.reply_webhook(incoming.session_webhook, reply.title, markdown,
                                                         reply.at_user_ids)
            except SendError as exc:
                log.warning("reply to msg=%s through the session webhook failed (%s): via the outbox",
                            incoming.msg_id, exc)
                return await self._outbox(incoming, reply)
        return True

    async def _outbox(self, incoming: Incoming, reply: Reply) -> bool:
        if self._via_outbox is None:
            log.error("reply to msg=%s not delivered: no outbox route configured", incoming.msg_id)
            return False
        await self._via_outbox(incoming, reply)
        return True
