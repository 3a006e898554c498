"""bot.transport.Transport over DingTalk's robot APIs: users by oToMessages/batchSend (up to 20 at a
time), groups by groupMessages/send. Neither API takes an @ list: @-mentions in a group go through
the session-webhook reply to the message that caused them (bot.dingtalk.inbound)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from bot.dingtalk.ding import send_ding
from bot.dingtalk.markdown import compose
from bot.dingtalk.openapi import MAX_BATCH_USERS, OpenApiClient
from bot.transport import OutgoingMessage, SendError, SendResult

DING_CONTENT_CHARS = 500  # a DING is a short alert pointing at the notice, not the notice itself


class DingTalkTransport:
    max_batch = MAX_BATCH_USERS

    def __init__(self, client: OpenApiClient) -> None:
        self._client = client

    async def send(self, message: OutgoingMessage) -> SendResult:
        if message.ding_remind_type:
            return await self._ding(message)
        payloads = []
        # upload first: it is the likeliest step to fail, and failing before the caption went
        # out means a retry repeats nothing
        if message.image_path:
            media_id = await self._upload(Path(message.image_path), "image")
            payloads.append(("sampleImageMsg", {"photoURL": media_id}))
        elif message.file_path:
            path = Path(message.file_path)
            media_id = await self._upload(path, "file")
            payloads.append(("sampleFile", {"mediaId": media_id, "fileName": path.name,
                                            "fileType": path.suffix.lstrip(".").lower()}))
        if message.text.strip():
            markdown = {"title": message.title, "text": compose(message.text, message.actions)}
            payloads.insert(0, ("sampleMarkdown", markdown))
        result = SendResult()
        for msg_key, param in payloads:
            sent = await self._send(message, msg_key, param)
            result |= sent
            # the first payload's key: the text (the notice itself) when there is one
            result.receipt_key = result.receipt_key or sent.receipt_key
        return result

    async def _ding(self, message: OutgoingMessage) -> SendResult:
        if message.target != "user":
            raise SendError("a DING goes to people, not to a group", transient=False)
        content = f"{message.title}\n{message.text}"[:DING_CONTENT_CHARS]
        sent = await send_ding(self._client, message.recipients, content, message.ding_remind_type or 1)
        return SendResult({u: SendError(f"ding/send: {u} not reached", transient=False, undeliverable=True)
                           for u in sent.failed}, receipt_key=sent.open_ding_id)

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
