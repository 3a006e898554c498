"""bot.transport.Transport over DingTalk's robot APIs: users by oToMessages/batchSend (up to 20 at a
time), groups by groupMessages/send. Neither API takes an @ list: @-mentions in a group go through
the session-webhook reply to the message that caused them (bot.dingtalk.inbound).

With cards on, a message with actions is an interactive card instead (bot.dingtalk.cards), one
createAndDeliver call per recipient: so the transport takes one recipient per message, and only one
send at a time can sit between DingTalk's 200 and the outbox's commit (SPEC §7)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any, Literal

from bot.dingtalk.attachment import write_xlsx
from bot.dingtalk.cards import card_data, deliver_body
from bot.dingtalk.ding import send_ding
from bot.dingtalk.markdown import compose
from bot.dingtalk.openapi import MAX_BATCH_USERS, OpenApiClient
from bot.transport import OutgoingMessage, SendError, SendResult

DING_CONTENT_CHARS = 500  # a DING is a short alert pointing at the notice, not the notice itself


class DingTalkTransport:
    def __init__(self, client: OpenApiClient, *, cards: bool = False, robot_code: str = "") -> None:
        self._client = client
        self._cards = cards
        self.shows_cards = cards  # read by the outbox: fold per card
        self._robot_code = robot_code
        self.max_batch = 1 if cards else MAX_BATCH_USERS

    async def send(self, message: OutgoingMessage) -> SendResult:
        if message.ding_remind_type:
            return await self._ding(message)
        if message.card_update:  # without cards there is nothing on screen to update
            if self._cards and message.card_id:
                await self._client.update_card(message.card_id, card_data(message))
            return SendResult()
        if (self._cards and message.actions and message.text.strip() and not message.plain
                and not (message.image_path or message.file_path or message.attachment)):
            if message.target not in ("user", "group"):
                raise SendError(f"unknown target {message.target!r}", transient=False)
            # DingTalk reports no read status for a card (createAndDeliver answers deliverResults, no
            # processQueryKey): a colour notice, whose reading is evidence, comes plain (Outbox.plain)
            await self._client.create_and_deliver_card(deliver_body(message, self._robot_code))
            return SendResult()
        payloads = []
        # upload first: it is the likeliest step to fail, and failing before the caption went
        # out means a retry repeats nothing
        if message.image_path:
            media_id = await self._upload(Path(message.image_path), "image")
            payloads.append(("sampleImageMsg", {"photoURL": media_id}))
        elif message.file_path:
            payloads.append(await self._file(Path(message.file_path)))
        elif message.attachment:  # a digest's notices, whole: written here, uploaded
            with tempfile.TemporaryDirectory(prefix="duban-digest-") as directory:
                path = await asyncio.to_thread(write_xlsx, message.attachment, Path(directory))
                payloads.append(await self._file(path))
        if message.text.strip():
            markdown = {"title": message.title, "text": compose(message.text, message.actions)}
            # A caption goes before its file. A digest goes after the file holding the notices it
            # sums up: the notices' text is out before anything refers to it, and the summary is
            # what the chat list and the notification show.
            payloads.insert(len(payloads) if message.attachment else 0, ("sampleMarkdown", markdown))
        result = SendResult()
        for position, (msg_key, param) in enumerate(payloads):
            try:
                sent = await self._send(message, msg_key, param)
            except SendError as exc:
                if position == 0:  # nothing went out yet: a retry repeats nothing
                    raise
                # the first part went out, this one did not: the retry sends that part again
                raise SendError(f"{exc} (after {payloads[0][0]} went out)", transient=exc.transient,
                                retry_after=exc.retry_after, maybe_delivered=True) from exc
            result |= sent
            # the text's key (the notice, the digest a person reads) when there is one
            if msg_key == "sampleMarkdown" or result.receipt_key is None:
                result.receipt_key = sent.receipt_key
        return result

    async def _ding(self, message: OutgoingMessage) -> SendResult:
        if message.target != "user":
            raise SendError("a DING goes to people, not to a group", transient=False)
        content = f"{message.title}\n{message.text}"[:DING_CONTENT_CHARS]
        sent = await send_ding(self._client, message.recipients, content, message.ding_remind_type or 1)
        return SendResult({u: SendError(f"ding/send: {u} not reached", transient=False, undeliverable=True)
                           for u in sent.failed}, receipt_key=sent.open_ding_id)

    async def _file(self, path: Path) -> tuple[str, dict[str, Any]]:
        media_id = await self._upload(path, "file")
        return "sampleFile", {"mediaId": media_id, "fileName": path.name, "fileType": path.suffix.lstrip(".").lower()}

    async def _upload(self, path: Path, kind: Literal["image", "file"]) -> str:
        try:
            return await self._client.upload_media(path, kind)
        except SendError as exc:  # an upload that may have landed sends nobody anything
            raise SendError(str(exc), transient=exc.transient, retry_after=exc.retry_after) from exc

    async def _send(self, message: OutgoingMessage, msg_key: str, param: dict[str, Any]) -> SendResult:
        if message.target == "group":
            return SendResult(receipt_key=await self._client.send_group(message.recipient, msg_key, param))
        if message.target != "user":
            raise SendError(f"unknown target {message.target!r}", transient=False)
        result = await self._client.batch_send_users(message.recipients, msg_key, param)
        failures = {u: SendError(f"batchSend: DingTalk refused userId {u} (invalidStaffIdList)", transient=False,
                                 undeliverable=True) for u in result.invalid}
        for user_id in result.flow_controlled:
            failures[user_id] = SendError(f"batchSend: {user_id} flow-controlled by DingTalk", transient=True)
        return SendResult(failures, receipt_key=result.process_query_key)
